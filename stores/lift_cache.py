"""The lift cache: a case's outcome without any skill, kept so lift is not measured twice.

Measuring a skill's lift replays each of its cases twice, with the skill and without any. The
second outcome does not depend on the skill, only on the case and on how the run is configured
(executor and judge models, endpoint, step and token budgets), so it is kept per (case, run
configuration) in one JSON file under the library's `.memento/` (docs/decisions.md#lifecycle-and-lift).
Keys are hashes: the file holds no task text and no gold. It is a cache: an unreadable file is
started afresh, and every write replaces it atomically under a lock, so two processes measuring at
once lose no entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

from memento_skills.stores.atomic import atomic_write

LIFT_CACHE_FILE = "lift-cache.json"
MAX_ENTRIES = 20_000
"""The most outcomes kept; the oldest go first (a few hundred bytes of JSON per thousand)."""


def outcome_key(case_parts: Iterable[str | None], config: Iterable[str | int | None]) -> str:
    """The key of one case's outcome under one run configuration: a hash of both."""
    digest = hashlib.sha256()
    for part in (*case_parts, "\x1e", *config):
        digest.update(repr(part).encode("utf-8") + b"\x1f")
    return digest.hexdigest()[:40]


class LiftCache:
    """Outcomes without a skill, by `outcome_key`, in `<library>/.memento/lift-cache.json`."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.hits = 0
        self.misses = 0

    @classmethod
    def of_library(cls, library_root: Path | str) -> LiftCache:
        return cls(Path(library_root) / ".memento" / LIFT_CACHE_FILE)

    def _read(self) -> dict[str, bool]:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}  # absent or damaged: a cache starts again
        outcomes = data.get("outcomes") if isinstance(data, dict) else None
        if not isinstance(outcomes, dict):
            return {}
        return {str(k): v for k, v in outcomes.items() if isinstance(v, bool)}

    def get(self, key: str) -> bool | None:
        """The kept outcome (passed or not), None when there is none; counts hits and misses."""
        found = self._read().get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: str, passed: bool) -> None:
        """Keep one outcome (read, merge and replace under the file's lock)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            outcomes = self._read()
            outcomes.pop(key, None)
            outcomes[key] = passed
            kept = dict(list(outcomes.items())[-MAX_ENTRIES:])
            data = json.dumps({"version": 1, "outcomes": kept}, indent=0).encode("utf-8")
            atomic_write(self.path, data)
