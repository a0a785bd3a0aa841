"""The execute loop's policies, each hook on its own; then the loop's once-per-attempt reads."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import Attachment, State, ToolStep
from memento_skills.nodes import execute
from memento_skills.nodes.execute import build_execute_graph
from memento_skills.nodes.execution.policies import (
    RESAMPLE_TEMPERATURE,
    AnswerContract,
    Budget,
    ContextRefit,
    ForcedFirstTools,
    ModelCall,
    RepeatGuard,
)
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import Skill
from memento_skills.testing import ScriptedChatModel

FORCING = Skill(
    name="multiply",
    description="Multiply two whole numbers. Use when asked for a product.",
    body="Compute the product with python.",
    first_tools=("python", "submit_answer"),
    answer_pattern=r"-?\d+",
)
OFFERED = {"python", "read_file", "submit_answer"}


def call(name: str, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


# -------------------------------------------------------------------------------- Budget


def test_budget_starts_empty_and_counts_each_reply() -> None:
    budget = Budget()
    state = budget.on_start()
    assert state["steps"] == 0 and state["tokens"] == 0 and time.time() - state["started"] < 5
    reply = AIMessage(
        content="x", usage_metadata={"input_tokens": 30, "output_tokens": 12, "total_tokens": 42}
    )
    state.update(budget.after_model(state, reply))
    state.update(budget.after_model(state, AIMessage(content="no usage reported")))
    assert state["steps"] == 2 and state["tokens"] == 42


@pytest.mark.parametrize(
    ("spent", "why"),
    [
        ({"steps": 3}, "step budget exhausted (3 model calls)"),
        ({"tokens": 500}, "token budget exhausted (500 of 500)"),
        ({"started": time.time() - 61}, "wall-time budget exhausted (60s)"),
    ],
)
def test_budget_ends_the_run_when_one_budget_is_spent(spent: dict[str, Any], why: str) -> None:
    ctx = Context(max_steps=3, max_tokens=500, max_wall_s=60)
    budget = Budget()
    assert budget.before_model(budget.on_start(), ctx) is None
    error = budget.before_model({**budget.on_start(), **spent}, ctx)
    assert error is not None and error.startswith(why) and error.endswith("without an answer")


# -------------------------------------------------------------------------------- ForcedFirstTools


def test_forced_first_tools_binds_step_k_to_the_kth_tool_while_it_is_offered() -> None:
    forced = ForcedFirstTools()
    chosen = []
    for steps in range(3):
        model_call = ModelCall()
        forced.before_model({"steps": steps}, model_call, FORCING, OFFERED)
        chosen.append(model_call.tool_choice)
    assert chosen == ["python", "submit_answer", None]
    not_offered = ModelCall()
    forced.before_model({"steps": 0}, not_offered, FORCING, {"read_file", "submit_answer"})
    no_skill = ModelCall()
    forced.before_model({"steps": 0}, no_skill, None, OFFERED)
    assert not_offered.options() == {} and no_skill.options() == {}


# -------------------------------------------------------------------------------- RepeatGuard


def step(tool: str, output: str, error: bool, **args: Any) -> ToolStep:
    return ToolStep(tool=tool, args=args, output=output, error=error)


def test_repeat_guard_answers_a_repeated_failure_from_the_trajectory_and_resamples() -> None:
    guard = RepeatGuard()
    steps = [step("python", "exit code: 1\nZeroDivisionError", True, code="1/0")]
    output, error, then = guard.wrap_tool_call(
        steps, "python", {"code": "1/0"}, OFFERED, lambda: pytest.fail("ran again")
    )
    assert error and then == "resample"
    assert "already made this exact call and it failed" in output and "ZeroDivisionError" in output
    model_call = ModelCall(tool_choice="python")
    guard.before_model({"after_repeat": then}, model_call, OFFERED)
    assert model_call.options() == {"tool_choice": "python", "temperature": RESAMPLE_TEMPERATURE}


def test_repeat_guard_gives_a_repeated_success_its_output_and_forces_a_submit() -> None:
    guard = RepeatGuard()
    steps = [step("python", "42\n", False, code="print(6*7)")]
    output, error, then = guard.wrap_tool_call(
        steps, "python", {"code": "print(6*7)"}, OFFERED, lambda: pytest.fail("ran again")
    )
    assert (output, error, then) == ("42\n", False, "submit")
    model_call = ModelCall(tool_choice="python")  # the skill's first tool loses to the guard
    guard.before_model({"after_repeat": then}, model_call, OFFERED)
    assert model_call.options() == {"tool_choice": "submit_answer"}


def test_repeat_guard_runs_new_calls_submits_and_repeats_with_nothing_to_submit_with() -> None:
    guard = RepeatGuard()
    steps = [
        step("python", "42\n", False, code="print(6*7)"),
        step("submit_answer", "ok", False, answer=""),
    ]
    runs = []

    def run() -> tuple[str, bool]:
        runs.append(1)
        return "ran", False

    assert guard.wrap_tool_call(steps, "python", {"code": "print(7)"}, OFFERED, run)[2] is None
    assert guard.wrap_tool_call(steps, "submit_answer", {"answer": ""}, OFFERED, run)[2] is None
    no_submit = OFFERED - {"submit_answer"}
    assert guard.wrap_tool_call(steps, "python", {"code": "print(6*7)"}, no_submit, run) == (
        "ran",
        False,
        None,
    )
    assert len(runs) == 3
    untouched = ModelCall()
    guard.before_model(guard.on_start(), untouched, OFFERED)
    assert untouched.options() == {}


# -------------------------------------------------------------------------------- ContextRefit

OVERFLOW = (
    "Error code: 400 - This model's maximum context length is 4096 tokens. However, you "
    "requested 5316 tokens (4292 in the messages, 1024 in the completion)."
)


def test_context_refit_shortens_tool_outputs_and_asks_once_more_with_a_smaller_completion() -> None:
    def refuse(messages: list[BaseMessage]) -> AIMessage:
        raise RuntimeError(OVERFLOW)

    model = ScriptedChatModel(script=[refuse, "done"])
    messages: list[BaseMessage] = [
        SystemMessage(content="system"),
        HumanMessage(content="task"),
        call("python", code="print('7' * 9000)"),
        ToolMessage(content="7" * 9000 + "\ntail", tool_call_id="c1", id="t1"),
    ]
    reply, fitted = ContextRefit().wrap_model_call(model, model, messages)
    assert reply.text == "done" and [m.id for m in fitted] == ["t1"]
    assert "cut to fit the model's context" in fitted[0].text and fitted[0].text.endswith("tail")
    assert len(fitted[0].text) < len(messages[3].text)
    assert model.calls[1].messages[:3] == messages[:3]  # the prompt and the model's own: uncut
    assert model.calls[1].kwargs.get("max_tokens") == 512


def test_context_refit_passes_a_fitting_call_through_and_any_other_error_up() -> None:
    model = ScriptedChatModel(script=["fine"])
    reply, fitted = ContextRefit().wrap_model_call(model, model, [HumanMessage(content="hi")])
    assert reply.text == "fine" and fitted == []

    def down(messages: list[BaseMessage]) -> AIMessage:
        raise ConnectionError("endpoint down")

    broken = ScriptedChatModel(script=[down])
    with pytest.raises(ConnectionError):
        ContextRefit().wrap_model_call(broken, broken, [HumanMessage(content="hi")])


# -------------------------------------------------------------------------------- AnswerContract


def test_answer_contract_keeps_the_last_match_of_the_skills_pattern() -> None:
    contract = AnswerContract()
    assert contract.on_finish("6*7 is 42", FORCING) == "42"
    assert contract.on_finish("no number", FORCING) == "no number"
    assert contract.on_finish("6*7 is 42", None) == "6*7 is 42"
    assert contract.on_finish(None, FORCING) is None


# -------------------------------------------------------------------------------- the loop


class CountingLibrary(SkillLibrary):
    """A real library that counts the reads of a skill."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.gets: list[str] = []

    def get(self, name: str) -> Skill:
        self.gets.append(name)
        return super().get(name)


def test_an_attempt_reads_its_skill_once_and_builds_its_tools_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = CountingLibrary(tmp_path / "skills")
    library.create(FORCING)
    library.gets.clear()
    builds: list[Path] = []
    real_make_tools = execute.make_tools

    def counted(workspace: Any, **kwargs: Any) -> Any:
        builds.append(workspace.root)
        return real_make_tools(workspace, **kwargs)

    monkeypatch.setattr(execute, "make_tools", counted)
    steps = [
        call("python", code="print(6*7)"),
        call("read_file", path="nothing.txt"),
        call("python", code="print(6*7)"),  # a repeat: answered from the trajectory
        call("submit_answer", answer="the product is 42"),
    ]
    model = ScriptedChatModel(script=steps * 2)
    graph = build_execute_graph(Resources(chat_models={"executor": model}, library=library))
    ctx = Context(workspace_dir=str(tmp_path / "ws"), web_search=False)
    for attempt in (1, 2):
        out = graph.invoke(
            {"task": "What is 6*7?", "selected_skill": FORCING.name, "tips": []}, context=ctx
        )
        assert out["answer"] == "42" and len(model.calls) == 4 * attempt  # the contract applied
        assert library.gets == [FORCING.name] * attempt  # once per attempt, not per step
        assert len(builds) == attempt and len(set(builds)) == attempt  # once per workspace


def test_the_tasks_attachments_in_the_state_are_copied_into_the_workspace(tmp_path: Path) -> None:
    given = tmp_path / "given" / "data.csv"
    given.parent.mkdir()
    given.write_text("a,b\n1,2\n")
    given.chmod(0o600)  # as the case store keeps a file: the judge's alone
    model = ScriptedChatModel(
        script=[call("read_file", path="inputs/data.csv"), call("submit_answer", answer="2")]
    )
    library = SkillLibrary(tmp_path / "skills")
    graph = build_execute_graph(Resources(chat_models={"executor": model}, library=library))
    out = graph.invoke(
        {
            "task": "What is b?",
            "selected_skill": None,
            "attachments": [Attachment(name="inputs/data.csv", path=str(given))],
        },
        context=Context(workspace_dir=str(tmp_path / "ws"), web_search=False),
    )
    assert "1,2" in out["trajectory"][0]["output"] and not out["trajectory"][0]["error"]
    assert given.read_text() == "a,b\n1,2\n"  # a copy: the given file stays as it was
    (copy,) = (tmp_path / "ws" / "memento-workspaces").glob("*/inputs/data.csv")
    assert copy.stat().st_mode & 0o444 == 0o444  # the sandbox's uid may read its copy


class Crash(BaseException):
    """The process dying mid-attempt: not an error the loop may catch."""


def crash(messages: list[BaseMessage]) -> AIMessage:
    raise Crash


def test_a_resumed_attempt_reads_its_skill_again_and_goes_on_as_the_interrupted_one_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = CountingLibrary(tmp_path / "skills")
    library.create(FORCING)
    library.gets.clear()
    builds: list[Path] = []
    real_make_tools = execute.make_tools

    def counted(workspace: Any, **kwargs: Any) -> Any:
        builds.append(workspace.root)
        return real_make_tools(workspace, **kwargs)

    monkeypatch.setattr(execute, "make_tools", counted)
    model = ScriptedChatModel(
        script=[
            call("python", code="print(6*7)"),
            call("python", code="print(6*7)"),  # a repeat: the next step must submit
            crash,
            call("submit_answer", answer="the product is 42"),
        ]
    )
    checkpoints = InMemorySaver()

    def process() -> Any:
        """A new process: its own execute graph, so nothing of the attempt in memory."""
        builder = StateGraph(State, context_schema=Context)
        resources = Resources(chat_models={"executor": model}, library=library)
        builder.add_node("execute", build_execute_graph(resources))
        builder.add_edge(START, "execute")
        builder.add_edge("execute", END)
        return builder.compile(checkpointer=checkpoints)

    thread: Any = {"configurable": {"thread_id": "t"}}
    ctx = Context(workspace_dir=str(tmp_path / "ws"), web_search=False)
    task = {"task": "What is 6*7?", "selected_skill": FORCING.name, "tips": []}
    with pytest.raises(Crash):
        process().invoke(task, thread, context=ctx)
    assert library.gets == [FORCING.name] and len(builds) == 1
    out = process().invoke(None, thread, context=ctx)
    assert out["answer"] == "42"  # the answer contract, from the skill read again
    assert library.gets == [FORCING.name] * 2 and builds == [builds[0]] * 2  # the same workspace
    assert model.calls[-1].kwargs.get("tool_choice") == "submit_answer"  # after_repeat resumed
    assert [s["tool"] for s in out["trajectory"]] == ["python", "python", "submit_answer"]
