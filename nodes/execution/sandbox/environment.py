"""The child's whole environment, rebuilt from an allow-list so no host secret reaches it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .limits import SandboxError

# Environment variables passed through from the host when set; everything else is dropped.
ENV_PASSTHROUGH = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def scrubbed_env(home: Path, tmp: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's whole environment: an allow-list, never the host's secrets."""
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
    for name in ENV_PASSTHROUGH:
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(
        HOME=str(home),
        TMPDIR=str(tmp),
        USER="sandbox",
        LOGNAME="sandbox",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        PYTHONIOENCODING="utf-8",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    for name, value in (extra or {}).items():
        if any(marker in name.upper() for marker in SECRET_MARKERS):
            raise SandboxError(
                f"refusing to pass {name!r} into the sandbox: it looks like a secret"
            )
        env[name] = value
    return env
