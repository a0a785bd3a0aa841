"""The skill store's guarantees, checked on every backend through the `SkillStore` seam.

Each test runs on the folder library and on the Postgres store (a real server from the
`pgserver` wheel); "workers" are separate store handles on one library, or real processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memento_skills.stores.library import SkillLibrary, SkillLockedError
from memento_skills.stores.skill import (
    Lift,
    Skill,
    SkillError,
    SkillExistsError,
    SkillNotFoundError,
    SkillValidationError,
    UnsafePathError,
)
from memento_skills.stores.skill_store import SkillStore
from memento_skills.stores.trust import scripts_trusted, set_trust

from support.stores import open_spec, worker

BACKENDS = ["folder", "postgres"]

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
def open_store(spec: dict[str, Any], tmp_path: Path) -> Iterator[Opener]:
    """Open another handle on the test's library, as another worker would (own cache)."""
    opened: list[SkillStore] = []

    def opener() -> SkillStore:
        if spec["backend"] == "postgres":
            opened.append(open_spec({**spec, "cache": str(tmp_path / f"cache-{len(opened)}")}))
        else:
            opened.append(open_spec(spec))
        return opened[-1]

    yield opener
    for handle in opened:
        close = getattr(handle, "close", None)
        if close is not None:
            close()


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


def test_changes_since_names_what_any_worker_wrote(open_store: Opener) -> None:
    """What lets a reader reload only the skills written since it last looked, not the library."""
    store, other = open_store(), open_store()
    token, _ = store.changes_since("")
    other.create(make("alpha"))
    other.create(make("beta"))
    token, names = store.changes_since(token)
    assert names == {"alpha", "beta"}
    other.rename("alpha", "gamma")
    other.record_outcome("beta", True, key="run-1")
    token, names = store.changes_since(token)
    assert names == {"alpha", "gamma", "beta"}
    other.set_lifecycle("beta", "deprecated", reason="retired")
    other.delete("gamma")
    token, names = store.changes_since(token)
    assert names == {"beta", "gamma"}
    store.skills(), store.get("beta"), store.history("beta")
    assert store.changes_since(token) == (token, set())  # reads change nothing
    assert store.changes_since("not-a-token")[1] is None  # only a full scan can tell


# ------------------------------------------------------------------ reading and writing


def test_create_get_and_files_round_trip(store: SkillStore) -> None:
    made = store.create(make("alpha"), files={"scripts/run.py": b"print(1)\n", "ref/a.md": b"A"})
    assert (made.version, made.parent_version) == (1, None)
    assert store.exists("alpha") and store.names() == ["alpha"]
    got = store.get("alpha")
    assert got.body == made.body and got.path == store.skill_dir("alpha") / "SKILL.md"
    assert store.list_files("alpha") == ["ref/a.md", "scripts/run.py"]
    assert store.read_file("alpha", "scripts/run.py") == b"print(1)\n"
    # the local folder holds the live version whole, for the code that reads files
    folder = store.skill_dir("alpha")
    assert (folder / "scripts" / "run.py").read_bytes() == b"print(1)\n"
    assert b"name: alpha" in (folder / "SKILL.md").read_bytes()
    with pytest.raises(SkillExistsError, match="already exists"):
        store.create(make("alpha"))
    with pytest.raises(SkillNotFoundError):
        store.get("beta")
    assert not store.exists("beta")
    with pytest.raises(UnsafePathError):
        store.get("../etc")
    with pytest.raises(FileNotFoundError):
        store.read_file("alpha", "scripts/none.py")


def test_update_makes_a_new_version_and_keeps_the_old_in_history(store: SkillStore) -> None:
    store.create(make("alpha", body="one"), files={"scripts/a.py": b"a\n", "scripts/b.py": b"b\n"})
    new = store.update(
        "alpha", body="two", files={"scripts/c.py": b"c\n"}, remove_files=("scripts/a.py",)
    )
    assert (new.version, new.parent_version, new.body.strip()) == (2, 1, "two")
    assert store.list_files("alpha") == ["scripts/b.py", "scripts/c.py"]
    assert [(v.version, v.live) for v in store.history("alpha")] == [(1, False), (2, True)]
    assert store.read_version("alpha", 1).body.strip() == "one"
    diff = store.diff("alpha", 1, 2)
    assert "-one" in diff and "+two" in diff
    assert "alpha@v1/scripts/a.py" in diff and "alpha@v2/scripts/c.py" in diff
    with pytest.raises(SkillNotFoundError):
        store.read_version("alpha", 9)
    with pytest.raises(SkillError, match="managed by the library"):
        store.update("alpha", version=7)
    with pytest.raises(SkillNotFoundError):
        store.update("nobody", body="x")


def test_a_refused_write_leaves_the_live_version_whole(store: SkillStore) -> None:
    store.create(make("alpha", body="kept"), files={"scripts/a.py": b"a\n"})
    with pytest.raises(SkillValidationError):
        store.update("alpha", description="")  # an empty description does not parse back
    with pytest.raises(SkillError):
        store.update("alpha", files={"SKILL.md": b"x"})
    live = store.get("alpha")
    assert (live.version, live.body.strip()) == (1, "kept")
    assert [v.version for v in store.history("alpha")] == [1]
    assert store.list_files("alpha") == ["scripts/a.py"]


def test_utility_counts_once_per_key_and_survive_new_versions(store: SkillStore) -> None:
    store.create(make("alpha"))
    store.record_outcome("alpha", True, key="run-1")
    store.record_outcome("alpha", True, key="run-1")  # a replayed run: counted once
    store.record_outcome("alpha", False)
    live = store.get("alpha")
    assert (live.utility.successes, live.utility.failures, live.version) == (1, 1, 1)
    assert live.outcomes == ("run-1",)
    updated = store.update("alpha", body="refined")
    assert (updated.utility.successes, updated.utility.failures) == (1, 1)
    for k in range(20):
        store.record_outcome("alpha", True, key=f"k{k}")
    assert store.get("alpha").outcomes == tuple(f"k{k}" for k in range(4, 20))
    assert store.get("alpha").utility.successes == 21
    with pytest.raises(SkillNotFoundError):
        store.record_outcome("nobody", True)


def test_delete_rollback_and_numbering(store: SkillStore) -> None:
    store.create(make("alpha", body="one"))
    store.update("alpha", body="two")
    store.delete("alpha")
    assert not store.exists("alpha") and store.names() == []
    assert not store.skill_dir("alpha").exists()
    assert [v.live for v in store.history("alpha")] == [False, False]
    with pytest.raises(SkillNotFoundError):
        store.delete("alpha")
    back = store.rollback("alpha", 1)
    assert (back.version, back.parent_version, back.body.strip()) == (3, 1, "one")
    again = store.rollback("alpha", 2)
    assert (again.version, again.body.strip()) == (4, "two")
    store.delete("alpha")
    assert store.create(make("alpha", body="new")).version == 5  # numbering continues


def test_rename_takes_history_along(store: SkillStore) -> None:
    store.create(make("alpha", body="one"), files={"scripts/a.py": b"a\n"})
    store.update("alpha", body="two")
    store.create(make("other"))
    renamed = store.rename("alpha", "beta")
    assert (renamed.name, renamed.version, renamed.parent_version) == ("beta", 3, 2)
    assert store.names() == ["beta", "other"]
    assert [v.version for v in store.history("beta")] == [1, 2, 3]
    assert store.read_file("beta", "scripts/a.py") == b"a\n"
    with pytest.raises(SkillNotFoundError):
        store.history("alpha")
    with pytest.raises(SkillExistsError):
        store.rename("beta", "other")
    with pytest.raises(SkillError, match="cannot rename"):
        store.rename("beta", "Not A Name")


def test_another_worker_sees_every_write(open_store: Opener) -> None:
    a, b = open_store(), open_store()
    a.create(make("alpha", body="one"), files={"scripts/a.py": b"a\n"})
    assert b.get("alpha").body.strip() == "one" and b.read_file("alpha", "scripts/a.py") == b"a\n"
    a.update("alpha", body="two", files={"scripts/a.py": b"A\n"})
    a.record_outcome("alpha", True)
    seen = b.get("alpha")
    assert (seen.version, seen.body.strip(), seen.utility.successes) == (2, "two", 1)
    assert (b.skill_dir("alpha") / "scripts" / "a.py").read_bytes() == b"A\n"
    assert seen.utility == a.get("alpha").utility
    a.rename("alpha", "beta")
    assert b.names() == ["beta"] and not b.skill_dir("alpha").exists()
    a.delete("beta")
    assert b.names() == [] and not b.exists("beta")


def test_a_held_write_lock_keeps_other_workers_writes_out_until_released(
    spec: dict[str, Any], store: SkillStore
) -> None:
    store.create(make("alpha", body="one"))
    holder = worker(spec, "hold-lock", "alpha", stdin=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "locked"
    impatient = open_spec({**spec, "lock_timeout_s": 1, "cache": f"{spec.get('cache')}-x"})
    with pytest.raises(SkillLockedError, match="timed out"):
        impatient.update("alpha", body="two")
    assert impatient.get("alpha").body.strip() == "one"  # reads never wait
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.wait(timeout=60) == 0
    assert impatient.update("alpha", body="two").version == 2


def test_a_write_lock_dies_with_the_process_holding_it(
    spec: dict[str, Any], store: SkillStore
) -> None:
    store.create(make("alpha", body="one"))
    holder = worker(spec, "hold-lock", "alpha", stdin=subprocess.PIPE)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    impatient = open_spec({**spec, "lock_timeout_s": 5, "cache": f"{spec.get('cache')}-x"})
    assert impatient.update("alpha", body="two").version == 2


def test_trusting_scripts_takes_the_lock_and_writes_a_version(store: SkillStore) -> None:
    store.create(make("alpha").with_changes(trusted=False), files={"scripts/run.py": b"print(1)\n"})
    live, changed = set_trust(store, "alpha", True, "ops")  # lock() around get + update
    assert changed and live.version == 2 and live.trusted and live.trust_by == "ops"
    assert scripts_trusted(live, store.skill_dir("alpha"))
    assert set_trust(store, "alpha", True, "ops") == (store.get("alpha"), False)
    store.update("alpha", files={"scripts/run.py": b"print(2)\n"})  # an edit needs trust again
    assert not scripts_trusted(store.get("alpha"), store.skill_dir("alpha"))


def test_a_skill_folder_mcp_json_is_read_from_the_live_folder(store: SkillStore) -> None:
    config = b'{"mcpServers": {"calc": {"command": "python3", "args": ["-m", "calc"]}}}'
    store.create(make("alpha"), files={"mcp.json": config})
    assert [s.name for s in store.mcp_servers(store.get("alpha"))] == ["calc"]
    with pytest.raises(SkillValidationError, match=r"mcp\.json"):  # written, then read back
        store.update("alpha", files={"mcp.json": b"{not json"})
    assert store.names() == [] and "mcp.json" in str(store.scan().errors[0])


# ------------------------------------------------------------------ lifecycle and lift


def learned(name: str = "base-convert") -> Skill:
    return make(name, body="Call python with int(value, base).").with_changes(
        provenance="learned", lifecycle="candidate"
    )


def test_a_lifecycle_move_is_a_versioned_reversible_write(store: SkillStore) -> None:
    v1 = store.create(learned())
    assert store.set_lifecycle(v1.name, "candidate").version == 1  # already there
    v2 = store.set_lifecycle(v1.name, "deprecated", reason="lift -0.50 on 2 cases")
    assert (v2.version, v2.lifecycle, v2.lifecycle_reason) == (
        2,
        "deprecated",
        "lift -0.50 on 2 cases",
    )
    assert [(v.version, v.lifecycle) for v in store.history(v1.name)] == [
        (1, "candidate"),
        (2, "deprecated"),
    ]
    assert store.rollback(v1.name, 1).lifecycle == "candidate"
    with pytest.raises(SkillError, match="unknown lifecycle"):
        store.set_lifecycle(v1.name, "retired")  # type: ignore[arg-type]
    assert store.get(v1.name).version == 3


def test_a_lift_is_kept_until_the_content_it_measured_changes(store: SkillStore) -> None:
    v1 = store.create(learned())
    lift = Lift(2, 2, 0, 2, 1)
    assert store.record_lift(v1.name, lift).version == 2
    assert store.record_lift(v1.name, lift).version == 2  # the same lift: nothing written
    assert (
        b"memento-lift: with 2/2 without 0/2 v1"
        in (store.skill_dir(v1.name) / "SKILL.md").read_bytes()
    )
    assert store.set_lifecycle(v1.name, "active").lift == lift  # bookkeeping keeps it
    assert store.record_lift(v1.name, Lift(1, 2, 0, 2, 1)).version == 4  # v1's content is live
    changed = store.update(v1.name, body="Call python with format(value, 'x').")
    assert (changed.lift, changed.lifecycle) == (None, "active")
    with pytest.raises(SkillError, match="changed since v1"):
        store.record_lift(v1.name, Lift(2, 2, 0, 2, 1))
    with pytest.raises(SkillError, match="after the live"):
        store.record_lift(v1.name, Lift(2, 2, 0, 2, 9))
    store.record_lift(v1.name, Lift(2, 2, 0, 2, 5))
    assert store.update(v1.name, files={"scripts/c.py": b"print(1)\n"}).lift is None


def test_the_gate_marks_the_vetted_version_in_place_and_only_while_live(
    open_store: Opener,
) -> None:
    store, other = open_store(), open_store()
    v1 = store.create(learned().with_changes(lifecycle="draft", change="change-1"))
    before = store.generation()
    marked = store.record_gate(v1.name, 1, "candidate", reason="passed its gate")
    assert (marked.version, marked.lifecycle, marked.change) == (1, "candidate", "change-1")
    assert store.generation() != before
    assert other.get(v1.name).lifecycle == "candidate"  # another worker sees it
    assert store.find_change(v1.name, "change-1") == (1, True)
    store.update(v1.name, body="Another body.")
    with pytest.raises(SkillError, match="not the vetted v1"):
        store.record_gate(v1.name, 1, "draft")
    assert other.get(v1.name).lifecycle == "candidate"


# ------------------------------------------------------------------ trials


def test_a_failed_trial_takes_the_change_back_without_a_trace(store: SkillStore) -> None:
    store.create(make("alpha", body="vetted"), files={"scripts/a.py": b"vetted\n"})
    live = store.update("alpha", body="unvetted", files={"scripts/b.py": b"# unvetted\n"})
    with pytest.raises(RuntimeError), store.trial("alpha", live.version, 1):
        raise RuntimeError("the gate refused it")
    back = store.get("alpha")
    assert (back.body.strip(), back.version, back.parent_version) == ("vetted", 3, 1)
    assert store.list_files("alpha") == ["scripts/a.py"]
    assert [v.version for v in store.history("alpha")] == [1, 3]
    with pytest.raises(SkillNotFoundError):
        store.read_version("alpha", 2)
    # a refused new skill leaves nothing, and does not block a second try
    made = store.create(make("fresh", body="unvetted"))
    with pytest.raises(RuntimeError), store.trial("fresh", made.version, None):
        raise RuntimeError("refused")
    assert not store.exists("fresh")
    assert store.create(make("fresh", body="second try")).version == 1


def test_a_finished_trial_keeps_the_change(store: SkillStore) -> None:
    store.create(make("alpha", body="vetted"))
    live = store.update("alpha", body="better")
    with store.trial("alpha", live.version, 1):
        pass
    assert store.get("alpha").body.strip() == "better"
    assert store.recover_trials() == []


def test_a_keyed_change_is_found_and_discarded(store: SkillStore) -> None:
    store.create(make("alpha", body="base"))
    assert store.find_change("alpha", "chg-1") is None
    with store.change_on_trial("alpha", 1, "chg-1"):
        written = store.update("alpha", body="changed", change="chg-1")
        assert store.find_change("alpha", "chg-1") == (written.version, True)
    assert store.discard_change("alpha", "chg-1", 1)
    back = store.get("alpha")
    assert (back.version, back.body.strip()) == (1, "base")
    assert [v.version for v in store.history("alpha")] == [1]
    assert store.find_change("alpha", "chg-1") is None
    assert not store.discard_change("alpha", "chg-1", 1)  # not that change's any more
    # taking back a version that is no longer live removes it from history only
    v2 = store.update("alpha", body="second", change="chg-2")
    store.update("alpha", body="third")
    assert store.find_change("alpha", "chg-2") == (v2.version, False)
    assert not store.take_back("alpha", v2.version, 1)
    assert store.get("alpha").body.strip() == "third"
    assert store.find_change("alpha", "chg-2") is None


def test_a_trial_killed_with_its_process_is_taken_back_by_the_next_open(
    spec: dict[str, Any], store: SkillStore, open_store: Opener
) -> None:
    store.create(make("alpha", body="vetted"))
    proc = worker(spec, "trial", "alpha", stdin=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "on trial", proc.stderr.read() if proc.stderr else ""
    other = open_store()  # its trial still runs: nothing is taken back
    assert other.recovered == [] and other.get("alpha").body.strip() == "unvetted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    fresh = open_store()
    assert fresh.recovered == ["alpha"]
    back = fresh.get("alpha")
    assert back.body.strip() == "vetted" and back.version == 3
    assert store.get("alpha").body.strip() == "vetted"  # and a worker already open sees it


def test_a_keyed_change_killed_on_trial_leaves_no_trace(
    spec: dict[str, Any], store: SkillStore, open_store: Opener
) -> None:
    store.create(make("alpha", body="vetted"))
    proc = worker(spec, "change-trial", "alpha", stdin=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "on trial", proc.stderr.read() if proc.stderr else ""
    assert store.find_change("alpha", "change-k1") == (2, True)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    fresh = open_store()
    assert fresh.recovered == ["alpha"]
    back = fresh.get("alpha")
    assert (back.version, back.body.strip()) == (1, "vetted")  # as if it had never been made
    assert [v.version for v in fresh.history("alpha")] == [1]
    assert fresh.find_change("alpha", "change-k1") is None


# ------------------------------------------------------------------ concurrency and crashes


def test_eight_workers_updating_one_skill_lose_no_update(
    spec: dict[str, Any], store: SkillStore
) -> None:
    store.create(make("shared", body="count: 0"))
    before = int(store.generation())
    procs = [worker(spec, "count", "shared", "25") for _ in range(8)]
    for proc in procs:
        _out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    live = store.get("shared")
    assert live.body.strip() == "count: 200"
    assert live.version == 201
    assert [v.version for v in store.history("shared")] == list(range(1, 202))
    assert int(store.generation()) == before + 200  # one count per landed write


def test_a_writer_killed_mid_write_leaves_no_torn_version(
    spec: dict[str, Any], store: SkillStore, open_store: Opener
) -> None:
    store.create(make("victim", body="before"), files={"scripts/a.py": b"# before\n"})
    proc = worker(spec, "die-mid-write", "victim")
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "paused", proc.stderr.read() if proc.stderr else line
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    for reader in (store, open_store()):
        live = reader.get("victim")
        assert (live.version, live.body.strip()) == (1, "before")
        assert reader.read_file("victim", "scripts/a.py") == b"# before\n"
        assert [v.version for v in reader.history("victim")] == [1]
        assert reader.scan().errors == []
    after = store.update("victim", body="after", files={"scripts/a.py": b"# after\n"})
    assert (after.version, store.read_file("victim", "scripts/a.py")) == (2, b"# after\n")
