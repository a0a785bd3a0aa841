"""The repo root, the commands of the venv running pytest, and `memento` run as a subprocess.

Tests run the commands of that venv (memento, chroma, langgraph) by path, so they exercise this
checkout's code whatever PATH holds.
"""

from __future__ import annotations

import os
import subprocess
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


ENDPOINT_VARS = ("MEMENTO_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "MEMENTO_MODEL")
"""The variables that choose a model endpoint; `memento()` drops them unless given."""


def memento(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`memento ARGS` as a subprocess on `home`, with no library, index, endpoint or debug
    setting leaking in from the caller's environment (unless given in `env`)."""
    full = {
        **os.environ,
        "MEMENTO_HOME": str(home),
        "ORT_DISABLE_TELEMETRY": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "NO_COLOR": "1",
        **env,
    }
    for name in (
        "MEMENTO_SKILLS_DIR",
        "MEMENTO_INDEX_DIR",
        "MEMENTO_CHROMA_URL",
        "MEMENTO_STORE_URL",
        "MEMENTO_DEBUG",
    ):
        if name not in env:
            full.pop(name, None)
    for name in ENDPOINT_VARS:
        if name not in env:
            full.pop(name, None)
    return subprocess.run([MEMENTO, *args], env=full, capture_output=True, text=True, timeout=300)
