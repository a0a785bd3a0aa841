"""The `memento` command on a shared store (MEMENTO_STORE_URL, a real Postgres from pgserver):
a bad or unreachable URL is one line naming the variable; `skills dump`/`load` and
`skills export`/`import` carry a library byte for byte; `memento run` learns into the store,
not into a folder. Every command runs as a real subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memento_skills.stores.cases import Case, CaseStore
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.router_weights import RouterWeightsStore, weights_dir
from memento_skills.stores.shared_store import open_shared
from memento_skills.stores.skill import SKILL_FILE

from support.commands import memento
from support.scripted_endpoint import ScriptedEndpoint, offered_tools

EXAMPLE_URL = "postgresql://user@127.0.0.1:5432/memento"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _refused(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command", [("run", "What is 6 times 7?", "--max-attempts", "1"), ("skills", "list")]
)
def test_a_store_url_that_is_not_postgres_is_refused_in_one_line(
    home: Path, command: tuple[str, ...]
) -> None:
    proc = memento(*command, home=home, MEMENTO_STORE_URL="mysql://memento@127.0.0.1/memento")
    assert proc.returncode == 2, proc.stderr
    line = _refused(proc)
    assert "MEMENTO_STORE_URL='mysql://memento@127.0.0.1/memento' is not a Postgres URL" in line
    assert EXAMPLE_URL in line and "unset MEMENTO_STORE_URL" in line
    assert not (home / "skills").exists()  # no folder library was made instead


@pytest.mark.parametrize(
    "command", [("run", "What is 6 times 7?", "--max-attempts", "1"), ("skills", "list")]
)
def test_an_unreachable_store_is_one_line_naming_the_variable_without_the_password(
    home: Path, command: tuple[str, ...]
) -> None:
    url = f"postgresql://memento:s3cret@127.0.0.1:{_free_port()}/memento"
    proc = memento(*command, home=home, MEMENTO_STORE_URL=url)
    assert proc.returncode == 3, proc.stderr  # unreachable, like a model endpoint
    line = _refused(proc)
    assert "MEMENTO_STORE_URL='postgresql://memento:***@127.0.0.1:" in line
    assert "cannot connect" in line and "start Postgres there or fix the URL" in line
    assert "s3cret" not in proc.stderr + proc.stdout
    assert not (home / "skills").exists()


def test_a_bad_store_library_name_is_refused_in_one_line(home: Path) -> None:
    env = {"MEMENTO_STORE_URL": "postgresql://u@127.0.0.1:1/m", "MEMENTO_STORE_LIBRARY": "Team A"}
    proc = memento("skills", "list", home=home, **env)
    assert proc.returncode == 2, proc.stderr
    line = _refused(proc)
    assert "MEMENTO_STORE_LIBRARY='Team A' is not a library name" in line and "lowercase" in line


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every skill file under a library folder (not `.memento/`): mode and bytes, by path."""
    return {
        str(p.relative_to(root)): (p.stat().st_mode & 0o777, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).parts[0].startswith(".")
    }


@pytest.fixture
def library(tmp_path: Path, home: Path) -> Path:
    """A folder library with what a used one holds: counts, versions past 1, an executable
    script, a binary asset, a regression case with a file, router weights."""
    root = tmp_path / "lib"
    assert memento("skills", "init", str(root), home=home).returncode == 0
    lib = SkillLibrary(root)
    lib.record_outcome("python", True, key="run-1")
    lib.record_outcome("python", False, key="run-2")
    lib.update("terminal", files={"assets/blob.bin": bytes(range(256)) * 4})
    (root / "python" / "scripts" / "calc.py").chmod(0o755)  # a mode the copy must keep
    given = tmp_path / "given" / "data.csv"
    given.parent.mkdir()
    given.write_bytes(b"a,b\n1,2\n")
    CaseStore(root).add("python", Case(task="sum the csv", ground_truth="3"), {"data.csv": given})
    RouterWeightsStore(weights_dir(root)).save({"w": np.eye(3, dtype=np.float32)}, {"dim": 3})
    return root


def _check_extras(root: Path) -> None:
    """The case (with its file) and the weights the `library` fixture put in made it across."""
    store = CaseStore(root)
    (case,) = store.load("python")
    assert case.ground_truth == "3"
    assert store.files_of(case)["data.csv"].read_bytes() == b"a,b\n1,2\n"
    loaded = RouterWeightsStore(weights_dir(root)).load()
    assert loaded is not None and loaded[0]["w"].tolist() == np.eye(3).tolist()


def test_dump_writes_a_folder_library_out_byte_for_byte(
    library: Path, tmp_path: Path, home: Path
) -> None:
    out = tmp_path / "dumped"
    proc = memento("skills", "dump", str(out), "--dir", str(library), home=home)
    assert proc.returncode == 0, proc.stderr
    assert "1 regression case and the router weights" in proc.stdout
    assert _tree(out) == _tree(library)
    assert out.stat().st_mode & 0o777 == library.stat().st_mode & 0o777  # not mkdtemp's 0700
    _check_extras(out)
    again = memento("skills", "dump", str(out), "--dir", str(library), home=home)
    assert again.returncode == 2 and "is not empty" in _refused(again)


def _store_env(url: str, name: str) -> dict[str, str]:
    return {"MEMENTO_STORE_URL": url, "MEMENTO_STORE_LIBRARY": name}


def test_load_then_dump_round_trips_a_library_through_the_store_byte_for_byte(
    library: Path, tmp_path: Path, home: Path, postgres_url: str
) -> None:
    env = _store_env(postgres_url, f"t{uuid.uuid4().hex[:10]}")
    loaded = memento("skills", "load", str(library), "--json", home=home, **env)
    assert loaded.returncode == 0, loaded.stderr
    report = json.loads(loaded.stdout)
    assert sorted(report["skills"]) == sorted(SkillLibrary(library).names())
    assert report["cases"] == 1 and report["router_version"] == 1
    listed = json.loads(memento("skills", "list", "--json", home=home, **env).stdout)
    counts = {s["name"]: (s["successes"], s["failures"], s["version"]) for s in listed["skills"]}
    assert counts["python"][:2] == (1, 1)
    assert not (home / "skills").exists()  # the store, not a folder
    out = tmp_path / "back"
    dumped = memento("skills", "dump", str(out), home=home, **env)
    assert dumped.returncode == 0, dumped.stderr
    assert _tree(out) == _tree(library)
    _check_extras(out)
    twice = memento("skills", "load", str(library), home=home, **env)
    assert twice.returncode == 0 and "skipped python: already in the store" in twice.stdout


def test_export_and_import_through_the_store_carry_skill_files_byte_for_byte(
    library: Path, tmp_path: Path, home: Path, postgres_url: str
) -> None:
    first = _store_env(postgres_url, f"t{uuid.uuid4().hex[:10]}")
    assert memento("skills", "load", str(library), home=home, **first).returncode == 0
    pack = tmp_path / "pack.zip"
    exported = memento("skills", "export", str(pack), home=home, **first)
    assert exported.returncode == 0, exported.stderr
    with zipfile.ZipFile(pack) as zf:
        members = {i.filename: ((i.external_attr >> 16) & 0o777, zf.read(i)) for i in zf.infolist()}
    assert members == _tree(library)  # the store's live files, as they are

    second = _store_env(postgres_url, f"t{uuid.uuid4().hex[:10]}")
    imported = memento("skills", "import", str(pack), "--replace", home=home, **second)
    assert imported.returncode == 0, imported.stderr
    folder = tmp_path / "folder"  # a new library of each kind is seeded: both replace the seeds
    assert memento("skills", "init", str(folder), home=home).returncode == 0
    replaced = memento("skills", "import", str(pack), "--replace", "--dir", str(folder), home=home)
    assert replaced.returncode == 0, replaced.stderr
    out = tmp_path / "from-store"
    assert memento("skills", "dump", str(out), home=home, **second).returncode == 0
    # import resets counts and trust, stamps the time and writes files with the library's
    # default mode, on either backend alike: the files are the pack's byte for byte, SKILL.md
    # the folder import's but for its time stamps
    store_tree, folder_tree = _tree(out), _tree(folder)
    assert store_tree.keys() == folder_tree.keys() == members.keys()
    for path, (mode, data) in store_tree.items():
        assert mode == folder_tree[path][0]
        if not path.endswith(SKILL_FILE):
            assert data == members[path][1] == folder_tree[path][1]
        else:
            assert _unstamped(data) == _unstamped(folder_tree[path][1])
            assert _unstamped(data) != _unstamped(members[path][1])  # counts reset: not a copy


def _unstamped(skill_md: bytes) -> list[bytes]:
    return [
        line
        for line in skill_md.splitlines()
        if not line.lstrip().startswith((b"memento-created:", b"memento-updated:"))
    ]


def _submit_42(request: dict[str, Any]) -> str | dict[str, Any]:
    if "submit_answer" in offered_tools(request):
        return {"tool": "submit_answer", "arguments": {"answer": "42"}}
    return "no"


def test_memento_run_learns_into_the_store_not_a_folder(tmp_path: Path, postgres_url: str) -> None:
    library = f"t{uuid.uuid4().hex[:10]}"
    env = _store_env(postgres_url, library)
    homes = [tmp_path / "worker-1", tmp_path / "worker-2"]  # two machines' MEMENTO_HOMEs
    with ScriptedEndpoint(_submit_42) as fake:
        for home in homes:
            proc = memento(
                "run", "What is 6 times 7?", "--ground-truth", "42", "--max-attempts", "1",
                "--base-url", fake.base_url, "--model", "scripted", home=home, **env,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert "verdict: PASS" in proc.stderr
        folder = tmp_path / "own-folder"  # --dir names a folder: it wins over the store
        assert memento("skills", "init", str(folder), home=homes[0]).returncode == 0
        proc = memento(
            "run", "What is 6 times 7?", "--ground-truth", "42", "--max-attempts", "1",
            "--base-url", fake.base_url, "--model", "scripted", "--dir", str(folder),
            home=homes[0], **env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert sum(s.utility.successes for s in SkillLibrary(folder).skills()) == 1
    assert (homes[0] / "runs.jsonl").read_text().count("What is 6 times 7?") == 1
    (homes[0] / "runs.jsonl").unlink()
    for home in homes:  # nothing learned went to a folder of the worker's
        assert not (home / "skills").exists() and not (home / "runs.jsonl").exists()
    shared = open_shared(postgres_url, library, cache_dir=tmp_path / "reader")
    log = shared.run_log.records()
    assert [r["task"] for r in log] == ["What is 6 times 7?"] * 2
    skill = log[0]["skill"]
    assert {r["skill"] for r in log} == {skill}
    assert shared.skills.get(skill).utility.successes == 2  # both workers' counts, in one row
    assert [c.ground_truth for c in shared.cases.load(skill)] == ["42"]  # recorded once
    before = shared.router_weights.live_version()
    assert before is not None  # the router learned into it as it routed
    trained = memento("router", "train", "--json", home=tmp_path / "trainer", **env)
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["samples"] == 2  # the store's run log, not a file
    assert report["version"] == shared.router_weights.live_version() == before + 1


def test_memento_learn_says_it_keeps_its_own_library_and_how_to_load_it(
    home: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    proc = memento("learn", "--run-dir", str(run), home=home, MEMENTO_STORE_URL=EXAMPLE_URL)
    assert proc.returncode == 2  # no --suite: refused after the note, before anything is made
    assert f"keeps its own library in {run / 'skills'} (MEMENTO_STORE_URL is not used)" in (
        proc.stderr
    )
    assert f"memento skills load {run / 'skills'}" in proc.stderr
