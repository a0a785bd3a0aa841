"""A learning run's durable records: the fsynced JSONL logs of results and rounds, and their keys.

Every result is appended and fsynced as it completes, so a rerun can skip each (phase, split,
round, task) already recorded; the report reads the same files without the runner.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

Key = tuple[str, str, int, str]
"""(phase, split, round, task id): what a result is recorded under, and what a rerun skips."""


class JsonlLog:
    """Append-only JSONL that survives a kill: each line is flushed and fsynced before return.

    A kill during a write can leave a partial last line; opening the log cuts it off, so the
    next append starts on a fresh line and the half-written result simply counts as not done.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        if path.exists():
            data = path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                with path.open("r+b") as f:
                    f.truncate(end)
                    os.fsync(f.fileno())
            for line in data[:end].splitlines():
                if line.strip():
                    self.records.append(json.loads(line))

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.records.append(dict(record))


def result_key(record: Mapping[str, Any]) -> Key:
    return (record["phase"], record["split"], int(record["round"]), record["task_id"])


def load_results(run_dir: Path | str) -> list[dict[str, Any]]:
    path = Path(run_dir) / "results.jsonl"
    return JsonlLog(path).records if path.exists() else []


def load_rounds(run_dir: Path | str) -> list[dict[str, Any]]:
    path = Path(run_dir) / "rounds.jsonl"
    return JsonlLog(path).records if path.exists() else []


def duplicate_keys(records: Iterable[Mapping[str, Any]]) -> list[Key]:
    seen: set[Key] = set()
    dupes: list[Key] = []
    for r in records:
        key = result_key(r)
        if key in seen:
            dupes.append(key)
        seen.add(key)
    return dupes
