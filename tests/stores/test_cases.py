"""Regression cases keep the files their task was given, and the gate replays each case with its
own files only: real files, a real CaseStore, the real graph and gate, scripted models."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from memento_skills.graph.builder import build_gate_replay, build_graph
from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.nodes.gate import run_gate
from memento_skills.stores import cases
from memento_skills.stores.attachments import ATTACHMENTS_DIR
from memento_skills.stores.cases import Case, CaseNotRecorded, CaseStore
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import Skill
from memento_skills.testing import ScriptedChatModel

READER = Skill(
    name="read-attached-number",
    description="Read the number written in an attached file. Use when a task has a file attached.",
    body="Read the attached file with read_file and submit its last line.",
    allowed_tools=("read_file", "submit_answer"),
)
FIRST_TASK = "Which number does the attached file hold? Attached file(s): data.txt"
SECOND_TASK = "What reading is written in the attached file? Attached file(s): data.txt"


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


def _task(messages: list[BaseMessage]) -> str:
    return next((str(m.content) for m in messages if isinstance(m, HumanMessage)), "")


def reader_policy(messages: list[BaseMessage]) -> AIMessage:
    """Reads the file the task names and submits what it holds: it answers right exactly when
    its workspace holds the task's own file."""
    last = messages[-1]
    if isinstance(last, ToolMessage) and last.name == "read_file":
        return _call("submit_answer", {"answer": str(last.content).strip().splitlines()[-1]})
    attached = re.search(r"Attached file\(s\): (\S+)", _task(messages))
    if attached:
        return _call("read_file", {"path": attached.group(1)})
    return AIMessage(content="no file")


def writer_policy(messages: list[BaseMessage]) -> dict[str, Any]:
    prompt = "\n".join(str(m.content) for m in messages)
    if "Work out why" in prompt:
        return {"cause": "skill", "failed_step": None, "action": "refine", "tip": "Read again."}
    if "Improve this skill" in prompt:
        return {"edits": [], "append": "Check the number once more.", "rationale": "care"}
    raise AssertionError(f"unexpected writer prompt: {prompt[:200]}")


def scripted(policy: Any, n: int = 200) -> ScriptedChatModel:
    return ScriptedChatModel(script=[policy] * n)


def with_files(workspace: Path, files: dict[str, str]) -> Path:
    """A task's workspace base holding its attachments, as an eval lays it out."""
    inbox = workspace / ATTACHMENTS_DIR
    inbox.mkdir(parents=True)
    for name, text in files.items():
        (inbox / name).write_text(text)
    return workspace


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    library = SkillLibrary(tmp_path / "skills")
    library.create(READER)
    executor = scripted(reader_policy)
    judge = scripted(lambda m: "no")
    graph = build_graph(
        chat_models={
            "executor": executor,
            "writer": scripted(writer_policy),
            "judge": judge,
            "router": judge,
        },
        library=library,
        index=SkillIndex(tmp_path / "index"),
    )
    return {"graph": graph, "library": library, "executor": executor, "tmp": tmp_path}


def context(workspace: Path, **overrides: Any) -> Context:
    return Context(
        workspace_dir=str(workspace),
        run_log=str(workspace.parent / "runs.jsonl"),
        web_search=False,
        min_route_score=0.0,
        max_attempts=1,
        **overrides,
    )


def test_a_case_keeps_its_file_and_its_replay_sees_that_file_not_the_current_tasks(
    setup: dict[str, Any],
) -> None:
    graph, library, executor, tmp = (
        setup["graph"],
        setup["library"],
        setup["executor"],
        setup["tmp"],
    )
    first = with_files(tmp / "ws1", {"data.txt": "41\n"})
    solved = graph.invoke(
        {"task": FIRST_TASK, "task_id": "t1", "ground_truth": "41"}, context=context(first)
    )
    assert solved["selected_skill"] == READER.name and solved["verdict"]["passed"]
    store = CaseStore(library.root)
    (case,) = store.load(READER.name)
    kept = store.files_of(case)["data.txt"]
    assert kept.read_text() == "41\n" and kept.is_relative_to(store.files_dir)
    shutil.rmtree(first)  # the task's workspace is gone; the case's copy is what replays use

    # a later task with its own data.txt fails; the gate replays case t1 for the refinement
    executor.calls.clear()
    second = with_files(tmp / "ws2", {"data.txt": "99\n"})
    out = graph.invoke(
        {"task": SECOND_TASK, "task_id": "t2", "ground_truth": "100"}, context=context(second)
    )
    assert not out["verdict"]["passed"]
    (rolled,) = [w for w in out["writes"] if w["action"] == "rollback"]
    assert "the failing task still fails" in rolled["reason"], rolled  # t1 was not broken
    replay_of_t1 = [c.text for c in executor.calls if FIRST_TASK in c.text]
    assert replay_of_t1 and any("41" in text for text in replay_of_t1)
    assert not any("99" in text for text in replay_of_t1)
    failing_replay = [c.text for c in executor.calls if SECOND_TASK in c.text]
    assert len(failing_replay) > 2 and "99" in failing_replay[-1]  # the attempt, then its replay
    assert sorted(p.name for p in second.iterdir()) == [ATTACHMENTS_DIR, "memento-workspaces"]


def test_a_solved_task_whose_files_are_too_large_is_not_recorded_and_says_why(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cases, "MAX_CASE_FILES_BYTES", 2)
    workspace = with_files(setup["tmp"] / "ws", {"data.txt": "41\n"})
    events = list(
        setup["graph"].stream(
            {"task": FIRST_TASK, "task_id": "t1", "ground_truth": "41"},
            context=context(workspace),
            stream_mode="custom",
        )
    )
    (skipped,) = [e for e in events if e.get("event") == "case_not_recorded"]
    assert skipped["skill"] == READER.name and "MB" in skipped["reason"]
    store = CaseStore(setup["library"].root)
    assert store.load(READER.name) == [] and not store.files_dir.exists()


def test_a_case_whose_stored_files_are_gone_is_skipped_with_a_reason(tmp_path: Path) -> None:
    library = SkillLibrary(tmp_path / "skills")
    library.create(READER)
    store = CaseStore(library.root)
    source = tmp_path / "data.txt"
    source.write_text("41\n")
    store.add(READER.name, Case(FIRST_TASK, "41", task_id="t1"), {"data.txt": source})
    shutil.rmtree(store.files_dir)

    executor = scripted(reader_policy)
    resources = Resources(
        chat_models={"executor": executor, "judge": scripted(lambda m: "no")}, library=library
    )
    ctx = context(tmp_path / "ws")
    replay = build_gate_replay(resources)
    result = run_gate(
        replay,
        resources.cases(ctx),
        ctx,
        READER.name,
        library.get(READER.name).authored_text(),
        None,
    )
    assert result.passed and result.broken == [] and result.replayed == 0
    (skipped,) = result.skipped
    assert skipped.startswith("t1:") and "data.txt" in skipped and "missing" in skipped
    assert "skipped 1 case(s)" in result.reason
    assert executor.calls == []  # not replayed at all


def test_a_case_line_from_before_cases_kept_files_still_loads(tmp_path: Path) -> None:
    store = CaseStore(tmp_path)
    store.root.mkdir(parents=True)
    old = {"task": "Sum the sheet.", "ground_truth": "4", "rubric": None, "task_id": "old"}
    unsafe = {**old, "task_id": "bad", "attachments": [{"name": "../x", "sha256": "0" * 64}]}
    (store.root / "calc.jsonl").write_text(f"{json.dumps(old)}\n{json.dumps(unsafe)}\n")
    (case,) = store.load("calc")  # the hand-edited line naming a file outside is skipped
    assert case == Case("Sum the sheet.", "4", task_id="old") and store.files_of(case) == {}

    # solved again with its file, it is replaced rather than kept twice
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("2,2\n")
    assert store.add("calc", Case("Sum the sheet.", "4", task_id="old"), {"sheet.csv": sheet})
    (again,) = store.load("calc")
    assert store.files_of(again)["sheet.csv"].read_text() == "2,2\n"


def test_files_are_stored_once_and_go_with_the_last_case_using_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CaseStore(tmp_path)
    shared, other = tmp_path / "a.csv", tmp_path / "b.csv"
    shared.write_text("1,2\n")
    other.write_text("3,4\n")
    assert store.add("calc", Case("task 1", "3"), {"a.csv": shared})
    assert store.add("calc", Case("task 2", "3"), {"a.csv": shared})
    assert not store.add("calc", Case("task 1", "3"), {"a.csv": shared})
    assert len(list(store.files_dir.iterdir())) == 1  # one content, stored once

    monkeypatch.setattr(cases, "MAX_CASES_PER_SKILL", 1)
    assert store.add("calc", Case("task 3", "7"), {"b.csv": other})
    (left,) = store.load("calc")
    assert [p.parent.name for p in store.files_of(left).values()] == [
        p.name for p in store.files_dir.iterdir()
    ]

    monkeypatch.setattr(cases, "MAX_CASE_FILES_BYTES", 2)
    with pytest.raises(CaseNotRecorded, match="MB"):
        store.add("calc", Case("task 4", "7"), {"b.csv": other})
    assert store.load("calc") == [left]
