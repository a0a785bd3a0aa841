"""Snapshots of every prompt the nodes send a model, so that a changed prompt is a reviewed diff.

The real graph runs with scripted models (memento_skills.testing) that record each call; the
snapshots hold what each role was sent: the messages, the tools bound and how the call was
forced. Run paths are normalised so the snapshots do not depend on the machine. After a deliberate
prompt change: `pytest tests/graph/test_prompts.py --snapshot-update`, then review the diff of
tests/graph/__snapshots__/test_prompts.ambr.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from syrupy.assertion import SnapshotAssertion

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.settings import open_library
from memento_skills.testing import ScriptedCall, ScriptedChatModel

SKILL = "multiply-whole-numbers"
METHOD_KEY = "memento_structured_method"
"""Chat-model metadata naming the structured-output method (the models' settings set it)."""


def _normalise(text: str, tmp: Path) -> str:
    text = text.replace(str(tmp.resolve()), "<tmp>").replace(str(tmp), "<tmp>")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", "<time>", text)
    # run ids, change and outcome keys
    return re.sub(r"\b([0-9a-f]{16}|[0-9a-f]{32})\b", "<hex>", text)


def _message(message: BaseMessage, tmp: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": message.type, "text": _normalise(message.text, tmp)}
    if isinstance(message, AIMessage) and message.tool_calls:
        entry["tool_calls"] = [(c["name"], c["args"]) for c in message.tool_calls]
    if isinstance(message, ToolMessage):
        entry["tool"] = message.name
    return entry


def recorded(
    model: ScriptedChatModel, tmp: Path, *, tool_schemas: bool = True
) -> list[dict[str, Any]]:
    """The model's calls as plain data: messages, bound tools, tool choice, response format.

    With `tool_schemas` off only the tools' names are kept (the executor's full schemas are
    snapshotted once, not for every step).
    """
    calls = []
    for call in model.calls:
        entry: dict[str, Any] = {"messages": [_message(m, tmp) for m in call.messages]}
        tools = call.kwargs.get("tools")
        if tools:
            entry["tools"] = tools if tool_schemas else [t["function"]["name"] for t in tools]
        for option in ("tool_choice", "response_format"):
            if option in call.kwargs:
                entry[option] = call.kwargs[option]
        calls.append(entry)
    return calls


def bound_tools(call: ScriptedCall) -> list[dict[str, Any]]:
    """The full tool schemas (OpenAI format) one call was sent."""
    return list(call.kwargs.get("tools") or [])


def _task(messages: list[BaseMessage]) -> str:
    return next((m.text for m in messages if isinstance(m, HumanMessage)), "")


def _system(messages: list[BaseMessage]) -> str:
    return next((m.text for m in messages if isinstance(m, SystemMessage)), "")


def executor_policy(messages: list[BaseMessage]) -> AIMessage:
    """Submits the product when the learned skill is in its prompt; otherwise a wrong guess."""
    if SKILL in _system(messages):
        a, b = (int(n) for n in re.findall(r"\d+", _task(messages))[:2])
        args = {"answer": str(a * b)}
        return AIMessage(
            content="", tool_calls=[{"name": "submit_answer", "args": args, "id": "c1"}]
        )
    return AIMessage(content="12345")


def writer_policy(messages: list[BaseMessage]) -> dict[str, Any]:
    prompt = "\n".join(m.text for m in messages)
    if "Work out why" in prompt:
        action = "refine" if SKILL in prompt else "create"
        return {"cause": "no-skill", "failed_step": None, "action": action, "tip": "Use python."}
    if "Write a new skill" in prompt:
        return {
            "name": "Multiply Whole Numbers",
            "description": "Multiply whole numbers exactly by running Python. Use when a task asks "
            "for the product of two whole numbers.",
            "body": "# Multiplying\n1. Call the python tool with print(a * b).\n2. Submit the number.",
            "allowed_tools": ["python"],
        }
    if "Improve this skill" in prompt:
        return {"edits": [], "append": "Check the product once more.", "rationale": "care"}
    raise AssertionError(f"unexpected writer prompt: {prompt[:200]}")


def scripted(policy: Any, **kwargs: Any) -> ScriptedChatModel:
    return ScriptedChatModel(script=[policy] * 100, **kwargs)


@pytest.fixture(autouse=True)
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Context's defaults read MEMENTO_* variables; the snapshots must not depend on them."""
    for name in list(os.environ):
        if name.startswith("MEMENTO_"):
            monkeypatch.delenv(name)


def context(tmp: Path, **changes: Any) -> Context:
    defaults: dict[str, Any] = {
        "workspace_dir": str(tmp / "ws"),
        "run_log": str(tmp / "runs.jsonl"),
        "max_attempts": 1,
        "web_search": False,
        "min_route_score": 0.2,
        "router_temperature": 0.0,
        "search_tries": 0,  # the search's own prompts: test_the_search_prompts
    }
    return Context(**{**defaults, **changes})


def test_the_learning_loop_prompts(tmp_path: Path, snapshot: SnapshotAssertion) -> None:
    """The executor with a seed and a learned skill, the tools it binds, the writer's prompts."""
    library = open_library(tmp_path / "skills")
    executor, writer, judge = scripted(executor_policy), scripted(writer_policy), scripted("no")
    graph = build_graph(
        chat_models={"executor": executor, "writer": writer, "judge": judge},
        library=library,
        index=SkillIndex(tmp_path / "index"),
    )
    # no skill fits (a high threshold): the writer attributes the failure and creates a skill,
    # the gate replays the task with it, and the second attempt uses it
    out = graph.invoke(
        {
            "task": "What is the product of 1234 and 5678?",
            "task_id": "t1",
            "ground_truth": "7006652",
        },
        context=context(tmp_path, max_attempts=2),
    )
    assert "create" in [w["action"] for w in out["writes"]]
    # a failure with the learned skill: the writer attributes it to the skill and patches it
    graph.invoke(
        {"task": "What is the product of 11 and 12?", "task_id": "t2", "ground_truth": "999"},
        context=context(tmp_path),
    )
    with_skill = next(c for c in executor.calls if SKILL in _system(c.messages))
    writer_prompts = [c.messages[0].text for c in writer.calls]
    assert any("Work out why" in p for p in writer_prompts)
    assert any("Write a new skill" in p for p in writer_prompts)
    assert any("Improve this skill" in p for p in writer_prompts)
    assert {
        "executor": recorded(executor, tmp_path, tool_schemas=False),
        "writer": recorded(writer, tmp_path),
    } == snapshot(name="calls")
    assert bound_tools(with_skill) == snapshot(name="executor-tools-with-a-skill")


def test_the_judges_equivalence_and_rubric_prompts(
    tmp_path: Path, snapshot: SnapshotAssertion
) -> None:
    """Free-form answers go to the judge model; a rubric task too, with one repair round.

    No skill fits these tasks (a high threshold), so they also show the executor without a skill.
    """
    library = open_library(tmp_path / "skills")
    answers = iter(["Tower of London (the fortress)", "9"])
    executor = scripted(lambda m: next(answers))
    judge = ScriptedChatModel(
        script=[
            {"equivalent": True, "reason": "Same landmark."},
            {"passed": False, "score": 7, "critique": "9 = 3 * 3 is not prime."},
            {"passed": False, "score": 0.0, "critique": "9 = 3 * 3 is not prime."},
        ]
    )
    graph = build_graph(
        chat_models={"executor": executor, "judge": judge},
        library=library,
        index=SkillIndex(tmp_path / "index"),
    )
    ctx = context(tmp_path, min_route_score=0.99, write_policy="off")
    task = "Which London landmark held the Crown Jewels in 1700? Answer with its name only."
    graph.invoke({"task": task, "ground_truth": "The Tower of London"}, context=ctx)
    out = graph.invoke({"task": "Name a prime.", "rubric": "It must be prime."}, context=ctx)
    assert out["verdict"]["method"] == "rubric" and len(judge.calls) == 3
    assert recorded(judge, tmp_path) == snapshot(name="judge")
    assert recorded(executor, tmp_path, tool_schemas=False) == snapshot(name="executor")
    assert bound_tools(executor.calls[0]) == snapshot(name="executor-tools-without-a-skill")


def test_the_json_mode_prompt(tmp_path: Path, snapshot: SnapshotAssertion) -> None:
    """A judge model configured for JSON mode gets the schema in the prompt."""
    executor = scripted(lambda m: "Tower of London (the fortress)")
    judge = ScriptedChatModel(
        script=['{"equivalent": true, "reason": "Same landmark."}'],
        metadata={METHOD_KEY: "json_mode"},
    )
    graph = build_graph(
        chat_models={"executor": executor, "judge": judge},
        library=open_library(tmp_path / "skills"),
        index=SkillIndex(tmp_path / "index"),
    )
    ctx = context(tmp_path, min_route_score=0.99, write_policy="off")
    task = "Which London landmark held the Crown Jewels in 1700? Answer with its name only."
    out = graph.invoke({"task": task, "ground_truth": "The Tower of London"}, context=ctx)
    assert out["verdict"]["method"] == "llm-equivalence"
    assert recorded(judge, tmp_path) == snapshot(name="judge-json-mode")


def test_the_routers_pick_prompt(tmp_path: Path, snapshot: SnapshotAssertion) -> None:
    """With a router model and several skills over the threshold, the model picks one."""
    router = ScriptedChatModel(script=[{"skill": "none", "reason": "Nothing fits."}])
    graph = build_graph(
        chat_models={
            "executor": scripted(lambda m: "42"),
            "router": router,
            "judge": scripted({"passed": True, "score": 1.0, "critique": "Fine."}),
        },
        library=open_library(tmp_path / "skills"),
        index=SkillIndex(tmp_path / "index"),
    )
    ctx = context(tmp_path, router_model="scripted", min_route_score=0.0, write_policy="off")
    out = graph.invoke({"task": "Summarise this web page in one line."}, context=ctx)
    assert out["selected_skill"] is None and len(router.calls) == 1
    assert recorded(router, tmp_path) == snapshot(name="router")


def test_the_search_prompts(tmp_path: Path, snapshot: SnapshotAssertion) -> None:
    """The learning-time search: the executor resampled and forced to python, the writer's
    program prompt and its repair (the program's output, the bare verdict)."""
    library = open_library(tmp_path / "skills")
    programs = iter(
        [
            "```python\na = 11\nb = 12\nprint(a + b)\n```",
            "The corrected program:\n```python\na = 11\nb = 12\nprint(a * b)\n```",
        ]
    )

    def writer(messages: list[BaseMessage]) -> Any:
        prompt = "\n".join(m.text for m in messages)
        if "Write a Python program" in prompt or "Your program for this task" in prompt:
            return next(programs)
        return writer_policy(messages)

    def executor(messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            printed = re.findall(r"-?\d+", last.text.split("stdout:")[-1])
            args = {"answer": printed[-1] if printed else "0"}
            return AIMessage(
                content="", tool_calls=[{"name": "submit_answer", "args": args, "id": "c2"}]
            )
        if forced.calls and forced.calls[-1].kwargs.get("tool_choice") == "python":
            code = {"code": "print(11 + 12)"}
            return AIMessage(content="", tool_calls=[{"name": "python", "args": code, "id": "c1"}])
        return AIMessage(content="12345")

    forced = scripted(executor)
    the_writer, judge = scripted(writer), scripted("no")
    graph = build_graph(
        chat_models={"executor": forced, "writer": the_writer, "judge": judge},
        library=library,
        index=SkillIndex(tmp_path / "index"),
    )
    out = graph.invoke(
        {"task": "What is the product of 11 and 12?", "task_id": "t1", "ground_truth": "132"},
        context=context(tmp_path, search_tries=6, min_route_score=0.99),
    )
    assert out["search"]["found_by"] == "program-2"
    search_calls = [
        c for c in the_writer.calls if "Python program" in c.text or "Your program" in c.text
    ]
    assert len(search_calls) == 2
    executor_calls = [
        c for c in forced.calls if "temperature" in c.kwargs or c.kwargs.get("tool_choice")
    ]
    assert {
        "executor": [
            {k: c.kwargs.get(k) for k in ("temperature", "tool_choice")} for c in executor_calls
        ],
        "writer": [
            {
                "messages": [_message(m, tmp_path) for m in c.messages],
                "tool_choice": c.kwargs.get("tool_choice"),
            }
            for c in search_calls
        ],
    } == snapshot(name="search")
