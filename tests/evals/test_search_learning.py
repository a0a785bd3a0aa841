"""The learning-time search in `memento learn`'s runner: what the search finds on the first
training task becomes a skill (distil) that solves the next one and the held-out tasks; its cost
per training task in results.jsonl (none for test tasks, which never write), inside the task's
own token count, and the report's search table. Real graph, library, sandbox and judge; scripted executor and writer
(tests/support/scripted_search.py)."""

from __future__ import annotations

import json
from pathlib import Path

from memento_skills.evals.learning import LearningRun, RunSettings
from memento_skills.evals.report import write_report
from memento_skills.evals.run_records import load_results
from memento_skills.evals.suites import JsonlSuite
from memento_skills.graph.resources import Resources
from memento_skills.nodes.routing.hybrid import HybridRouter
from memento_skills.testing import ScriptedChatModel

from support.commands import memento
from support.scripted_search import CALLS, SUM_OF_SQUARES, Executor, Writer, program

VALUES = [(2, 5, 7), (1, 8, 9), (6, 3, 10), (4, 11, 2)]


def test_train_tasks_record_their_search_and_the_report_shows_it(tmp_path: Path) -> None:
    suite_file = tmp_path / "squares.jsonl"
    suite_file.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"sq{i}",
                    "question": f"What do the squares of {a}, {b} and {c} add up to?",
                    "answer": str(a * a + b * b + c * c),
                }
            )
            + "\n"
            for i, (a, b, c) in enumerate(VALUES)
        )
    )
    judge = ScriptedChatModel(script=[lambda m: "no"] * CALLS)
    resources = Resources(
        router=HybridRouter(),
        chat_models={
            "executor": Executor().model,
            "writer": Writer([program(SUM_OF_SQUARES)] * 10).model,
            "judge": judge,
            "router": judge,
        },
    )
    run_dir = tmp_path / "run"
    LearningRun(
        JsonlSuite(suite_file, train_fraction=0.5),
        run_dir,
        settings=RunSettings(max_attempts=1, train_temperature=0.0, search_tries=3),
        resources=resources,
        progress=False,
    ).learn(1)
    records = load_results(run_dir)
    train = [r for r in records if r["phase"] == "train"]
    tests = [r for r in records if r["phase"] == "eval"]
    assert len(train) == 2 and tests
    searched = [r for r in train if r["search_tries"]]
    assert searched and searched[0] is train[0]  # the first training task failed: searched
    for r in train:
        # a failed training task is searched; one solved (by the skill learned from the search)
        # is not
        assert bool(r["search_tries"]) is not r["correct"]
    for r in searched:
        assert r["search_tries"] >= 2 and r["search_found_by"] == "program-1"
        assert 0 < r["search_tokens"] <= r["tokens"]  # the task's own count includes the search
        assert r["search_seconds"] > 0 and r["search_stopped"] == "found"
        assert r["search_outcomes"][-1] == "program-1: pass (3 values lifted)"
        assert r["search_last_program"]["passed"] and r["search_last_program"]["script"]
    assert all(r["search_tries"] == 0 and r["search_found_by"] is None for r in tests)
    # the program the search found became a skill (distil) that solves the next task of the kind
    assert train[1]["correct"] and train[1]["skill"] == "sum-of-squares"
    assert all(r["correct"] for r in records if r["phase"] == "eval" and r["round"] == 1)
    report, data = write_report(run_dir)
    (row,) = data["search"]
    assert (row["phase"], row["tasks"], row["searched"], row["found"]) == (
        "train",
        2,
        len(searched),
        len(searched),
    )
    report.unlink()
    proc = memento("report", str(run_dir), home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    n = len(searched)
    assert "## Learning-time search" in text and f"| train | 1 | 2 | {n} | {n} |" in text
