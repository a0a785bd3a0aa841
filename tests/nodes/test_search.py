"""The learning-time search, end to end: the compiled graph with scripted executor and writer,
the real sandbox running the writer's programs, the real judge, the real library and run log.

The scripted executor never solves the task; the scripted writer proposes the programs each test
gives it, in order (tests/support/scripted_search.py). The task is a generic arithmetic one;
nothing here is shaped like a benchmark's template.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.graph.state import ToolStep
from memento_skills.nodes.writing.lifting import Lifted, lifted
from memento_skills.nodes.writing.prompts import Program, attempt_text, tool_call_code
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.run_log import RunLog
from memento_skills.stores.settings import open_library
from memento_skills.testing import ScriptedChatModel

from support.scripted_search import (
    CALLS,
    GOLD,
    GUESS,
    PLAIN_SUM,
    SUM_OF_SQUARES,
    TASK,
    VALUES,
    Executor,
    Writer,
    filled,
    program,
)


@pytest.fixture
def run(tmp_path: Path) -> Any:
    """Run TASK (or `task`) once through a fresh graph; returns the output, the models and the
    run-log records."""

    def go(
        programs: Sequence[dict[str, Any]],
        *,
        ground_truth: str | None = GOLD,
        right_when_forced: bool = False,
        shell: str = "echo 19",
        python: str = "",
        task: str = TASK,
        judge_says: Any = "no",
        **fields: Any,
    ) -> dict[str, Any]:
        executor = Executor(right_when_forced=right_when_forced, shell=shell, python=python)
        writer = Writer(programs)
        says = judge_says if callable(judge_says) else lambda m: judge_says
        judge = ScriptedChatModel(script=[says] * CALLS)
        router = ScriptedChatModel(script=[lambda m: "no"] * CALLS)
        name = uuid.uuid4().hex[:6]
        graph = build_graph(
            chat_models={
                "executor": executor.model,
                "writer": writer.model,
                "judge": judge,
                "router": router,
            },
            library=(library := open_library(tmp_path / f"skills-{name}")),
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
        payload = {"task": task, "task_id": "t1", "ground_truth": ground_truth}
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
            "library": library,
        }

    return go


def wrong_programs(count: int) -> list[dict[str, Any]]:
    """`count` different programs, each computing the wrong thing (the plain sum, less i)."""
    return [program(f"values = [{VALUES}]\nprint(sum(values) - {i})\n") for i in range(count)]


def only(lift: Lifted | None) -> Lifted:
    assert lift is not None
    return lift


def assert_no_gold_to_the_writer(writer: Writer) -> None:
    for call in writer.model.calls:
        assert GOLD not in call.text
    for prompt in writer.program_prompts():
        assert "not correct" not in prompt  # the judge's critique never reaches the programs


def test_only_the_third_candidate_passes_and_the_report_lists_three_tries(run: Any) -> None:
    result = run([program(SUM_OF_SQUARES)], search_tries=3)
    report = result["out"]["search"]
    assert report["outcomes"] == [
        "sample-1: fail",
        "forced-python: fail",
        "program-1: pass (3 values lifted)",
    ]
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
    assert report["outcomes"][-2:] == ["program-1: fail", "program-2: pass (3 values lifted)"]
    assert all(line.endswith(": fail") for line in report["outcomes"][:-1])
    assert report["found_by"] == "program-2" and report["tries"] == len(report["outcomes"])
    first, second = result["writer"].program_prompts()
    assert "Write a Python program" in first
    # the repair shows the writer its program, what the run printed and the bare verdict
    assert "Your program for this task" in second and filled(PLAIN_SUM, TASK).strip() in second
    assert "stdout:\n19" in second and "The judge says this answer is wrong." in second
    assert "Answer taken from its last line: 19" in second
    assert_no_gold_to_the_writer(result["writer"])


def test_a_command_line_given_as_the_script_is_sent_back_unrun(run: Any) -> None:
    """The stand-in gave `python3 solve.py 3 4 12` as its script: nothing runs or is judged,
    and the writer is told Python's complaint and what a script must be."""
    result = run([program("python3 solve.py 3 4 12"), program(SUM_OF_SQUARES)])
    report = result["out"]["search"]
    assert report["outcomes"][-2:] == [
        "program-1: fail (not python)",
        "program-2: pass (3 values lifted)",
    ]
    first, second = result["writer"].program_prompts()
    assert "one ```python code block: a complete Python 3 program" in first
    assert "is not a Python program, so it was not run" in second
    assert "SyntaxError: invalid syntax (line 1)" in second and "python3 solve.py" in second
    assert_no_gold_to_the_writer(result["writer"])


def test_a_script_given_as_a_python_tool_call_is_its_code(run: Any) -> None:
    wrapped = f"python(code={SUM_OF_SQUARES!r})"
    result = run([program(wrapped)], search_tries=3)
    assert result["out"]["search"]["outcomes"][-1] == "program-1: pass (3 values lifted)"


def test_a_crash_is_shown_as_a_crash_not_as_a_wrong_answer(run: Any) -> None:
    crashing = f"values = [{VALUES}]\nprint(sum(v * v for v in values) // len(values[3:]))\n"
    result = run([program(crashing), program(SUM_OF_SQUARES)])
    second = result["writer"].program_prompts()[1]
    assert "ZeroDivisionError" in second
    assert "It stopped with an error before it could answer" in second
    assert "The judge says this answer is wrong." not in second
    assert result["out"]["search"]["outcomes"][-1] == "program-2: pass (3 values lifted)"


def test_a_missing_standard_import_is_added_without_asking_the_writer(run: Any) -> None:
    uses_math = f"values = [{VALUES}]\nprint(int(math.fsum(v**2 for v in values)))\n"
    result = run([program(uses_math)], search_tries=3)
    report = result["out"]["search"]
    assert report["outcomes"][-1] == "program-1: pass (import math added; 3 values lifted)"
    assert len(result["writer"].program_prompts()) == 1
    assert "\nimport math\n" in result["out"]["procedure"]["script"]


def test_text_after_the_programs_closing_fence_is_not_part_of_it(run: Any) -> None:
    """The stand-in closed its code with a fence and went on to a second call's notation."""
    fenced = f"```python\n{SUM_OF_SQUARES}```\n\nfunctions.Program:\n{{ "
    result = run([program(fenced)], search_tries=3)
    assert result["out"]["search"]["outcomes"][-1] == "program-1: pass (3 values lifted)"
    assert (
        result["out"]["procedure"]["script"]
        == only(lifted(filled(SUM_OF_SQUARES, TASK), TASK)).code
    )


def test_a_cut_off_last_line_is_dropped_and_the_writer_told_it_printed_nothing(run: Any) -> None:
    cut_off = f"values = [{VALUES}]\nprint(\n"
    result = run([program(cut_off), program(SUM_OF_SQUARES)])
    report = result["out"]["search"]
    assert report["outcomes"][-2:] == ["program-1: fail", "program-2: pass (3 values lifted)"]
    second = result["writer"].program_prompts()[1]
    assert "It printed nothing" in second and "print(\n" not in second.split("Your program:")[1]


def test_a_repeated_program_is_asked_for_again_at_a_temperature(run: Any) -> None:
    result = run([program(PLAIN_SUM), program(PLAIN_SUM), program(SUM_OF_SQUARES)])
    report = result["out"]["search"]
    assert report["outcomes"][-2:] == ["program-1: fail", "program-2: pass (3 values lifted)"]
    programs = [
        c for c in result["writer"].model.calls if c.text in result["writer"].program_prompts()
    ]
    assert [c.kwargs.get("temperature") for c in programs] == [None, None, 0.8]
    assert_no_gold_to_the_writer(result["writer"])


def test_a_program_that_comes_back_the_same_when_sampled_is_not_run_again(run: Any) -> None:
    result = run([program(PLAIN_SUM)] * 3 + [program(SUM_OF_SQUARES)], search_repairs=1)
    assert result["out"]["search"]["outcomes"][-2:] == [
        "program-1: fail",
        "program-2: fail (repeated)",
    ]


def test_the_program_prompt_shows_the_attempts_code_as_code() -> None:
    """The one-line call notation of the attribution prompt, `python(code='...') -> ...`, was
    copied by the stand-in as its script; the program prompt shows code as a code block."""
    steps = [
        ToolStep(
            tool="python",
            args={"code": "print(3 + 4)"},
            output="exit code: 0\nstdout:\n7",
            error=False,
        ),
        ToolStep(tool="list_dir", args={"path": "."}, output="(empty)", error=True),
    ]
    shown = attempt_text(steps)
    assert "```python\nprint(3 + 4)\n```" in shown and "python(code=" not in shown
    assert "Step 2, list_dir(" in shown and "failed:\n(empty)" in shown
    assert tool_call_code("python(code='print(1)')") == "print(1)"
    # the field was `script` once: a reply that still names it is read as the code
    assert Program.model_validate({"script": "print(1)", "args": ["2"]}).code == "print(1)"
    assert "code" in Program.model_json_schema()["properties"]
    assert tool_call_code("print(1)") is None and tool_call_code("python(1, 2)") is None


def test_a_passing_executor_run_has_its_values_lifted_without_the_writer(run: Any) -> None:
    result = run([], right_when_forced=True)
    report = result["out"]["search"]
    assert report["outcomes"] == [
        "sample-1: fail",
        "forced-python: pass (3 values lifted)",
    ]
    assert report["found_by"] == "forced-python" and report["stopped"] == "found"
    assert result["writer"].program_prompts() == []
    (script,) = [p for p in result["library"].root.glob("*/scripts/*.py") if "**2" in p.read_text()]
    assert "sys.argv[3]" in script.read_text() and "12**2" not in script.read_text()


def test_a_passing_executor_run_is_parameterised_by_the_writer(run: Any) -> None:
    # 3 twice in the code: which 3 is the task's is unknown, so the writer parameterises it
    result = run(
        [program(SUM_OF_SQUARES)], right_when_forced=True, python="print(3*3 + 4*4 + 12*12)"
    )
    report = result["out"]["search"]
    assert report["outcomes"] == [
        "sample-1: fail",
        "forced-python: pass",
        "program-1: pass (3 values lifted)",
    ]
    assert report["found_by"] == "forced-python" and report["stopped"] == "found"
    (prompt,) = result["writer"].program_prompts()
    assert "A run that the judge passed" in prompt and "print(3*3 + 4*4 + 12*12)" in prompt
    assert_no_gold_to_the_writer(result["writer"])

    # the writer cannot parameterise it: the passing run itself is what was found
    unparameterised = run(
        wrong_programs(3), right_when_forced=True, python="print(3*3 + 4*4 + 12*12)"
    )["out"]["search"]
    assert unparameterised["found_by"] == "forced-python"
    assert unparameterised["stopped"] == "found"
    assert unparameterised["outcomes"][1:] == [
        "forced-python: pass",
        "program-1: fail",
        "program-2: fail",
        "program-3: fail",
    ]


def test_a_passing_shell_command_is_made_a_python_program(run: Any) -> None:
    result = run([program(SUM_OF_SQUARES)], shell="echo $((3*3 + 4*4 + 12*12))")
    report = result["out"]["search"]
    assert report["outcomes"] == [
        "sample-1: fail",
        "forced-python: fail",
        "forced-shell: pass",
        "program-1: pass (3 values lifted)",
    ]
    assert report["found_by"] == "forced-shell"
    (prompt,) = result["writer"].program_prompts()
    assert "```bash\necho $((3*3 + 4*4 + 12*12))\n```" in prompt and "in Python" in prompt


def test_the_budget_stops_the_search(run: Any) -> None:
    wrong = wrong_programs(5)
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
    # a failed search can be read: the last program the sandbox ran, and what it printed
    last = repairs["last_program"]
    assert last["label"] == "program-2" and not last["passed"]
    assert last["script"] == filled(wrong[1]["code"], TASK) and last["answer"] == "18"
    assert "stdout:\n18" in last["output"]
    assert "last_program" not in by_tokens["out"]["search"]  # no program ran


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


def test_a_found_procedure_becomes_the_proposal_through_distil(run: Any) -> None:
    """distil (nodes/writing/distil.py) makes the search's program a skill that carries it."""
    result = run([program(SUM_OF_SQUARES)], search_tries=3)
    assert result["out"]["search"]["found_by"] == "program-1"
    library = result["library"]
    carried = [
        path
        for path in library.root.glob("*/scripts/*.py")
        if "sum(v * v for v in values)" in path.read_text()
    ]
    assert carried, [w["reason"] for w in result["out"]["writes"]]
    skill = carried[0].parent.parent.name
    written = [w for w in result["out"]["writes"] if w["skill"] == skill and w["accepted"]]
    assert written and written[0]["action"] in ("create", "refine")
    assert_no_gold_to_the_writer(result["writer"])


def test_a_program_with_the_tasks_values_written_in_is_lifted_into_a_script(run: Any) -> None:
    """The writer solved this task with its values in the code; the script that is kept reads
    them from its arguments (nodes/writing/lifting.py), so the skill serves the next task."""
    result = run([program("print(sum(v * v for v in [3, 4, 12]))\n")], search_tries=3)
    report = result["out"]["search"]
    assert report["outcomes"][-1] == "program-1: pass (3 values lifted)"
    (script,) = [
        p for p in result["library"].root.glob("*/scripts/*.py") if "v * v" in p.read_text()
    ]
    code = script.read_text()
    assert "sys.argv[3]" in code and "[3, 4, 12]" not in code
    assert_no_gold_to_the_writer(result["writer"])


def test_a_judge_models_equivalent_is_not_a_pass_for_the_search(run: Any) -> None:
    """Against a gold of several words the judge asks its model; the search keeps only code
    whose answer matches the gold itself."""
    task = "Write the words red green blue in reverse order."
    words = 'words = "red green blue"\n'
    result = run(
        [
            program(words + "print(words)\n"),
            program(words + 'print(" ".join(words.split()[::-1]))\n'),
        ],
        task=task,
        ground_truth="blue green red",
        judge_says=lambda messages: {  # a small judge: the words are all there, so it passes
            "equivalent": "<agent_answer>\nred green blue" in messages[-1].text,
            "reason": "The same words.",
        },
        search_tries=5,
    )
    report = result["out"]["search"]
    assert report["outcomes"][-2:] == ["program-1: fail", "program-2: pass (1 value lifted)"]
    assert report["last_program"]["label"] == "program-2"


def test_an_approval_pause_after_the_search_does_not_search_again(tmp_path: Path) -> None:
    executor, writer = Executor(), Writer([program(PLAIN_SUM)] * 10)
    judge = ScriptedChatModel(script=[lambda m: "no"] * CALLS)
    graph = build_graph(
        InMemorySaver(),
        chat_models={"executor": executor.model, "writer": writer.model, "judge": judge},
        library=open_library(tmp_path / "skills"),
        index=SkillIndex(tmp_path / "index"),
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"),
        run_log=str(tmp_path / "runs.jsonl"),
        max_attempts=1,
        web_search=False,
        approval_required=True,
        search_tries=3,
    )
    config: RunnableConfig = {"configurable": {"thread_id": "approve"}}
    graph.invoke({"task": TASK, "task_id": "t1", "ground_truth": GOLD}, config, context=ctx)
    paused = graph.get_state(config)
    assert paused.next  # waiting for the reviewer, with the search done
    assert len(writer.program_prompts()) == 1
    out = graph.invoke(Command(resume="reject"), config, context=ctx)
    assert len(writer.program_prompts()) == 1  # the resume did not search again
    assert out["search"]["tries"] == 3 and out["search"]["stopped"] == "budget-tries"
    assert any(w["action"] == "rejected" for w in out["writes"])
