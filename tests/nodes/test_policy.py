"""Skills carry policy the execute node honours, and the write phase learns it (issue 7)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.nodes.execute import build_execute_graph
from memento_skills.nodes.execution.policies import apply_answer_contract
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.settings import open_library
from memento_skills.stores.skill import Skill, SkillValidationError, parse_skill
from memento_skills.testing import ScriptedCall, ScriptedChatModel

from support.leaks import holds_value

HEAD = "---\nname: calc\ndescription: Compute things. Use when numbers are involved.\n"


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ("metadata:\n  memento-first-tool: pythn\n", "metadata.memento-first-tool", "unknown tool"),
        (
            "allowed-tools: shell\nmetadata:\n  memento-first-tool: python\n",
            "metadata.memento-first-tool",
            "does not allow",
        ),
        (
            "metadata:\n  memento-answer-pattern: '(\\d+'\n",
            "metadata.memento-answer-pattern",
            "not a valid regular",
        ),
        ("allowed-tools: Bash Read\n", "allowed-tools", "unknown tool"),
        ("metadata:\n  memento-policy: x\n", "metadata.memento-policy", "not a Memento"),
    ],
)
def test_invalid_policy_is_a_validation_error(extra: str, field: str, words: str) -> None:
    with pytest.raises(SkillValidationError) as e:
        parse_skill(HEAD + extra + "---\nSteps.\n", "calc/SKILL.md", folder_name="calc")
    problem = next(p for p in e.value.problems if p.field == field)
    assert words in problem.problem and problem.fix


def test_policy_round_trips_through_the_file(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path)
    lib.create(
        Skill(
            name="calc",
            description="Compute things. Use when numbers are involved.",
            body="Steps.",
            allowed_tools=("python", "submit_answer"),
            first_tools=("python", "submit_answer"),
            answer_pattern=r"-?\d+",
        )
    )
    text = (tmp_path / "calc" / "SKILL.md").read_text()
    assert "memento-first-tool: python submit_answer" in text
    s = SkillLibrary(tmp_path).get("calc")
    assert s.first_tools == ("python", "submit_answer") and s.answer_pattern == r"-?\d+"


def test_answer_contract() -> None:
    assert apply_answer_contract("The result is 1,234 units", r"-?\d[\d,]*") == "1,234"
    assert apply_answer_contract("a=1 then b=22", r"b=(\d+)") == "22"
    assert apply_answer_contract("no digits", r"\d+") == "no digits"


@pytest.mark.parametrize("pattern", [r"(\d+)+x", r"(a|aa)+$", r"(a+)+b"])
def test_a_catastrophic_answer_pattern_is_time_bounded(pattern: str) -> None:
    """A pattern from an untrusted pack that backtracks exponentially gives the answer unchanged
    within a fraction of a second instead of hanging the run."""
    answer = "1" * 30 + "a" * 3000 + "y"
    started = time.monotonic()
    assert apply_answer_contract(answer, pattern) == answer
    assert time.monotonic() - started < 5


MULTIPLY = Skill(
    name="multiply",
    description="Multiply two whole numbers. Use when asked for a product.",
    body="Compute the product with python.",
    first_tools=("python",),
    answer_pattern=r"-?\d+",
)
"""A learned skill whose policy forces python and extracts the number."""


class ForcedOnlyModel(ScriptedChatModel):
    """Like the measured 0.5B model: it computes with python only when the call is forced,
    otherwise it guesses in words; after a tool result it answers wordily."""

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(ScriptedCall(messages=list(messages), kwargs=dict(kwargs)))
        task = next(str(m.content) for m in messages if isinstance(m, HumanMessage))
        last = messages[-1]
        if kwargs.get("tool_choice") == "python":
            a, b = re.findall(r"\d+", task)[:2]
            msg = AIMessage(
                content="",
                tool_calls=[
                    {"name": "python", "args": {"code": f"print({a}*{b})"}, "id": uuid.uuid4().hex}
                ],
            )
        elif isinstance(last, ToolMessage):
            value = re.findall(r"\d+", str(last.content).split("stdout:")[-1])[0]
            msg = AIMessage(content=f"The result is {value}.")
        else:
            msg = AIMessage(content="It is about 400.")
        msg.usage_metadata = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        return ChatResult(generations=[ChatGeneration(message=msg)])


def test_execute_forces_the_first_tool_and_applies_the_contract(tmp_path: Path) -> None:
    library = SkillLibrary(tmp_path / "skills")
    library.create(MULTIPLY)
    model = ForcedOnlyModel()
    graph = build_execute_graph(Resources(chat_models={"executor": model}, library=library))
    out = graph.invoke(
        {"task": "What is 17 times 23?", "selected_skill": "multiply"},
        context=Context(workspace_dir=str(tmp_path / "ws"), web_search=False),
    )
    assert [c.kwargs.get("tool_choice") for c in model.calls] == ["python", None]
    assert out["trajectory"][0]["tool"] == "python" and out["answer"] == "391"


def test_write_phase_learns_a_tool_policy_and_an_answer_contract(tmp_path: Path) -> None:
    library = open_library(tmp_path / "skills")
    assert library.get("python").first_tools == ()
    writer = ScriptedChatModel(
        script=[
            {"cause": "execution", "failed_step": None, "action": "none", "tip": "Use python."},
            {"edits": [], "rationale": "nothing to say in prose"},
        ]
    )
    graph = build_graph(
        chat_models={"executor": ForcedOnlyModel(), "writer": writer, "judge": ScriptedChatModel()},
        library=library,
        index=SkillIndex(tmp_path / "index"),
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"), run_log=str(tmp_path / "runs.jsonl"), web_search=False
    )
    out = graph.invoke(
        {"task": "What is 17 times 23? Use python.", "ground_truth": "391"}, context=ctx
    )
    refine = [w for w in out["writes"] if w["action"] == "refine"]
    assert refine and refine[0]["accepted"] and refine[0]["skill"] == "python"
    learned = library.get("python")
    assert learned.first_tools == ("python",) and learned.answer_pattern
    assert out["verdict"]["passed"] and out["answer"] == "391"
    assert not holds_value("391", library.root / "python" / "SKILL.md")


@pytest.mark.parametrize(
    ("tools", "first"),
    [
        ([], ("python",)),  # answered from its head
        (["list_dir", "list_dir", "submit_answer"], ("python",)),  # only looked around: wrong tool
        (["read_file", "python", "submit_answer"], None),  # it computed: not a tool problem
        (["shell"], None),
    ],
)
def test_behaviour_policy_asks_for_a_computing_tool_when_none_was_used(
    tools: list[str], first: tuple[str, ...] | None
) -> None:
    from memento_skills.nodes.writing.heuristics import behaviour_policy

    steps: Any = [{"tool": t, "args": {}, "output": "", "error": False} for t in tools]
    verdict: Any = {"passed": False}
    assert behaviour_policy(steps, verdict, None).get("first_tools") == first
    forced = Skill(name="calc", description="Compute things.", body="b", first_tools=("shell",))
    assert "first_tools" not in behaviour_policy(steps, verdict, forced)  # already has a policy


def test_a_writer_answer_pattern_must_extract_from_what_the_attempt_produced() -> None:
    from memento_skills.nodes.writing.heuristics import answer_evidence, pattern_fits

    state: Any = {
        "answer": "The LCM is 4074",
        "trajectory": [
            {"tool": "python", "args": {}, "output": "exit code: 0\nstdout:\n4074", "error": False},
            {"tool": "python", "args": {}, "output": "Traceback: b", "error": True},
        ],
    }
    evidence = answer_evidence(state)
    assert pattern_fits(r"-?\d+", evidence)
    assert not pattern_fits(r"-?\b\bb\b?", evidence)  # proposed by a 0.5B writer for LCM
    assert not pattern_fits(r"\d*", evidence)  # matches the empty string anywhere
    assert not pattern_fits(r"(", evidence)
    assert not pattern_fits(r"-?\d+", "")  # nothing to check it against: not accepted


def test_a_learned_skill_does_not_keep_the_task_s_own_numbers() -> None:
    from memento_skills.nodes.placeholders import generalise

    task = "Find the Least Common Multiple (LCM) of these numbers: 98, 54 (and 1,250)"
    assert generalise("LCM of these numbers: 98, 54", task) == "LCM of these numbers: N1, N2"
    assert generalise("98 = 2 * 7^2; 980 and 5.4 stay; 1,250 goes", task) == (
        "N1 = 2 * 7^2; 980 and 5.4 stay; N3 goes"
    )
    assert generalise("use python, print 9", task) == "use python, print 9"  # one digit: kept


def test_a_learned_skill_keeps_the_calls_that_solved_a_task_as_a_worked_example(
    tmp_path: Path,
) -> None:
    library = open_library(tmp_path / "skills")
    library.create(MULTIPLY)
    graph = build_graph(
        chat_models={
            "executor": ForcedOnlyModel(),
            "writer": ScriptedChatModel(),  # a solved task costs no writer call
            "judge": ScriptedChatModel(),
        },
        library=library,
        index=SkillIndex(tmp_path / "index"),
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"), run_log=str(tmp_path / "runs.jsonl"), web_search=False
    )
    task = "What is 17 times 23? Give the product."
    out = graph.invoke({"task": task, "ground_truth": "391"}, context=ctx)
    assert out["selected_skill"] == "multiply" and out["verdict"]["passed"]
    kept = [w for w in out["writes"] if w["action"] == "refine"]
    assert kept and kept[0]["accepted"], out["writes"]
    body = library.get("multiply").body
    assert "## Worked example" in body
    assert "What is N1 times N2?" in body and "print(N1*N2)" in body  # the kind, not the values
    assert not holds_value("391", library.root / "multiply" / "SKILL.md")

    version = library.get("multiply").version
    again = graph.invoke({"task": "What is 31 times 41?", "ground_truth": "1271"}, context=ctx)
    assert again["verdict"]["passed"] and library.get("multiply").version == version  # once

    from memento_skills.nodes.writing.decision import decide

    seed = library.get("python")  # a seed skill serves every kind of task: it gains none
    example = body[body.index("## Worked example") :]  # the one the learned skill gained
    solved = decide(
        again["verdict"], None, [], seed, ctx.write_policy, last_attempt=True, example=example
    )
    assert seed.provenance == "seed" and solved.action == "nothing"


def test_a_worked_example_needs_a_clean_compute_call() -> None:
    from memento_skills.nodes.writing.heuristics import worked_example

    def state(*steps: tuple[str, dict[str, Any], bool]) -> Any:
        return {
            "task": "Count the 1 bits in 1234.",
            "trajectory": [
                {"tool": t, "args": a, "output": "exit code: 0", "error": e} for t, a, e in steps
            ],
        }

    assert worked_example(state()) is None  # answered from its head
    assert worked_example(state(("list_dir", {"path": "."}, False))) is None
    assert worked_example(state(("python", {"code": "import bin"}, True))) is None
    text = worked_example(
        state(
            ("python", {"code": "import bin"}, True),
            ("python", {"code": "print(bin(1234).count('1'))"}, False),
            ("python", {"code": "print(bin(1234).count('1'))"}, False),  # reran it
        )
    )
    assert text is not None and "import bin" not in text and "Step 2" not in text
    assert "print(bin(N1).count('1'))" in text and "Count the 1 bits in N1." in text
