"""Fixtures several test files share: the real servers they run against.

Helpers that are plain functions and classes live in tests/support/ (imported as `support`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.commands import QUIET
from support.servers import serve_chroma, serve_langgraph_dev, serve_postgres

for _name, _value in QUIET.items():  # also for what the tests run in-process (onnxruntime, chroma)
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real `chroma run` per test module, on a free port; its URL."""
    with serve_chroma(tmp_path_factory.mktemp("chroma")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One real Postgres for the session (from the `pgserver` wheel), in a throwaway folder
    under the system temp dir; the URL of its database `memento`. Tests share it and keep
    apart by library name (a fresh one each, see `store_library`)."""
    # pgserver, running as root, opens the folders above the data dir to its own user: keep
    # them the temp dir itself, not pytest's private tmp tree
    with (
        tempfile.TemporaryDirectory(prefix="memento-pg-") as folder,
        serve_postgres(Path(folder)) as url,
    ):
        yield url


@pytest.fixture(scope="session")
def langgraph_dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One real `langgraph dev` for the session (it costs seconds to start): its URL and log."""
    log = tmp_path_factory.mktemp("langgraph-dev") / "langgraph-dev.log"
    with serve_langgraph_dev(tmp_path_factory.mktemp("home"), log) as url:
        yield url, log


@pytest.fixture
def langgraph_dev(langgraph_dev_server: tuple[str, Path]) -> str:
    """The URL of the session's `langgraph dev`."""
    return langgraph_dev_server[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh MEMENTO_HOME for a `memento` subprocess (created by the command itself)."""
    return tmp_path / "home"
