"""The library's change log: a reader learns which skills the writes since its token touched, or
that only a full scan can tell; never a silently missed write."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from memento_skills.stores import change_log
from memento_skills.stores.change_log import ABSENT, ChangeLog
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import Skill


def test_names_since_a_token_then_nothing(tmp_path: Path) -> None:
    log = ChangeLog(tmp_path / "changes")
    assert log.since("") == (ABSENT, None)  # no token yet: unknown
    assert log.since(ABSENT) == (ABSENT, set())  # nothing written since it
    log.append(["b", "a"])
    token, names = log.since(ABSENT)
    assert names == {"a", "b"}
    assert log.since(token) == (token, set())
    log.append(["c"])
    token2, names = log.since(token)
    assert names == {"c"} and token2 != token


def test_a_line_still_being_written_waits_for_the_next_look(tmp_path: Path) -> None:
    log = ChangeLog(tmp_path / "changes")
    log.append(["a"])
    token, _ = log.since(ABSENT)
    with open(log.path, "ab") as f:
        f.write(b"half")
    again, names = log.since(token)
    assert (again, names) == (token, set())
    with open(log.path, "ab") as f:
        f.write(b"-done\n")
    assert log.since(again)[1] == {"half-done"}


def test_a_new_log_or_an_unnamed_write_means_a_full_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ChangeLog(tmp_path / "changes")
    log.append(["a"])
    token, _ = log.since(ABSENT)
    log.append([])  # a write that cannot say what it touched
    token, names = log.since(token)
    assert names is None
    monkeypatch.setattr(change_log, "MAX_BYTES", 64)
    for i in range(20):
        log.append([f"skill-{i}"])
    assert log.path.stat().st_size <= 64
    assert log.since(token)[1] is None  # started anew since: what the old one held is gone
    fresh, _ = log.since("")
    log.append(["z"])
    assert log.since(fresh)[1] == {"z"}


def test_every_write_of_the_library_is_logged_with_its_skills(tmp_path: Path) -> None:
    library = SkillLibrary(tmp_path / "lib")
    token, _ = library.changes_since("")
    barrier = threading.Barrier(4)

    def write(i: int) -> None:
        barrier.wait()
        library.create(Skill(name=f"skill-{i}", description=f"Skill number {i}.", body="b"))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    token, names = library.changes_since(token)
    assert names == {f"skill-{i}" for i in range(4)}  # each thread logged its own name
    library.rename("skill-0", "skill-zero")
    library.record_outcome("skill-1", True)
    token, names = library.changes_since(token)
    assert names == {"skill-0", "skill-zero", "skill-1"}
    library.skills()
    library.get("skill-2")
    assert library.changes_since(token) == (token, set())  # reads log nothing
