"""The run log: one JSON line per judged run, the material the router and the evals learn from.

Appends are serialised by a file lock so concurrent runs (eval workers, two terminals) never
interleave partial lines; a torn last line from a killed process is skipped on read. A record
appended with a key (one per judged attempt) is appended once: a task resumed after a crash that
replays its write phase finds the record already there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock


class RunLog:
    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()

    def append(self, record: dict[str, Any], *, key: str = "") -> bool:
        """Append `record`; with a `key` (stored in the record as "key"), only if no record
        holds it yet. True when appended."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if key:
            record = {**record, "key": key}
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with FileLock(str(self.path) + ".lock"):
            if key and self._holds(key):
                return False
            with open(self.path, "a+b") as f:
                if f.tell() and (f.seek(-1, 2), f.read(1))[1] != b"\n":
                    line = "\n" + line  # a killed writer's torn line stays apart, and is skipped
                f.write(
                    line.encode("utf-8")
                )  # flushed on close; not fsynced: a log line is not worth 10 ms a task
        return True

    def _holds(self, key: str) -> bool:
        """Whether a record carries `key`: a scan from the end, where a replay's record is."""
        if not self.path.exists():
            return False
        needle = json.dumps(key)
        with open(self.path, encoding="utf-8") as f:
            lines = f.readlines()
        for line in reversed(lines):
            if needle in line:
                try:
                    if json.loads(line).get("key") == key:
                        return True
                except ValueError:
                    continue
        return False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def records(self) -> list[dict[str, Any]]:
        return list(self)
