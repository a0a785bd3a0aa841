"""Opening a skill store of either backend from a JSON-able spec, in a test or a worker process.

A spec names a backend and where it lives: {"backend": "folder", "root": DIR} or
{"backend": "postgres", "url": URL, "library": NAME, "cache": DIR}. Each process opens its own
store on the spec (its own cache folder for Postgres), as separate workers do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill_store import SkillStore

WORKER = Path(__file__).with_name("store_worker.py")


def open_spec(spec: dict[str, Any]) -> SkillStore:
    timeout = float(spec.get("lock_timeout_s", 30.0))
    if spec["backend"] == "folder":
        return SkillLibrary(spec["root"], lock_timeout_s=timeout)
    from memento_skills.stores.pg_store import PgSkillStore

    return PgSkillStore(
        spec["url"], library=spec["library"], cache_dir=spec["cache"], lock_timeout_s=timeout
    )


def worker(spec: dict[str, Any], *args: str, **popen: Any) -> subprocess.Popen[str]:
    """A real worker process running `store_worker.py` on the store `spec` names."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(spec), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
