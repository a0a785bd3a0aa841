"""The program-path probe runs the real search path: scripted writer, real sandbox, real judge."""

from __future__ import annotations

from pathlib import Path

from memento_skills.evals.bench_search import probe
from memento_skills.evals.suites import Task
from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.nodes.writing.lifting import lifted
from memento_skills.testing import ScriptedChatModel

from support.scripted_search import PLAIN_SUM, SUM_OF_SQUARES, filled, reply

TASK = Task(id="squares-train-0", question="Add the squares of 2, 5 and 6.", answer="65")


def test_the_probe_reports_the_program_that_passed_and_its_repair(tmp_path: Path) -> None:
    replies = iter([reply(PLAIN_SUM, TASK.question), reply(SUM_OF_SQUARES, TASK.question)])
    writer = ScriptedChatModel(script=[lambda m: next(replies)] * 2)
    judge = ScriptedChatModel(script=[])
    res = Resources(chat_models={"writer": writer, "judge": judge})
    record = probe(TASK, Context(workspace_dir=str(tmp_path)), res)
    assert record["outcomes"] == ["program-1: fail", "program-2: pass (3 values lifted)"]
    lift = lifted(filled(SUM_OF_SQUARES, TASK.question), TASK.question)
    assert lift is not None and lift.args == ["2", "5", "6"]
    assert record["found_by"] == "program-2" and record["script"] == lift.code
    assert record["tries"] == 2 and record["tokens"] > 0
    assert all(TASK.answer not in call.text for call in writer.calls)  # no gold to the writer
