"""Curation at the end of every read-write-optimize round, through the real learning runner.

The scripted executor multiplies right only with the learned multiplication skill in its prompt
(tests/support/scripted_learner.py); a junk skill planted before the run never helps, so its
measured lift is 0 and the round's curation retires it. Everything else is real: the graph,
library, index, sandbox, gate replays and the lift's with/without replays.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from memento_skills.evals.learning import LearningRun, RunSettings
from memento_skills.evals.report import render, summarise
from memento_skills.evals.run_records import load_rounds
from memento_skills.evals.suites import ReasoningGymSuite
from memento_skills.stores.cases import Case, CaseStore
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.settings import open_library
from memento_skills.stores.skill import Skill

from support.scripted_learner import SKILL, scripted_resources

JUNK = "count-vowels"


def _plant_junk(run_dir: Path, suite: ReasoningGymSuite) -> None:
    """A learned skill that does not help, with two of the suite's tasks as its cases."""
    library = open_library(run_dir / "skills")
    library.create(
        Skill(
            name=JUNK,
            description="Count the vowels in a word. Use when a task asks how many vowels a "
            "word has.",
            body="# Vowels\n1. Count a, e, i, o and u.\n2. Submit the count.",
            provenance="learned",
            lifecycle="candidate",
        )
    )
    cases = CaseStore(library.root)
    for task in suite.tasks("test")[:2]:
        cases.add(JUNK, Case(task=task.prompt(), ground_truth=task.answer, task_id=task.id))


def _versions(run_dir: Path) -> dict[str, int]:
    return {s.name: s.version for s in SkillLibrary(run_dir / "skills").skills()}


def test_each_round_measures_lift_curates_once_and_records_the_library(tmp_path: Path) -> None:
    suite = ReasoningGymSuite(["products"], train=4, test=2, seed=0)
    run_dir = tmp_path / "rwo"
    _plant_junk(run_dir, suite)
    settings = RunSettings(max_attempts=1, train_temperature=0.0)
    run = LearningRun(suite, run_dir, settings=settings, resources=scripted_resources())
    run.learn(2, mode="read-write-optimize", train_per_round=2, eval_test=False)

    rounds = {r["round"]: r for r in load_rounds(run_dir)}
    assert sorted(rounds) == [0, 1, 2]
    assert rounds[0]["lifecycle"]["candidate"] == 1 and rounds[0]["retired"] == 0
    assert rounds[0]["lifts"][JUNK]["lift"] is None
    first = rounds[1]
    # the junk skill: 0 passes with it and 0 without on its two cases, so lift 0: retired
    junk = first["lifts"][JUNK]
    assert junk["lifecycle"] == "deprecated" and junk["lift"] == 0.0
    assert junk["with"][1] >= 2 and junk["without"][1] >= 2
    assert first["retired"] == 1 and first["lifecycle"]["deprecated"] == 1
    # the skill learned in round 1 solves its tasks and the model alone does not: positive lift
    useful = first["lifts"][SKILL]
    assert useful["lift"] > 0 and useful["lifecycle"] == "active"
    assert first["lifecycle"]["active"] == 5 + 1  # the seeds and the useful skill
    assert rounds[2]["retired"] == 0 and rounds[2]["lifts"][JUNK]["lifecycle"] == "deprecated"

    log = [json.loads(line) for line in (run_dir / "curation.jsonl").read_text().splitlines()]
    retired = [r for r in log if r["event"] == "step" and r["step"]["action"] == "retire"]
    assert [(r["round"], r["step"]["skill"], r["applied"]) for r in retired] == [(1, JUNK, True)]
    assert retired[0]["undo"] == [
        f"memento skills rollback {JUNK} {retired[0]['step']['base_version']}"
    ]

    table = render(summarise(run_dir))
    assert "### Library after each round" in table
    done = [r for r in log if r["event"] == "done"]
    assert [r["round"] for r in done] == [1, 2] and all(r["seconds"] > 0 for r in done)
    # the lift replays' and the curator's model calls, counted (the scripted models report usage)
    assert done[0]["tokens"] > 0 and first["curation_tokens"] == done[0]["tokens"]
    assert done[0]["measured"][JUNK] == "with 0/2 without 0/2 v1"
    assert first["curation_steps"] == 1 and first["deprecated"] == [JUNK]
    row = re.search(
        r"^\| 1 \| 7 \| 0 \| 0 \| 6 \| 1 \| 1 \| [\d.]+ \| [\d,]+ \| (.*) \|$", table, re.M
    )
    assert row is not None and row.group(1).startswith(f"{JUNK} deprecated +0.00 (0/2 vs 0/2)")

    # rerun: every task and every round's curation already done, nothing measured or written
    before = (run_dir / "curation.jsonl").read_bytes(), _versions(run_dir)
    LearningRun(suite, run_dir, settings=settings, resources=scripted_resources()).learn(
        2, mode="read-write-optimize", train_per_round=2, eval_test=False
    )
    assert ((run_dir / "curation.jsonl").read_bytes(), _versions(run_dir)) == before
    assert len(load_rounds(run_dir)) == 3
