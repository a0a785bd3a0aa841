"""The learning-time search, end to end: the compiled graph with scripted executor and writer,
the real sandbox running the writer's programs, the real judge, the real library and run log.

The scripted executor never solves the task: it guesses when free to, and when the search forces
python on it, it writes a program that computes the wrong thing. The scripted writer proposes the
programs each test gives it, in order. The task is a generic arithmetic one; nothing here is
shaped like a benchmark's template.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.run_log import RunLog
from memento_skills.stores.settings import open_library
from memento_skills.testing import ScriptedChatModel

TASK = "Compute the sum of the squares of 3, 4 and 12."
GOLD = "169"
GUESS = "150"
SUM_OF_SQUARES = (
    "import sys\nvalues = [int(a) for a in sys.argv[1:]]\nprint(sum(v * v for v in values))\n"
)
PLAIN_SUM = "import sys\nprint(sum(int(a) for a in sys.argv[1:]))\n"
CALLS = 400


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


class Executor:
    """Guesses when free to; forced to a computing tool, computes the wrong thing."""

    def __init__(self) -> None:
        self.model = ScriptedChatModel(script=[self.reply] * CALLS)

    def reply(self, messages: list[BaseMessage]) -> AIMessage:
        options = self.model.calls[-1].kwargs
        last = messages[-1]
        if isinstance(last, ToolMessage):
            printed = re.findall(r"-?\d+", str(last.content).split("stdout:")[-1])
            return _call("submit_answer", {"answer": printed[-1] if printed else "0"})
        if options.get("tool_choice") == "python":
            return _call("python", {"code": "print(3 + 4 + 12)"})  # the sum, not of the squares
        if options.get("tool_choice") == "shell":
            return _call("shell", {"command": "echo 19"})
        return AIMessage(content=GUESS)

    def temperatures(self) -> list[Any]:
        return [c.kwargs.get("temperature") for c in self.model.calls]


class Writer:
    """Explains the failure, proposes a prose patch or skill, and gives `programs` in order."""

    def __init__(self, programs: Sequence[dict[str, Any]]) -> None:
        self.programs: Iterator[dict[str, Any]] = iter(programs)
        self.model = ScriptedChatModel(script=[self.reply] * CALLS)

    def reply(self, messages: list[BaseMessage]) -> dict[str, Any]:
        prompt = "\n".join(str(m.content) for m in messages)
        if "Work out why" in prompt:
            return {"cause": "skill", "failed_step": None, "action": "refine", "tip": "Compute it."}
        if "Improve this skill" in prompt:
            return {"edits": [], "append": "Check the result once more.", "rationale": "care"}
        if "Write a new skill" in prompt:
            return {
                "name": "sum-of-squares",
                "description": "Add up the squares of given whole numbers.",
                "body": "# Sum of squares\n1. Square each number and add them up.",
                "allowed_tools": ["python"],
            }
        if "Write a Python program" in prompt or "Your program for this task" in prompt:
            return next(self.programs)
        raise AssertionError(f"unexpected writer prompt: {prompt[:200]}")

    def program_prompts(self) -> list[str]:
        return [
            c.text
            for c in self.model.calls
            if "Write a Python program" in c.text or "Your program for this task" in c.text
        ]


def program(script: str, args: Sequence[str] = ("3", "4", "12")) -> dict[str, Any]:
    return {"script": script, "args": list(args), "rationale": ""}


@pytest.fixture
def run(tmp_path: Path) -> Any:
    """Run TASK (or `task`) once through a fresh graph; returns the output, the models and the
    run-log records."""

    def go(
        programs: Sequence[dict[str, Any]],
        *,
        ground_truth: str | None = GOLD,
        **fields: Any,
    ) -> dict[str, Any]:
        executor, writer = Executor(), Writer(programs)
        judge = ScriptedChatModel(script=[lambda m: "no"] * CALLS)
        name = uuid.uuid4().hex[:6]
        graph = build_graph(
            chat_models={
                "executor": executor.model,
                "writer": writer.model,
                "judge": judge,
                "router": judge,
            },
            library=open_library(tmp_path / f"skills-{name}"),
            index=SkillIndex(tmp_path / f"index-{name}"),
        )
        ctx = Context(
            **{
                "workspace_dir": str(tmp_path / "ws"),
                "run_log": str(tmp_path / f"runs-{name}.jsonl"),
                "max_attempts": 1,
                "web_search": False,
                **fields,
            }
        )
        events: list[dict[str, Any]] = []
        payload = {"task": TASK, "task_id": "t1", "ground_truth": ground_truth}
        for namespace, mode, chunk in graph.stream(
            payload, context=ctx, stream_mode=["custom", "values"], subgraphs=True
        ):
            if mode == "custom":
                events.append(chunk)
            elif not namespace:
                out = chunk
        return {
            "out": out,
            "events": events,
            "executor": executor,
            "writer": writer,
            "records": RunLog(ctx.run_log).records(),
        }

    return go


def assert_no_gold_to_the_writer(writer: Writer) -> None:
    for call in writer.model.calls:
        assert GOLD not in call.text
    for prompt in writer.program_prompts():
        assert "not correct" not in prompt  # the judge's critique never reaches the programs


def test_only_the_third_candidate_passes_and_the_report_lists_three_tries(run: Any) -> None:
    result = run([program(SUM_OF_SQUARES)], search_tries=3)
    report = result["out"]["search"]
    assert report["outcomes"] == ["sample-1: fail", "forced-python: fail", "program-1: pass"]
    assert report["tries"] == 3 and report["found_by"] == "program-1"
    assert report["stopped"] == "found"
    assert report["tokens"] > 0 and report["seconds"] > 0
    # the resample was a sample (temperature > 0), the forced run called python first
    temperatures = result["executor"].temperatures()
    assert 0.8 in temperatures and temperatures[0] is None
    forced = [c for c in result["executor"].model.calls if c.kwargs.get("tool_choice") == "python"]
    assert forced
    # the writer saw the task and the failed trajectory, and no working code (none passed)
    (prompt,) = result["writer"].program_prompts()
    assert TASK in prompt and GUESS in prompt and "A run that the judge passed" not in prompt
    assert_no_gold_to_the_writer(result["writer"])
    # the run-log record of the attempt carries the report; progress on the stream
    (record,) = result["records"]
    assert record["search"] == report
    kinds = [e.get("event") for e in result["events"] if e.get("node") == "reflect_write"]
    assert kinds.count("search_try") == 3 and "search_found" in kinds


def test_a_program_repaired_on_the_second_try(run: Any) -> None:
    result = run([program(PLAIN_SUM), program(SUM_OF_SQUARES)])
    report = result["out"]["search"]
    assert report["outcomes"][-2:] == ["program-1: fail", "program-2: pass"]
    assert all(line.endswith(": fail") for line in report["outcomes"][:-1])
    assert report["found_by"] == "program-2" and report["tries"] == len(report["outcomes"])
    first, second = result["writer"].program_prompts()
    assert "Write a Python program" in first
    # the repair shows the writer its program, what the run printed and the bare verdict
    assert "Your program for this task" in second and PLAIN_SUM.strip() in second
    assert "stdout:\n19" in second and "The judge says this answer is wrong." in second
    assert "Answer taken from its last line: 19" in second
    assert_no_gold_to_the_writer(result["writer"])


def test_the_budget_stops_the_search(run: Any) -> None:
    wrong = [program(PLAIN_SUM)] * 5
    by_tries = run(wrong, search_tries=2)["out"]["search"]
    assert by_tries["stopped"] == "budget-tries" and by_tries["found_by"] is None
    assert by_tries["outcomes"] == ["sample-1: fail", "program-1: fail"]

    by_tokens = run(wrong, search_tokens=1)
    report = by_tokens["out"]["search"]
    assert report["stopped"] == "budget-tokens" and report["outcomes"] == ["sample-1: fail"]
    assert report["tokens"] >= 1 and by_tokens["writer"].program_prompts() == []

    by_seconds = run(wrong, search_seconds=0.001)["out"]["search"]
    assert by_seconds["stopped"] == "budget-seconds" and by_seconds["tries"] == 1

    repairs = run(wrong, search_repairs=1)["out"]["search"]
    assert repairs["stopped"] == "budget-repairs"
    assert repairs["outcomes"][-2:] == ["program-1: fail", "program-2: fail"]


def test_no_search_without_a_ground_truth_or_with_writes_off(run: Any) -> None:
    unknown = run([program(SUM_OF_SQUARES)], ground_truth=None)
    assert unknown["out"]["search"]["stopped"] == "no-ground-truth"
    assert unknown["out"]["search"]["tries"] == 0
    assert unknown["writer"].program_prompts() == []

    off = run([program(SUM_OF_SQUARES)], write_policy="off")
    assert off["out"].get("search") is None and off["writer"].program_prompts() == []
    assert off["records"][0]["search"] is None

    zero = run([program(SUM_OF_SQUARES)], search_tries=0)
    assert zero["out"]["search"]["stopped"] == "off" and zero["writer"].program_prompts() == []


def test_a_task_is_searched_once_across_its_attempts(run: Any) -> None:
    result = run([program(PLAIN_SUM)] * 10, max_attempts=2, search_tries=3)
    first, second = result["records"]
    assert first["search"]["tries"] == 3 and second["search"] is None
    assert len(result["writer"].program_prompts()) == 1
    assert_no_gold_to_the_writer(result["writer"])
