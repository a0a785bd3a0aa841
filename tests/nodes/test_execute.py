"""The execute subgraph: prompt contents, tool loop, budgets, garbage tolerance, real local model."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage

from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.nodes.execute import build_execute_graph
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.settings import open_library
from memento_skills.stores.skill import Skill
from memento_skills.testing import ScriptedChatModel


def call(name: str, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


def run(
    tmp_path: Path,
    script: list[Any],
    skill: str | None = "python",
    task: str = "What is 6*7?",
    **ctx: Any,
) -> tuple[dict[str, Any], ScriptedChatModel, SkillLibrary]:
    library = open_library(tmp_path / "skills")
    model = ScriptedChatModel(script=script)
    graph = build_execute_graph(Resources(chat_models={"executor": model}, library=library))
    context = Context(workspace_dir=str(tmp_path / "ws"), web_search=False, **ctx)
    out = graph.invoke({"task": task, "selected_skill": skill, "tips": []}, context=context)
    return out, model, library


def test_python_then_submit(tmp_path: Path) -> None:
    out, _model, _ = run(
        tmp_path, [call("python", code="print(6*7)"), call("submit_answer", answer="42")]
    )
    assert out["answer"] == "42" and out["execute_error"] is None
    assert [s["tool"] for s in out["trajectory"]] == ["python", "submit_answer"]
    assert "42" in out["trajectory"][0]["output"]
    assert out["messages"][-1].content == "42"


def test_prompt_has_only_the_selected_skill(tmp_path: Path) -> None:
    _out, model, library = run(tmp_path, ["42"])
    system = next(m for m in model.calls[0].messages if isinstance(m, SystemMessage)).text
    assert library.get("python").body[:200] in system
    for other in ("web-search", "terminal", "filesystem", "skill-creator"):
        assert library.get(other).body[:200] not in system
    assert "references/recipes.md" in system  # its files are listed for progressive disclosure
    # the python skill's allowed-tools restrict what the model is offered
    offered = {t["function"]["name"] for t in model.bound_tools}
    assert offered == set(library.get("python").allowed_tools)


def test_a_repeated_call_is_not_rerun_and_the_next_step_must_answer(tmp_path: Path) -> None:
    same = call("python", code="print(6*7)")
    out, model, _ = run(
        tmp_path,
        [same, call("python", code="print(6*7)"), call("submit_answer", answer="42")],
    )
    assert out["answer"] == "42"
    first, repeat, _submit = out["trajectory"]
    # the earlier output, not a second run, and nothing else for the answer to copy
    assert "42" in first["output"] and repeat["output"] == first["output"]
    assert model.calls[2].messages[-1].content == first["output"]
    assert [c.kwargs.get("tool_choice") for c in model.calls] == [None, None, "submit_answer"]


def test_a_repeated_failing_call_is_not_rerun_and_asks_for_a_fix(tmp_path: Path) -> None:
    bad = "import bin\nprint(1)"
    out, model, _ = run(
        tmp_path,
        [
            call("python", code=bad),
            call("python", code=bad),
            call("python", code="print(6*7)"),
            call("submit_answer", answer="42"),
        ],
    )
    assert out["answer"] == "42"
    first, repeat, fixed, _submit = out["trajectory"]
    assert first["error"] and "ModuleNotFoundError" in first["output"]  # a traceback is a failure
    assert (
        repeat["error"] and "failed" in repeat["output"] and "change the code" in repeat["output"]
    )
    assert fixed["error"] is False and "42" in fixed["output"]
    assert all(c.kwargs.get("tool_choice") is None for c in model.calls)  # no forced answer
    # at temperature 0 the model would repeat it verbatim: the step after the repeat samples
    assert [c.kwargs.get("temperature") for c in model.calls] == [None, None, 0.8, None]


def test_a_call_with_new_arguments_is_run(tmp_path: Path) -> None:
    out, model, _ = run(
        tmp_path,
        [
            call("python", code="print(6*7)"),
            call("python", code="print(6*8)"),
            call("submit_answer", answer="48"),
        ],
    )
    assert "48" in out["trajectory"][1]["output"]
    assert all(c.kwargs.get("tool_choice") is None for c in model.calls)


def test_plain_text_reply_is_the_answer(tmp_path: Path) -> None:
    out, _, _ = run(tmp_path, ["I think it is 41.\nFinal answer: 42"], skill=None)
    assert out["answer"] == "42"


def test_the_last_call_the_step_budget_allows_must_answer(tmp_path: Path) -> None:
    # a model that keeps looking: its third and last call is bound to submit_answer
    looking = [call("python", code="print(6*7)"), call("python", code="print(7*6)")]
    out, model, _ = run(tmp_path, [*looking, {"answer": "42"}], max_steps=3)
    assert out["answer"] == "42" and out["execute_error"] is None
    assert [c.kwargs.get("tool_choice") for c in model.calls] == [None, None, "submit_answer"]


def test_the_last_call_the_token_budget_allows_must_answer(tmp_path: Path) -> None:
    # the next call is taken to cost at least the last one (the conversation only grows)
    costly = call("python", code="print(6*7)")
    costly.usage_metadata = {"input_tokens": 90, "output_tokens": 10, "total_tokens": 100}
    out, model, _ = run(tmp_path / "tight", [costly, {"answer": "42"}], max_tokens=150)
    assert out["answer"] == "42"
    assert [c.kwargs.get("tool_choice") for c in model.calls] == [None, "submit_answer"]
    roomy = [costly, call("python", code="print(7*6)"), {"answer": "42"}]
    _, model, _ = run(tmp_path / "roomy", roomy, max_tokens=250)
    assert [c.kwargs.get("tool_choice") for c in model.calls][:2] == [None, None]


def test_step_budget_ends_with_a_clear_failure(tmp_path: Path) -> None:
    # a model that ignores even the bound last call: the budget ends the run, no answer
    out, model, _ = run(tmp_path, [call("python", code="print(1)")] * 5, max_steps=3)
    assert out["answer"] is None and "step budget" in out["execute_error"]
    assert len(out["trajectory"]) == 3
    assert model.calls[-1].kwargs.get("tool_choice") == "submit_answer"


def test_a_one_call_budget_is_not_bound(tmp_path: Path) -> None:
    out, model, _ = run(tmp_path, [call("python", code="print(1)")], max_steps=1)
    assert out["answer"] is None and "step budget" in out["execute_error"]
    assert model.calls[0].kwargs.get("tool_choice") is None


def test_token_budget(tmp_path: Path) -> None:
    out, _, _ = run(tmp_path, [call("python", code="print(1)")] * 5, max_tokens=10)
    assert out["answer"] is None and "token budget" in out["execute_error"]


def test_garbage_never_crashes(tmp_path: Path) -> None:
    bad_json = AIMessage(
        content="",
        invalid_tool_calls=[
            {
                "name": "python",
                "args": "{print(",
                "id": "x",
                "error": "bad JSON",
                "type": "invalid_tool_call",
            }
        ],
    )
    script = [
        bad_json,  # malformed tool call: the model is told and tries again
        call("no_such_tool", x=1),  # unknown tool: an error the model can read
        call("python", wrong_arg=1),  # invalid arguments
        call("read_file", path="../../etc/shadow"),  # escape attempt
        call("submit_answer", answer="   "),  # empty submission is refused
        "",  # finally an empty reply
    ]
    out, model, _ = run(tmp_path, script, max_steps=10)
    assert out["answer"] is None and "empty answer" in out["execute_error"]
    errors = [s for s in out["trajectory"] if s["error"]]
    assert len(errors) >= 3
    assert any("no tool named" in s["output"] for s in out["trajectory"])
    # the model was told about the malformed call
    assert any("could not be parsed" in m.text for m in model.calls[1].messages)


def test_model_exception_is_recorded(tmp_path: Path) -> None:
    def boom(_: list[BaseMessage]) -> AIMessage:
        raise ConnectionError("endpoint down")

    out, _, _ = run(tmp_path, [boom])
    assert out["answer"] is None and "endpoint down" in out["execute_error"]


def test_untrusted_skill_script_needs_approval(tmp_path: Path) -> None:
    library = SkillLibrary(tmp_path / "skills")
    library.create(
        Skill(
            name="hello",
            description="Say hello. Use when asked.",
            body="Run scripts/hi.py.",
            trusted=False,
        ),
        {"scripts/hi.py": b"print('hi from script')\n"},
    )
    for approve, expected in ((None, "not approved"), (lambda path: True, "hi from script")):
        model = ScriptedChatModel(script=[call("run_skill_script", script="hi.py"), "done"])
        graph = build_execute_graph(
            Resources(chat_models={"executor": model}, library=library, approve_script=approve)
        )
        out = graph.invoke(
            {"task": "hi", "selected_skill": "hello"},
            context=Context(workspace_dir=str(tmp_path / "ws"), web_search=False),
        )
        assert expected in out["trajectory"][0]["output"]


@pytest.mark.slow
def test_execute_against_the_real_local_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real path: llama.cpp server on loopback, SmolLM2-135M, ChatOpenAI over HTTP."""
    for var in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "MEMENTO_BASE_URL",
        "MEMENTO_EXECUTOR_MODEL",
        "MEMENTO_MODEL",
    ):
        monkeypatch.delenv(var, raising=False)
    library = open_library(tmp_path / "skills")
    graph = build_execute_graph(Resources(library=library))
    context = Context(workspace_dir=str(tmp_path / "ws"), web_search=False, max_steps=4)
    outcomes = []
    for task, skill in (
        ("What is 12 plus 30? Answer with the number only.", "python"),
        ("List the files in the workspace.", "filesystem"),
        ("Say hello.", None),
    ):
        out = graph.invoke({"task": task, "selected_skill": skill}, context=context)
        # whatever the 135M model emits, the node ends cleanly: an answer or a recorded failure
        assert bool(out.get("answer")) != bool(out.get("execute_error"))
        assert isinstance(out["trajectory"], list)
        outcomes.append(
            (out.get("answer"), out.get("execute_error"), [s["tool"] for s in out["trajectory"]])
        )
    print(outcomes)


OVERFLOW = (
    "Error code: 400 - This model's maximum context length is 4096 tokens. However, you "
    "requested 5316 tokens (4292 in the messages, 1024 in the completion)."
)


def test_a_context_overflow_shortens_tool_outputs_and_asks_again(tmp_path: Path) -> None:
    def refuse(messages: list[BaseMessage]) -> AIMessage:
        raise RuntimeError(OVERFLOW)

    seen: list[str] = []

    def answer(messages: list[BaseMessage]) -> AIMessage:
        seen.append(messages[-1].text)
        return call("submit_answer", answer="2 × 3")

    out, model, _ = run(
        tmp_path,
        [call("python", code="print('7' * 9000); print('tail-of-output')"), refuse, answer],
        task="Factor 6.",
    )
    assert out["answer"] == "2 × 3" and out["execute_error"] is None
    shortened = seen[0]
    assert len(shortened) < 7000 and "cut to fit the model's context" in shortened
    assert shortened.rstrip().endswith("tail-of-output")  # head and tail survive
    assert model.calls[1].messages[0] == model.calls[2].messages[0]  # the prompt is never cut
    assert model.calls[2].kwargs.get("max_tokens") == 512  # a quarter of 4,096 was reserved


def test_an_overflow_that_cannot_be_fixed_is_reported(tmp_path: Path) -> None:
    def refuse(messages: list[BaseMessage]) -> AIMessage:
        raise RuntimeError(OVERFLOW)

    out, _model, _ = run(tmp_path, [refuse])
    assert out["answer"] is None
    assert "maximum context length is 4096" in out["execute_error"]
