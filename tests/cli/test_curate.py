"""`memento skills curate` as a subprocess on a real library and index."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from memento_skills.stores.cases import Case, CaseStore
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.settings import open_library
from memento_skills.stores.skill import Lift, Skill

from support.commands import ENDPOINT_VARS, MEMENTO, QUIET, memento
from support.scripted_endpoint import ScriptedEndpoint


def _tree(root: Path) -> dict[str, str]:
    """Every file under `root` with the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def lib(tmp_path: Path) -> SkillLibrary:
    """A seeded library with one learned skill whose measured lift is negative."""
    library = open_library(tmp_path / "skills")
    library.create(
        Skill(
            name="count-vowels",
            description="Count the vowels in a word. Use when a task asks how many vowels a "
            "word has.",
            body="# Vowels\n1. Answer 3.",
            provenance="learned",
            lifecycle="candidate",
        )
    )
    library.record_lift("count-vowels", Lift(0, 2, 1, 2, 1))
    return library


def test_dry_run_prints_the_plan_and_changes_no_byte(
    lib: SkillLibrary, tmp_path: Path, home: Path
) -> None:
    before = _tree(lib.root)
    args = ("skills", "curate", "--dry-run", "--dir", str(lib.root))
    done = memento(*args, "--index", str(tmp_path / "index"), home=home)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("retire count-vowels: measured lift is not positive")
    assert "lift -0.50: 0/2 with, 1/2 without" in line
    assert _tree(lib.root) == before
    done = memento(*args, "--json", "--index", str(tmp_path / "index"), home=home)
    (step,) = json.loads(done.stdout)["plan"]
    assert (step["action"], step["skill"], step["base_version"]) == ("retire", "count-vowels", 2)
    assert _tree(lib.root) == before


def test_without_yes_and_no_terminal_it_refuses(
    lib: SkillLibrary, tmp_path: Path, home: Path
) -> None:
    before = _tree(lib.root)
    done = memento(
        "skills", "curate", "--dir", str(lib.root), "--index", str(tmp_path / "index"), home=home
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "--yes" in line and "--dry-run" in line and "Traceback" not in done.stderr
    assert _tree(lib.root) == before
    assert lib.get("count-vowels").lifecycle == "candidate"


def test_yes_applies_and_prints_the_undo_that_works(
    lib: SkillLibrary, tmp_path: Path, home: Path
) -> None:
    index = str(tmp_path / "index")
    done = memento("skills", "curate", "--yes", "--dir", str(lib.root), "--index", index, home=home)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("retired count-vowels (v3)")
    undo = line.split("undo: ", 1)[1]
    assert undo == "memento skills rollback count-vowels 2"
    assert SkillLibrary(lib.root).get("count-vowels").lifecycle == "deprecated"
    back = memento(*undo.split()[1:], "--dir", str(lib.root), home=home)
    assert back.returncode == 0, back.stderr
    assert SkillLibrary(lib.root).get("count-vowels").lifecycle == "candidate"
    again = memento(
        "skills", "curate", "--yes", "--dir", str(lib.root), "--index", index, home=home
    )
    assert again.stdout.startswith("retired count-vowels")  # the same evidence: retired again


def _vowel_executor(request: dict[str, Any]) -> str:
    """Counts vowels right on its own, and wrong when the junk skill is in its prompt."""
    messages = request["messages"]
    system = " ".join(str(m.get("content")) for m in messages if m.get("role") == "system")
    if "# Vowels" in system:
        return "9"
    task = next(str(m.get("content")) for m in messages if m.get("role") == "user")
    word = re.findall(r"'(\w+)'", task)[-1]
    return str(sum(c in "aeiou" for c in word))


def _vowel_library(tmp_path: Path) -> SkillLibrary:
    """A learned skill that makes the model count vowels wrong, with two cases it can solve."""
    library = open_library(tmp_path / "skills")
    library.create(
        Skill(
            name="count-vowels",
            description="Count the vowels in a word. Use when a task asks how many vowels a "
            "word has.",
            body="# Vowels\n1. Answer 9.",
            provenance="learned",
            lifecycle="candidate",
        )
    )
    cases = CaseStore(library.root)
    for word in ("banana", "stone"):
        task = f"How many vowels are in the word '{word}'?"
        gold = str(sum(c in "aeiou" for c in word))
        cases.add("count-vowels", Case(task=task, ground_truth=gold, task_id=word))
    return library


def test_measure_replays_with_and_without_then_retires(tmp_path: Path, home: Path) -> None:
    library = _vowel_library(tmp_path)
    index = str(tmp_path / "index")
    with ScriptedEndpoint(_vowel_executor) as fake:
        model = ("--base-url", fake.base_url, "--model", "scripted")
        before = _tree(library.root)
        dry = memento(
            *("skills", "curate", "--measure", "--dry-run", "--dir", str(library.root)),
            *("--index", index, *model),
            home=home,
        )
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.startswith("retire count-vowels: measured lift is not positive")
        assert "lift -1.00: 0/2 with, 2/2 without" in dry.stdout
        assert _tree(library.root) == before  # measured, planned, nothing kept
        done = memento(
            *("skills", "curate", "--measure", "--yes", "--dir", str(library.root)),
            *("--index", index, *model),
            home=home,
        )
    assert done.returncode == 0, done.stderr
    assert "measured count-vowels: with 0/2 without 2/2 v1" in done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("retired count-vowels") and "rollback count-vowels 2" in line
    retired = SkillLibrary(library.root).get("count-vowels")
    assert retired.lifecycle == "deprecated" and retired.lift is not None
    assert retired.lift.value == -1.0


def test_measure_needs_an_endpoint(tmp_path: Path, home: Path) -> None:
    library = _vowel_library(tmp_path)
    args = ("skills", "curate", "--measure", "--dry-run", "--dir", str(library.root))
    offline = memento(*args, home=home)
    assert offline.returncode == 2 and "MEMENTO_BASE_URL" in offline.stderr
    with ScriptedEndpoint(_vowel_executor) as fake:
        url = fake.base_url
    gone = memento(*args, "--base-url", url, "--model", "scripted", home=home)
    assert gone.returncode == 3, gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1 and "Traceback" not in gone.stderr


def test_a_rename_is_undone_by_the_command_it_prints(tmp_path: Path, home: Path) -> None:
    library = open_library(tmp_path / "skills")
    library.create(
        Skill(
            name="csv-analysis",
            description="Reverse the letters of a word and give the word spelled backward. Use "
            "when a task asks to spell a word backwards.",
            body="# Reversing\n1. Give the word's letters in reverse order.",
            provenance="learned",
            lifecycle="candidate",
        )
    )
    CaseStore(library.root).add(
        "csv-analysis", Case(task="Spell 'stone' backward.", ground_truth="enots")
    )
    args = ("--dir", str(library.root), "--index", str(tmp_path / "index"))
    done = memento("skills", "curate", "--yes", *args, home=home)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("renamed csv-analysis to ")
    undo = line.split("undo: ", 1)[1].split()
    new = undo[3]
    assert undo[:3] == ["memento", "skills", "rename"] and undo[4] == "csv-analysis"
    assert SkillLibrary(library.root).exists(new)
    back = memento(*undo[1:], "--dir", str(library.root), home=home)
    assert back.returncode == 0, back.stderr
    again = SkillLibrary(library.root)
    assert again.exists("csv-analysis") and not again.exists(new)
    assert [c.ground_truth for c in CaseStore(library.root).load("csv-analysis")] == ["enots"]


def _on_a_terminal(args: list[str], answer: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`memento ARGS` with its stdin on a real pseudo-terminal, typing `answer`."""
    leader, follower = os.openpty()
    env = {**os.environ, "MEMENTO_HOME": str(home), "NO_COLOR": "1", **QUIET}
    for name in ("MEMENTO_SKILLS_DIR", "MEMENTO_INDEX_DIR", *ENDPOINT_VARS):
        env.pop(name, None)
    try:
        proc = subprocess.Popen(
            [MEMENTO, *args], stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, text=True,
        )  # fmt: skip
        os.write(leader, answer.encode())
        out, err = proc.communicate(timeout=300)
    finally:
        os.close(follower)
        os.close(leader)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_on_a_terminal_each_step_is_asked(lib: SkillLibrary, tmp_path: Path, home: Path) -> None:
    args = ["skills", "curate", "--dir", str(lib.root), "--index", str(tmp_path / "index")]
    before = _tree(lib.root)
    no = _on_a_terminal(args, "n\n", home)
    assert no.returncode == 0, no.stderr
    assert "retire count-vowels" in no.stderr and "apply?" in no.stderr
    assert no.stdout.strip().endswith("not approved")
    # declined: no skill changed (the index's library id, made on its first sync, aside)
    assert {k: v for k, v in _tree(lib.root).items() if "library.json" not in k} == before
    yes = _on_a_terminal(args, "y\n", home)
    assert yes.returncode == 0, yes.stderr
    assert yes.stdout.startswith("retired count-vowels")
    assert SkillLibrary(lib.root).get("count-vowels").lifecycle == "deprecated"
