"""`dump_library`/`load_library` between a library folder and a real Postgres store (pgserver):
a replace keeps the store's history, what cannot be carried is named, not silently dropped."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from memento_skills.stores.cases import Case, CaseStore
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.library_transfer import TransferReport, dump_library, load_library
from memento_skills.stores.router_weights import RouterWeightsStore, weights_dir
from memento_skills.stores.shared_store import SharedLibrary, open_shared
from memento_skills.stores.skill import SKILL_FILE, Skill, SkillError

NOTE = Skill(
    name="take-notes",
    description="Write notes to a file. Use when a task asks to keep notes.",
    body="Append the note to notes.md.",
)


@pytest.fixture
def store(postgres_url: str, tmp_path: Path) -> SharedLibrary:
    name = f"t{uuid.uuid4().hex[:10]}"
    return open_shared(postgres_url, name, cache_dir=tmp_path / "copy", seed=False)


def _load(folder: Path, store: SharedLibrary, *, replace: bool = False) -> TransferReport:
    weights = RouterWeightsStore(weights_dir(store.skills.root))
    return load_library(folder, store.skills, store.cases, weights, replace=replace)


def test_a_replacing_load_writes_the_next_version_and_keeps_the_history(
    store: SharedLibrary, tmp_path: Path
) -> None:
    store.skills.create(NOTE)
    store.skills.update("take-notes", body="Append the note to notes.md, dated.")  # v2 live
    folder = SkillLibrary(tmp_path / "lib")
    folder.create(NOTE, files={"scripts/append.py": b"print('note')\n"})  # v1 in the folder
    report = _load(folder.root, store)
    assert report.skipped == ["take-notes"] and report.skills == []
    assert store.skills.get("take-notes").version == 2
    _load(folder.root, store, replace=True)
    live = store.skills.get("take-notes")
    assert live.version == 3 and live.parent_version == 2  # v1 is taken: the next number
    assert live.body == NOTE.body
    assert store.skills.read_file("take-notes", "scripts/append.py") == b"print('note')\n"
    assert [v.version for v in store.skills.history("take-notes")] == [1, 2, 3]


def test_what_a_dump_cannot_carry_is_named_and_the_rest_is_written(
    store: SharedLibrary, tmp_path: Path
) -> None:
    folder = SkillLibrary(tmp_path / "lib")
    folder.create(NOTE)
    given = tmp_path / "notes.txt"
    given.write_text("a note\n")
    cases = CaseStore(folder.root)
    cases.add("take-notes", Case(task="keep this note", ground_truth="ok"), {"notes.txt": given})
    shutil.rmtree(cases.files_dir)  # a partial copy of the library: the case's file is gone
    (folder.root / "broken").mkdir()
    (folder.root / "broken" / SKILL_FILE).write_text("no frontmatter\n")
    report = _load(folder.root, store)
    assert report.skills == ["take-notes"] and report.cases == 0
    problems = " | ".join(report.problems)
    assert "broken" in problems and "notes.txt" in problems
    out = tmp_path / "out"
    dumped = dump_library(store.skills, store.cases, None, out)
    assert dumped.skills == ["take-notes"] and not dumped.problems
    assert (out / "take-notes" / SKILL_FILE).read_bytes() == (
        folder.root / "take-notes" / SKILL_FILE
    ).read_bytes()
    assert not list(tmp_path.glob(".out.partial-*"))  # the staging folder became `out`


def test_loading_into_a_folder_library_is_refused_with_the_way_to_do_it(tmp_path: Path) -> None:
    source, target = SkillLibrary(tmp_path / "a"), SkillLibrary(tmp_path / "b")
    source.create(NOTE)
    with pytest.raises(SkillError, match="load into a shared store"):
        load_library(source.root, target, CaseStore(target.root), None)
    assert target.names() == []
