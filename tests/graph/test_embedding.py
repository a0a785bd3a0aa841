"""The memento graph embedded in someone else's LangGraph app, with a human approving library changes.

The parent graph has its own state and its own checkpointer and calls `build_graph(...)` from one
of its nodes. A failed task makes reflect_write propose a new skill and `interrupt()`; the pause
surfaces at the parent, which resumes with `Command(resume=...)`. The executor and writer are
scripted; the library, the index, routing, the sandboxed python tool, the judge and the gate
are real.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.settings import open_library
from memento_skills.testing import ScriptedChatModel

SKILL = "multiply-large-integers"
QUESTION = "What is the product of 1234 and 5678?"
GOLD = str(1234 * 5678)
EDITED_SKILL_MD = f"""---
name: {SKILL}
description: Multiply whole numbers exactly with Python. Use when a task asks for a product.
allowed-tools: python submit_answer
---

# Multiply with Python (reviewed)
1. Run print(a * b) with the python tool.
2. Submit only the printed number. EDITED BY THE REVIEWER.
"""


def executor_policy(messages: list[BaseMessage]) -> AIMessage:
    """Multiplies with python when the multiplication skill is in its prompt; else guesses."""
    system = next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")
    task = next((str(m.content) for m in messages if isinstance(m, HumanMessage)), "")
    last = messages[-1]
    if isinstance(last, ToolMessage) and last.name == "python":
        value = re.findall(r"-?\d+", str(last.content).split("stdout:")[-1])[0]
        call = {"name": "submit_answer", "args": {"answer": value}, "id": uuid.uuid4().hex}
        return AIMessage(content="", tool_calls=[call])
    if SKILL in system:
        a, b = re.findall(r"\d+", task)[:2]
        call = {"name": "python", "args": {"code": f"print({a} * {b})"}, "id": uuid.uuid4().hex}
        return AIMessage(content="", tool_calls=[call])
    return AIMessage(content="12345")


def writer_policy(messages: list[BaseMessage]) -> dict[str, Any]:
    prompt = "\n".join(str(m.content) for m in messages)
    if "Work out why" in prompt:
        return {"cause": "no-skill", "failed_step": None, "action": "create", "tip": "Use python."}
    if "Write a new skill" in prompt:
        return {
            "name": "Multiply Large Integers",
            "description": "Multiply large integers exactly by running Python. Use when a task "
            "asks for the product of two whole numbers.",
            "body": "# Multiplying\n1. Call the python tool with print(a * b).\n"
            "2. Submit the printed number.",
            "allowed_tools": ["python"],
        }
    raise AssertionError(f"unexpected writer prompt: {prompt[:200]}")


class AppState(TypedDict, total=False):
    """The host application's own state: nothing in it is named like the memento state."""

    question: str
    expected: str
    reply: str | None
    solved: bool
    library_changes: list[dict[str, Any]]


def host_app(
    memento: CompiledStateGraph[Any, Context, Any, Any], ctx: Context
) -> CompiledStateGraph[Any, Any, Any, Any]:
    def ask_memento(state: AppState) -> dict[str, Any]:
        out = memento.invoke(
            {"task": state["question"], "task_id": "q1", "ground_truth": state["expected"]},
            context=ctx,
        )
        return {
            "reply": out.get("answer"),
            "solved": bool((out.get("verdict") or {}).get("passed")),
            "library_changes": list(out.get("writes") or []),
        }

    builder = StateGraph(AppState)
    builder.add_node("ask_memento", ask_memento)
    builder.add_edge(START, "ask_memento")
    builder.add_edge("ask_memento", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.fixture
def app(tmp_path: Path) -> dict[str, Any]:
    library = open_library(tmp_path / "skills")
    writer = ScriptedChatModel(script=[writer_policy] * 20)
    memento = build_graph(
        checkpointer=InMemorySaver(),
        chat_models={
            "executor": ScriptedChatModel(script=[executor_policy] * 50),
            "writer": writer,
            "judge": ScriptedChatModel(script=["no"] * 20),
            "router": ScriptedChatModel(script=["none"] * 20),
        },
        library=library,
        index=SkillIndex(tmp_path / "index"),
    )
    ctx = Context(
        approval_required=True,
        max_attempts=1,
        web_search=False,
        workspace_dir=str(tmp_path / "ws"),
        run_log=str(tmp_path / "runs.jsonl"),
    )
    config: RunnableConfig = {"configurable": {"thread_id": f"app-{uuid.uuid4().hex[:8]}"}}
    parent = host_app(memento, ctx)
    paused = parent.invoke({"question": QUESTION, "expected": GOLD}, config)
    return {
        "parent": parent,
        "config": config,
        "library": library,
        "writer": writer,
        "paused": paused,
        "writer_calls_at_pause": len(writer.calls),
        "before": {s.name: s.version for s in library.skills()},
    }


def test_pause_carries_the_proposed_diff(app: dict[str, Any]) -> None:
    paused = app["paused"]
    assert "reply" not in paused, "the host node must not complete while approval is pending"
    (pending,) = paused["__interrupt__"]
    payload = pending.value
    assert payload["action"] == "create" and payload["skill"] == SKILL
    diff = payload["diff"]
    assert diff.startswith("--- /dev/null") and f"+name: {SKILL}" in diff
    assert "+1. Call the python tool with print(a * b)." in diff
    assert GOLD not in diff
    assert not app["library"].exists(SKILL), "nothing may be written before approval"
    state = app["parent"].get_state(app["config"])
    assert state.next == ("ask_memento",)


def test_accept_writes_the_skill_through_the_gate(app: dict[str, Any]) -> None:
    parent, config, library = app["parent"], app["config"], app["library"]
    out = parent.invoke(Command(resume="accept"), config)
    created = [w for w in out["library_changes"] if w["action"] == "create"]
    assert len(created) == 1 and created[0]["accepted"] and created[0]["skill"] == SKILL
    assert "gate: no regression; the failing task now passes" in created[0]["reason"]
    skill = SkillLibrary(library.root).get(SKILL)
    assert skill.provenance == "learned" and "print(a * b)" in skill.body
    assert out["reply"] == "12345" and not out["solved"]  # the attempt itself had failed
    # resuming ran no writer call again: the attribution, the search's programs and the new
    # skill were all asked before the pause, once
    assert len(app["writer"].calls) == app["writer_calls_at_pause"]

    # the host app's next question is routed to the learned skill and solved; keeping the
    # calls that solved it as a worked example is a library change, so it waits for approval
    later_config: Any = {"configurable": {"thread_id": "app-later"}}
    paused = parent.invoke(
        {"question": "What is the product of 4321 and 8765?", "expected": str(4321 * 8765)},
        later_config,
    )
    (pending,) = paused["__interrupt__"]
    assert pending.value["action"] == "refine" and pending.value["skill"] == SKILL
    assert "+## Worked example" in pending.value["diff"]
    later = parent.invoke(Command(resume="accept"), later_config)
    assert later["solved"] and later["reply"] == str(4321 * 8765)
    assert "## Worked example" in SkillLibrary(library.root).get(SKILL).body


def test_reject_writes_nothing(app: dict[str, Any]) -> None:
    parent, config, library = app["parent"], app["config"], app["library"]
    out = parent.invoke(Command(resume="reject"), config)
    rejected = [w for w in out["library_changes"] if w["action"] == "rejected"]
    assert rejected and not rejected[0]["accepted"]
    assert not any(w["action"] == "create" for w in out["library_changes"])
    fresh = SkillLibrary(library.root)
    assert not fresh.exists(SKILL)
    # only the utility count of the skill that was tried moved; no skill gained a version
    assert {s.name: s.version for s in fresh.skills()} == app["before"]


def test_edit_puts_the_reviewers_text_live(app: dict[str, Any]) -> None:
    parent, config, library = app["parent"], app["config"], app["library"]
    out = parent.invoke(Command(resume={"action": "edit", "skill_md": EDITED_SKILL_MD}), config)
    created = [w for w in out["library_changes"] if w["action"] == "create"]
    assert created and created[0]["accepted"], out["library_changes"]
    live = SkillLibrary(library.root).get(SKILL)
    assert "EDITED BY THE REVIEWER" in live.body
    assert live.description.startswith("Multiply whole numbers exactly")
    assert "Call the python tool with print(a * b)." not in live.body  # the proposal was replaced


def test_invalid_edit_is_refused_and_nothing_written(app: dict[str, Any]) -> None:
    parent, config, library = app["parent"], app["config"], app["library"]
    broken = EDITED_SKILL_MD.replace(f"name: {SKILL}", "name: Not A Valid Name")
    out = parent.invoke(Command(resume={"action": "edit", "skill_md": broken}), config)
    rejected = [w for w in out["library_changes"] if w["action"] == "rejected"]
    assert rejected and "invalid" in rejected[0]["reason"]
    assert not SkillLibrary(library.root).exists(SKILL)
