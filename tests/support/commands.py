"""The repo root and the commands of the venv running pytest (memento, chroma, langgraph).

Tests run the commands of that venv by path, so they exercise this checkout's code whatever PATH
holds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MEMENTO = str(BIN / "memento")
QUIET = {
    "ORT_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "1",
}
"""No telemetry and no version checks from anything a test starts."""


def command(name: str, package: str) -> Path:
    """A command of the venv, or a failed test naming the package that ships it."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: {package} ships it; reinstall it into this venv")
    return path
