"""Fixtures several test files share: the real servers they run against.

Helpers that are plain functions and classes live in tests/support/ (imported as `support`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.commands import QUIET
from support.servers import serve_chroma, serve_langgraph_dev

for _name, _value in QUIET.items():  # also for what the tests run in-process (onnxruntime, chroma)
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real `chroma run` per test module, on a free port; its URL."""
    with serve_chroma(tmp_path_factory.mktemp("chroma")) as url:
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
