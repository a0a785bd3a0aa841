"""A library's stable id (.memento/library.json): made once, even by racing processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memento_skills.stores.library_id import library_id

RACER = """
import sys, time
from memento_skills.stores.library_id import library_id
while time.time() < float(sys.argv[2]):
    pass
print(library_id(sys.argv[1]))
"""


def test_racing_processes_agree_on_one_id(tmp_path: Path) -> None:
    root = tmp_path / "skills"
    root.mkdir()
    start = str(time.time() + 1.5)  # all of them call library_id at the same moment
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(root), start], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    ids = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(ids) == 1 and next(iter(ids)).startswith("skills-"), ids
    record = json.loads((root / ".memento" / "library.json").read_text())
    assert record["id"] in ids and record["path"] == str(root.resolve())
    assert library_id(root) in ids


def test_a_damaged_id_file_is_replaced_and_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "My Skills!"
    root.mkdir()
    first = library_id(root)
    assert first.startswith("my-skills-")
    (root / ".memento" / "library.json").write_text("{not json")
    second = library_id(root)
    assert second != first and library_id(root) == second
    with pytest.raises(FileNotFoundError, match="No library folder here") as err:
        library_id(tmp_path / "absent")
    assert err.value.filename == str(tmp_path / "absent") and "\n" not in str(err.value)
