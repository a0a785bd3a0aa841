"""Real servers the tests start from the venv's own commands: `chroma run` and `langgraph dev`,
and Postgres from the binaries the `pgserver` wheel ships.

Each binds a free loopback port (Postgres: a unix socket in its data folder), is up once its
health URL answers, and dies with its process group when the `with` block ends; a server that
exits or never answers fails the test with the tail of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.commands import QUIET, REPO, command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(
    what: str, health: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} did not answer within {timeout_s:.0f}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def _serve(
    what: str,
    cmd: list[str],
    *,
    health: str,
    log: Path,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout_s: float,
) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: its workers die with it
        )
    try:
        _wait_until_up(what, health, proc, log, timeout_s)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@contextlib.contextmanager
def serve_chroma(folder: Path) -> Iterator[str]:
    """A real `chroma run` keeping its data under `folder`; yields its URL."""
    chroma = command("chroma", "chromadb")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(chroma), "run", "--path", str(folder / "data"), "--host", "127.0.0.1"]
    with _serve(
        "chroma run",
        [*cmd, "--port", str(port)],
        health=f"{url}/api/v2/heartbeat",
        log=folder / "chroma.log",
        env={**os.environ, **QUIET},
        timeout_s=60,
    ):
        yield url


@contextlib.contextmanager
def serve_langgraph_dev(home: Path, log: Path, *, own_dir: Path | None = None) -> Iterator[str]:
    """A real `langgraph dev` serving the repo's langgraph.json, MEMENTO_HOME at `home`.

    With `own_dir` it runs there, on a copy of langgraph.json naming the repo's files by
    absolute path, so its server state (.langgraph_api/) is its own: several may run at once.
    """
    langgraph = command("langgraph", "the dev extra (langgraph-cli[inmem])")
    cwd, config = REPO, REPO / "langgraph.json"
    if own_dir is not None:
        own_dir.mkdir(parents=True, exist_ok=True)
        spec = json.loads(config.read_text("utf-8"))
        spec["dependencies"] = [str(REPO)]
        for section in ("graphs", "http"):
            for key, target in spec.get(section, {}).items():
                spec[section][key] = str(REPO / target)
        cwd, config = own_dir, own_dir / "langgraph.json"
        config.write_text(json.dumps(spec), "utf-8")
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "MEMENTO_", "LANGSMITH_", "LANGCHAIN_"))
    }
    env.update(QUIET, MEMENTO_HOME=str(home))
    url = f"http://127.0.0.1:{port}"
    cmd = [str(langgraph), "dev", "--port", str(port), "--host", "127.0.0.1"]
    with _serve(
        "langgraph dev",
        [*cmd, "--no-browser", "--no-reload", "--config", str(config)],
        health=f"{url}/ok",
        log=log,
        env=env,
        cwd=cwd,
        timeout_s=120,
    ):
        yield url


@contextlib.contextmanager
def serve_postgres(folder: Path) -> Iterator[str]:
    """A real Postgres (the `pgserver` wheel's binaries) with its data under `folder`, listening
    on a unix socket there only; yields the URL of a fresh database `memento` in it."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        try:
            import pgserver
            import psycopg
        except ImportError as e:
            pytest.fail(f"{e.name} is missing: pip install -e '.[dev,postgres]' (make test does)")

    folder.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE memento")
        yield server.get_uri("memento")
    finally:
        server.cleanup()
