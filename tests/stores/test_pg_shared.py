"""What a library shares besides its skills — regression cases with their files, the run log,
the router weights — kept in a real Postgres (pgserver): the folder's guarantees on both
backends, and two real worker processes writing at once into one library that a third reads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from memento_skills.stores import cases as cases_module
from memento_skills.stores import pg_run_log
from memento_skills.stores.cases import (
    MAX_CASES_PER_SKILL,
    Case,
    CaseNotRecorded,
    Cases,
    CaseStore,
    MissingCaseFiles,
)
from memento_skills.stores.pg_cases import PgCaseStore
from memento_skills.stores.pg_router_weights import PgRouterWeights
from memento_skills.stores.pg_run_log import PgRunLog
from memento_skills.stores.router_weights import (
    KEEP_VERSIONS,
    RouterWeightsError,
    RouterWeightsStore,
    StaleWeights,
    share_weights,
    weights_dir,
)
from memento_skills.stores.run_log import RunLog
from memento_skills.stores.store_url import APPLICATION_NAME, connection_pool

WORKER = Path(__file__).resolve().parent.parent / "support" / "shared_worker.py"


@pytest.fixture
def library() -> str:
    """A library name of this test's own in the session's database."""
    return f"t{uuid.uuid4().hex[:12]}"


def _files(folder: Path, contents: dict[str, bytes]) -> dict[str, Path]:
    out = {}
    for name, data in contents.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[name] = path
    return out


CaseBackend = Callable[[Path], Cases]


@pytest.fixture(params=["folder", "postgres"])
def open_cases(request: pytest.FixtureRequest, library: str) -> CaseBackend:
    """Opens the cases of one library for a worker whose local copy is at the folder given."""
    if request.param == "folder":
        shared = Path(request.getfixturevalue("tmp_path")) / "library"
        return lambda _copy: CaseStore(shared)
    pool = connection_pool(request.getfixturevalue("postgres_url"))
    return lambda copy: PgCaseStore(pool, library, copy)


def test_cases_keep_their_files_byte_for_byte_and_are_added_once(
    open_cases: CaseBackend, tmp_path: Path
) -> None:
    store = open_cases(tmp_path / "worker-a")
    given = _files(tmp_path / "given", {"data.txt": b"42\n", "img/raw.bin": bytes(range(256))})
    case = Case(task="what does the file hold?", ground_truth="42")
    assert store.add("read-file", case, given) is True
    assert store.add("read-file", case, given) is False  # same task, gold and files
    other = open_cases(tmp_path / "worker-b")  # another worker's copy of the same library
    (loaded,) = other.load("read-file")
    assert [a.name for a in loaded.attachments] == ["data.txt", "img/raw.bin"]
    found = other.files_of(loaded)
    assert found["data.txt"].read_bytes() == b"42\n"
    assert found["img/raw.bin"].read_bytes() == bytes(range(256))
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in found.values())
    assert (found["data.txt"].parents[2].stat().st_mode & 0o777) == 0o700  # .memento/cases


def test_a_case_solved_again_with_other_files_replaces_it_and_its_old_files_go(
    open_cases: CaseBackend, tmp_path: Path
) -> None:
    store = open_cases(tmp_path / "worker-a")
    case = Case(task="what does the file hold?", ground_truth="42")
    store.add("read-file", case, _files(tmp_path / "v1", {"data.txt": b"old 42\n"}))
    (old,) = store.load("read-file")
    assert store.add("read-file", case, _files(tmp_path / "v2", {"data.txt": b"new 42\n"}))
    (new,) = store.load("read-file")
    assert new.attachments != old.attachments
    fresh = open_cases(tmp_path / "worker-c")  # a worker that never saw the old file
    assert fresh.files_of(new)["data.txt"].read_bytes() == b"new 42\n"
    with pytest.raises(MissingCaseFiles, match=r"data\.txt"):
        fresh.files_of(old)  # no case refers to it any more: it was deleted


def test_a_skill_keeps_its_newest_cases_and_a_rename_takes_them_along(
    open_cases: CaseBackend, tmp_path: Path
) -> None:
    store = open_cases(tmp_path / "worker-a")
    for i in range(MAX_CASES_PER_SKILL + 3):
        store.add("add-numbers", Case(task=f"what is {i} + 1?", ground_truth=str(i + 1)))
    kept = store.load("add-numbers")
    assert [c.ground_truth for c in kept] == [str(i + 1) for i in range(3, MAX_CASES_PER_SKILL + 3)]
    store.rename("add-numbers", "sum-numbers")
    assert store.load("add-numbers") == []
    assert open_cases(tmp_path / "worker-b").load("sum-numbers") == kept


def test_a_case_with_too_large_files_is_not_recorded_and_says_why(
    open_cases: CaseBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cases_module, "MAX_CASE_FILES_BYTES", 1000)
    store = open_cases(tmp_path / "worker-a")
    big = _files(tmp_path / "given", {"big.bin": b"x" * 2000})
    with pytest.raises(CaseNotRecorded, match="MB a regression case may keep"):
        store.add("read-file", Case(task="t", ground_truth="g"), big)
    assert store.load("read-file") == []


@pytest.fixture(params=["file", "postgres"])
def open_log(request: pytest.FixtureRequest, library: str, tmp_path: Path) -> Callable[[], Any]:
    if request.param == "file":
        return lambda: RunLog(tmp_path / "runs.jsonl")
    pool = connection_pool(request.getfixturevalue("postgres_url"))
    return lambda: PgRunLog(pool, library)


def test_the_run_log_keeps_order_and_appends_a_keyed_record_once(
    open_log: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_run_log, "PAGE", 2)  # the store reads its log in pages: several here
    log = open_log()
    assert log.append({"task": "été", "n": 1}, key="attempt-1") is True
    assert log.append({"task": "replayed", "n": 1}, key="attempt-1") is False
    assert log.append({"task": "unkeyed", "z": 0, "a": [1, 2]}) is True
    assert log.append({"task": "unkeyed", "z": 0, "a": [1, 2]}) is True  # no key: no dedup
    records = open_log().records()
    assert records == [
        {"task": "été", "n": 1, "key": "attempt-1"},
        {"task": "unkeyed", "z": 0, "a": [1, 2]},
        {"task": "unkeyed", "z": 0, "a": [1, 2]},
    ]
    assert list(records[1]) == ["task", "z", "a"]  # the keys in the order written


def test_shared_router_weights_are_versioned_pruned_and_checked(
    postgres_url: str, library: str, tmp_path: Path
) -> None:
    pool = connection_pool(postgres_url)
    shared = PgRouterWeights(pool, library)
    share_weights(tmp_path / "copy", shared)
    store = RouterWeightsStore(weights_dir(tmp_path / "copy"))  # what the router makes
    assert store.shared is shared and not store.exists() and store.load() is None
    for i in range(KEEP_VERSIONS + 2):
        saved = store.save({"w": np.full((2, 2), i, np.float32)}, {"i": i})
    assert saved.version == KEEP_VERSIONS + 2 == store.live_version()
    assert not (tmp_path / "copy").exists()  # nothing went to the folder
    other = PgRouterWeights(connection_pool(postgres_url), library).load()  # another reader
    assert other is not None
    arrays, header, version = other
    assert version == KEEP_VERSIONS + 2 and header["i"] == KEEP_VERSIONS + 1
    assert arrays["w"].tolist() == [[KEEP_VERSIONS + 1] * 2] * 2
    with pool.connection() as conn:
        kept = conn.execute(
            "SELECT count(*) FROM memento_router_weights WHERE library = %s", (library,)
        ).fetchone()
        assert kept is not None and kept[0] == KEEP_VERSIONS
        conn.execute(  # damaged in the database: the checksum catches it
            "UPDATE memento_router_weights SET data = substring(data from 1 for 40) "
            "WHERE library = %s AND version = %s",
            (library, version),
        )
    with pytest.raises(RouterWeightsError, match=r"checksum.*memento router train"):
        store.load()
    assert RouterWeightsStore(weights_dir(tmp_path / "unshared")).shared is None


def test_a_checked_weights_save_over_a_stale_version_is_refused(
    postgres_url: str, library: str, tmp_path: Path
) -> None:
    """Both backends: a save built on the live version lands; one built on an older version
    (or on none while one is live) is refused, and nothing is written."""
    share_weights(tmp_path / "shared", PgRouterWeights(connection_pool(postgres_url), library))
    for root in (tmp_path / "shared", tmp_path / "folder"):
        store = RouterWeightsStore(weights_dir(root))
        arrays = {"w": np.zeros((1, 1), np.float32)}
        assert store.save(arrays, {}, over=None).version == 1
        assert store.save(arrays, {}, over=1).version == 2
        for stale in (1, None):
            with pytest.raises(StaleWeights, match="v2 is live"):
                store.save(arrays, {}, over=stale)
        assert store.live_version() == 2
        assert store.save(arrays, {}).version == 3  # unchecked: over whatever is live


def _worker(url: str, library: str, root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, library, str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _done(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return dict(json.loads(out))


def test_two_worker_processes_share_cases_files_run_log_and_weights(
    postgres_url: str, library: str, tmp_path: Path
) -> None:
    sys.path.insert(0, str(WORKER.parent))
    from shared_worker import RECORDS, SHARED_KEY, payload

    tags = ("alpha", "bravo-two")
    writers = [_worker(postgres_url, library, tmp_path / tag, "write", tag) for tag in tags]
    wrote = dict(zip(tags, (_done(w) for w in writers), strict=True))
    assert all(w["added"] for w in wrote.values())
    assert sum(w["appended"] for w in wrote.values()) == 2 * RECORDS + 1  # the shared key once
    assert sorted(w["version"] for w in wrote.values()) == [1, 2]  # two saves, two versions

    seen = _done(_worker(postgres_url, library, tmp_path / "reader", "read"))
    assert seen["cases"] == sorted(tags)
    for tag in tags:
        for name, data in payload(tag).items():
            assert seen["files"][f"{tag}/{name}"] == {"hex": data.hex(), "mode": 0o600}
    log = seen["log"]
    assert len(log) == 2 * RECORDS + 1
    assert [r["key"] for r in log].count(SHARED_KEY) == 1
    for tag in tags:
        assert [r["n"] for r in log if r["writer"] == tag and r["n"] >= 0] == list(range(RECORDS))
    last = next(tag for tag, w in wrote.items() if w["version"] == 2)
    assert seen["weights"] == {"version": 2, "writer": last, "w": [[len(last)] * 4] * 3}


def test_connections_the_server_dropped_are_replaced_before_use(
    postgres_url: str, library: str
) -> None:
    log = PgRunLog(connection_pool(postgres_url), library)
    assert log.append({"n": 1})
    with psycopg.connect(postgres_url, autocommit=True) as admin:  # as a server restart does
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (APPLICATION_NAME,),
        ).fetchone()
    assert row is not None and row[0] >= 1
    assert log.append({"n": 2})
    assert [r["n"] for r in log.records()] == [1, 2]


def test_two_workers_adding_the_same_cases_at_once_record_each_once(
    postgres_url: str, library: str, tmp_path: Path
) -> None:
    start = time.time() + 4  # after both have started and connected
    racers = [
        _worker(postgres_url, library, tmp_path / f"w{i}", "race", str(start), "30")
        for i in range(2)
    ]
    added = [_done(r)["added"] for r in racers]
    assert sum(added) == 30  # each case won by one worker, refused to the other
    cases = PgCaseStore(connection_pool(postgres_url), library, tmp_path / "reader").load("raced")
    assert sorted(int(c.ground_truth or 0) for c in cases) == list(range(30))
