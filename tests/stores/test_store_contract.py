"""The skill store's guarantees, checked on every backend through the `SkillStore` seam.

Each test runs on the folder library and on the Postgres store (a real server from the
`pgserver` wheel); "workers" are separate store handles on one library, or real processes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import Skill
from memento_skills.stores.skill_store import SkillStore

from support.stores import open_spec, worker

BACKENDS = ["folder"]

Opener = Callable[[], SkillStore]


@pytest.fixture(params=BACKENDS)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where one fresh library of the backend lives (a new library name on the shared server)."""
    if request.param == "folder":
        return {"backend": "folder", "root": str(tmp_path / "skills")}
    url = request.getfixturevalue("postgres_url")
    return {
        "backend": "postgres",
        "url": url,
        "library": f"t-{uuid.uuid4().hex[:12]}",
        "cache": str(tmp_path / "cache"),
    }


@pytest.fixture
def open_store(spec: dict[str, Any], tmp_path: Path) -> Opener:
    """Open another handle on the test's library, as another worker would (own cache)."""
    count = 0

    def opener() -> SkillStore:
        nonlocal count
        count += 1
        if spec["backend"] == "postgres":
            return open_spec({**spec, "cache": str(tmp_path / f"cache-{count}")})
        return open_spec(spec)

    return opener


@pytest.fixture
def store(open_store: Opener) -> SkillStore:
    return open_store()


def make(name: str = "pdf-tables", body: str = "# Steps\n1. Read the file.") -> Skill:
    return Skill(
        name=name, description=f"Does {name} things. Use when a task needs {name}.", body=body
    )


def test_the_folder_library_is_a_skill_store(tmp_path: Path) -> None:
    library: SkillStore = SkillLibrary(tmp_path / "skills")  # mypy checks the structure too
    assert isinstance(library, SkillStore)


# ------------------------------------------------------------------ generation


def test_generation_moves_on_every_write_and_never_on_a_read(store: SkillStore) -> None:
    seen = [store.generation()]

    def moved() -> None:
        now = store.generation()
        assert now not in seen, f"generation did not move: {seen} then {now}"
        seen.append(now)

    def still() -> None:
        assert store.generation() == seen[-1]

    store.create(make("alpha"), files={"scripts/run.py": b"print(1)\n"})
    moved()
    store.skills(), store.get("alpha"), store.history("alpha"), store.list_files("alpha")
    still()
    store.update("alpha", body="# Steps\n1. Two.")
    moved()
    store.diff("alpha", 1, 2), store.read_version("alpha", 1)
    still()
    store.record_outcome("alpha", True, key="run-1")
    moved()
    store.rollback("alpha", 1)
    moved()
    store.rename("alpha", "beta")
    moved()
    store.delete("beta")
    moved()
    assert store.names() == []
    still()


def test_generation_moves_when_another_process_writes(
    spec: dict[str, Any], store: SkillStore
) -> None:
    store.create(make("alpha", body="count: 0"))
    before = store.generation()
    proc = worker(spec, "update", "alpha", "count: 1")
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert store.generation() != before
    assert store.get("alpha").body.strip() == "count: 1"
