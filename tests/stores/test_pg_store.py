"""What only the Postgres store does: optimistic writes, the local copy, libraries side by side,
opening a deployment's store (seeded once), and its errors. The shared guarantees are in
test_store_contract.py."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from memento_skills.stores.library_id import library_id
from memento_skills.stores.pg_store import APPLICATION_NAME, PgSkillStore
from memento_skills.stores.settings import open_store, seed_skills_dir
from memento_skills.stores.skill import Skill, SkillError


def make(name: str, body: str = "# Steps\n1. Read the file.") -> Skill:
    return Skill(
        name=name, description=f"Does {name} things. Use when a task needs {name}.", body=body
    )


@pytest.fixture
def library() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def opened() -> Iterator[list[PgSkillStore]]:
    stores: list[PgSkillStore] = []
    yield stores
    for store in stores:
        store.close()


@pytest.fixture
def open_pg(postgres_url: str, library: str, tmp_path: Path, opened: list[PgSkillStore]):
    def opener(name: str = library, cache: str = "cache") -> PgSkillStore:
        opened.append(PgSkillStore(postgres_url, library=name, cache_dir=tmp_path / cache))
        return opened[-1]

    return opener


def test_a_write_based_on_a_stale_version_is_refused_and_applied_again(open_pg) -> None:
    a, b = open_pg(cache="a"), open_pg(cache="b")
    a.create(make("shared", body="start"))
    seen: list[int] = []

    def append_a(current: Skill) -> dict[str, object]:
        seen.append(current.version)
        if len(seen) == 1:  # another worker lands a write between our read and our write
            b.update("shared", body=current.body + "\nfrom b")
        return {"body": current.body + "\nfrom a"}

    result = a.update("shared", apply=append_a)
    assert seen == [1, 2]  # the write based on v1 was refused; applied again to v2
    assert result.version == 3 and result.body.split() == ["start", "from", "b", "from", "a"]
    assert [v.version for v in a.history("shared")] == [1, 2, 3]


def test_two_libraries_in_one_database_keep_apart(open_pg) -> None:
    one, two = open_pg("lib-one"), open_pg("lib-two")
    one.create(make("same-name", body="one's"))
    two.create(make("same-name", body="two's"))
    two.create(make("only-two"))
    assert one.names() == ["same-name"] and two.names() == ["only-two", "same-name"]
    assert one.get("same-name").body.strip() == "one's"
    assert two.get("same-name").body.strip() == "two's"
    assert one.root != two.root
    # each library has its own id, the same in every worker: the Chroma collection's name
    assert library_id(one.root) == library_id(open_pg("lib-one", cache="other").root)
    assert library_id(one.root) != library_id(two.root)


def test_the_local_copy_is_rebuilt_only_where_a_skill_moved(open_pg) -> None:
    writer, reader = open_pg(cache="w"), open_pg(cache="r")
    writer.create(make("stays"), files={"scripts/a.py": b"a\n"})
    writer.create(make("moves"), files={"scripts/a.py": b"a\n"})
    reader.skills()
    stays = os.stat(reader.skill_dir("stays")).st_ino
    moves = os.stat(reader.skill_dir("moves")).st_ino
    generation = reader.generation()
    reader.skills(), reader.get("stays")  # nothing moved: nothing rewritten
    assert os.stat(reader.skill_dir("moves")).st_ino == moves
    writer.update("moves", body="moved", files={"scripts/a.py": b"A\n"})
    assert reader.generation() != generation
    assert reader.read_file("moves", "scripts/a.py") == b"A\n"
    assert os.stat(reader.skill_dir("stays")).st_ino == stays
    assert os.stat(reader.skill_dir("moves")).st_ino != moves
    # a worker restarting on its copy keeps the folders that are current
    again = open_pg(cache="r")
    assert again.names() == ["moves", "stays"]
    assert os.stat(again.skill_dir("stays")).st_ino == stays
    # and drops one the store no longer has
    writer.delete("stays")
    stale = again.root / "stays"
    assert stale.is_dir()
    assert open_pg(cache="r").names() == ["moves"] and not stale.exists()


OPEN = """
import sys
from memento_skills.stores.settings import open_store
store = open_store(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3])
print(len(store.names()))
"""


def test_workers_opening_a_new_library_together_seed_it_once(
    postgres_url: str, library: str, tmp_path: Path, opened: list[PgSkillStore]
) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN, postgres_url, library, str(tmp_path / f"w{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    seeds = sorted(p.name for p in seed_skills_dir().iterdir() if (p / "SKILL.md").is_file())
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.strip() == str(len(seeds))
    store = open_store(postgres_url, library, cache_dir=tmp_path / "me")
    assert isinstance(store, PgSkillStore)
    opened.append(store)
    assert store.names() == seeds
    assert all(len(store.history(n)) == 1 for n in seeds)  # seeded once, not once per worker


def test_an_unreachable_or_wrong_store_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SkillError) as e:
        PgSkillStore(
            "postgresql://memento:s3cret@127.0.0.1:1/memento", cache_dir=tmp_path, library="x"
        )
    message = str(e.value)
    assert "cannot open the skill store at postgresql://memento:***@127.0.0.1:1/memento" in message
    assert "s3cret" not in message and "\n" not in message
    with pytest.raises(SkillError, match="not a Postgres URL"):
        open_store("mysql://db/x", cache_dir=tmp_path)
    with pytest.raises(SkillError, match="store library name"):
        PgSkillStore("postgresql://127.0.0.1:1/x", library="Bad Name", cache_dir=tmp_path)


def test_a_server_dropping_the_connections_is_a_one_line_error_and_reads_recover(
    open_pg, postgres_url: str
) -> None:
    store = open_pg()
    store.create(make("alpha"))

    def drop_all() -> int:
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as admin:
            return len(
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (APPLICATION_NAME,),
                ).fetchall()
            )

    assert drop_all() >= 1
    assert store.get("alpha").name == "alpha"  # a read finds a fresh connection
    assert drop_all() >= 1
    with pytest.raises(SkillError) as e:  # a write is not retried blind: it says so
        store.record_outcome("alpha", True)
    assert "lost the skill store" in str(e.value) and "\n" not in str(e.value)
    assert store.record_outcome("alpha", True).utility.successes == 1


def test_two_workers_sharing_one_copy_keep_it_right(open_pg) -> None:
    a, b = open_pg(cache="shared"), open_pg(cache="shared")
    assert a.root == b.root
    a.create(make("alpha", body="one"), files={"scripts/a.py": b"a\n"})
    assert b.get("alpha").body.strip() == "one"  # a built the folder, b takes it as it is
    b.update("alpha", body="two", files={"scripts/a.py": b"A\n"})
    a.record_outcome("alpha", True)
    for worker in (a, b):
        live = worker.get("alpha")
        assert (live.version, live.body.strip(), live.utility.successes) == (2, "two", 1)
        assert worker.read_file("alpha", "scripts/a.py") == b"A\n"
        assert worker.scan().errors == []
    text = (a.skill_dir("alpha") / "SKILL.md").read_bytes()
    assert b"two" in text and b"memento-successes: '1'" in text
    assert [p.name for p in (a.root / ".memento" / "tmp").iterdir()] == []
