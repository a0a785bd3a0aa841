"""A run with a wrong context or input is refused before any model call — from Python and the CLI.

The graph is the real one from `build_graph()`, every role a scripted chat model that records
each prompt, so "no model was called" is read off the models themselves. The CLI is run as a
subprocess. The same refusals over HTTP against `langgraph dev` are in test_studio.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any, NotRequired

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.graph.validation import RunRefused, check_input
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.settings import open_library
from memento_skills.testing import ScriptedChatModel

from support.commands import MEMENTO

TASK = {"task": "What is 6 times 7?", "ground_truth": "42"}
ROLES = ("router", "executor", "judge", "writer")


@pytest.fixture
def models() -> dict[str, ScriptedChatModel]:
    """One scripted model per role, answering 42 (the executor) or "none" (the router)."""
    return {
        "router": ScriptedChatModel(script=["none"] * 5),
        "executor": ScriptedChatModel(script=[AIMessage(content="42")] * 5),
        "judge": ScriptedChatModel(script=["yes"] * 5),
        "writer": ScriptedChatModel(script=[]),
    }


@pytest.fixture
def graph(tmp_path: Path, models: dict[str, ScriptedChatModel]) -> Any:
    """The real graph; typed Any, since these tests hand it what its types forbid."""
    return build_graph(
        chat_models=models,
        library=open_library(tmp_path / "skills"),
        index=SkillIndex(tmp_path / "index"),
    )


def _context(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    return {
        "write_policy": "off",
        "web_search": False,
        "workspace_dir": str(tmp_path / "ws"),
        "run_log": str(tmp_path / "runs.jsonl"),
        **changes,
    }


def _calls(models: dict[str, ScriptedChatModel]) -> int:
    return sum(len(models[role].calls) for role in ROLES)


REFUSED = [
    pytest.param(
        {"write_policy": "bogus"},
        TASK,
        ["'write_policy' is 'bogus'", "'off', 'create', 'refine' or 'full'", "set write_policy"],
        id="context-value-not-allowed",
    ),
    pytest.param(
        {"max_attempt": 3},
        TASK,
        ["unknown context key 'max_attempt'", "did you mean 'max_attempts'?", "rename it"],
        id="context-key-unknown",
    ),
    pytest.param(
        {"max_wall_s": 0},
        TASK,
        ["'max_wall_s' is 0", "above 0", "raise max_wall_s"],
        id="context-value-out-of-range",
    ),
    pytest.param(
        {"web_search": "sometimes"},
        TASK,
        ["'web_search' is 'sometimes'", "valid boolean", "correct web_search"],
        id="context-value-wrong-type",
    ),
    pytest.param(
        {},
        {"question": "What is 6 times 7?"},
        ["unknown input key 'question'", "valid keys are task,", 'put the task under "task"'],
        id="input-key-unknown",
    ),
    pytest.param(
        {},
        {"tsk": "What is 6 times 7?"},
        ["unknown input key 'tsk'", "did you mean 'task'?"],
        id="input-key-misspelt",
    ),
    pytest.param({}, {"task": ""}, ["input has no task"], id="input-task-empty"),
    pytest.param(
        {}, {"task": 42}, ["input field 'task' is 42", "pass a string"], id="input-task-int"
    ),
    pytest.param(
        {},
        {"messages": [{"role": "assistant", "content": "hello"}]},
        ["input has no task", "no human message"],
        id="input-messages-without-human",
    ),
]


@pytest.mark.parametrize(("changes", "payload", "expected"), REFUSED)
def test_invoke_refuses_a_bad_run_before_any_model_call(
    graph: Any,
    models: dict[str, ScriptedChatModel],
    tmp_path: Path,
    changes: dict[str, Any],
    payload: dict[str, Any],
    expected: list[str],
) -> None:
    with pytest.raises(RunRefused) as refused:
        graph.invoke(payload, context=_context(tmp_path, **changes))
    message = str(refused.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message
    assert _calls(models) == 0
    assert not (tmp_path / "runs.jsonl").exists()  # nothing ran, so nothing was logged


def test_a_context_object_with_a_bad_value_is_refused_too(
    graph: Any, models: dict[str, ScriptedChatModel], tmp_path: Path
) -> None:
    ctx = Context(**_context(tmp_path))
    ctx.router_mode = "semantic"  # type: ignore[assignment]  # what a dataclass lets through
    with pytest.raises(RunRefused, match=r"'router_mode' is 'semantic'.*'hybrid', 'dense' or"):
        graph.invoke(TASK, context=ctx)
    assert _calls(models) == 0


def test_async_and_streamed_runs_are_refused_the_same_way(
    graph: Any, models: dict[str, ScriptedChatModel], tmp_path: Path
) -> None:
    bad = _context(tmp_path, max_attempt=1)
    with pytest.raises(RunRefused, match="did you mean 'max_attempts'"):
        asyncio.run(graph.ainvoke(TASK, context=bad))
    with pytest.raises(RunRefused, match="did you mean 'max_attempts'"):
        list(graph.stream(TASK, context=bad))
    assert _calls(models) == 0


def test_a_good_run_still_runs_and_a_chat_message_counts_as_a_task(
    graph: Any, models: dict[str, ScriptedChatModel], tmp_path: Path
) -> None:
    out = graph.invoke(TASK, context=_context(tmp_path, top_k="3"))  # JSON-ish "3" is coerced
    assert out["answer"] == "42" and out["verdict"]["passed"]
    assert models["executor"].calls
    check_input({"messages": [{"role": "user", "content": "What is 6 times 7?"}]})
    studio_chat = {"type": "human", "content": [{"type": "text", "text": "What is 6 times 7?"}]}
    check_input({"messages": [studio_chat]})


class HostState(TypedDict):
    """A parent graph's state: memento's `task` plus a key of its own."""

    task: str
    ground_truth: NotRequired[str]
    ticket: NotRequired[str]
    answer: NotRequired[str | None]


def test_as_a_node_of_a_parent_graph_the_parent_keys_are_let_through(
    graph: Any, tmp_path: Path
) -> None:
    builder = StateGraph(HostState)
    builder.add_node("memento", graph)
    builder.add_edge(START, "memento")
    builder.add_edge("memento", END)
    parent: Any = builder.compile()  # typed for its own context: none
    out = parent.invoke({**TASK, "ticket": "T-1"}, context=Context(**_context(tmp_path)))
    assert out["answer"] == "42" and out["ticket"] == "T-1"


def _memento(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MEMENTO_"))}
    env.update(MEMENTO_HOME=str(home), ORT_DISABLE_TELEMETRY="1", ANONYMIZED_TELEMETRY="False")
    return subprocess.run(
        [MEMENTO, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["What is 6 times 7?", "--write-policy", "bogus"],
            "--write-policy: context field 'write_policy' is 'bogus': allowed values are 'off', "
            "'create', 'refine' or 'full'",
        ),
        (["What is 6 times 7?", "--max-attempts", "0"], "--max-attempts: context field"),
        (["  "], "TASK is empty: say the task in words"),
    ],
)
def test_the_cli_refuses_a_bad_run_in_one_line_before_seeding_anything(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    library = tmp_path / "lib"
    proc = _memento("run", *args, "--dir", str(library), home=tmp_path)
    assert proc.returncode == 2  # bad input
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not library.exists()  # refused before the library was seeded
