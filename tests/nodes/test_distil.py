"""Script distillation end to end: a winning procedure becomes a skill carrying a tested script.

The scripted writer writes the script and names the skill; the scripted executor calls a skill's
script with the task's values when one is offered, else guesses. Everything else is real: the
sandbox that checks the script and runs it, the library's files, the embedder that judges a
skill's name against its task, the compiled graph with its approval pause, commit and gate.

The task family (the sum of a number's decimal digits) is none of the benchmark's generators.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import Procedure, ToolStep
from memento_skills.nodes.writing.distil import distil
from memento_skills.stores.cases import Case
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.settings import open_library
from memento_skills.stores.skill import SkillError, parse_skill
from memento_skills.testing import ScriptedChatModel

TASK = "What is the sum of the digits of 98765?"
GOLD = "35"
SIBLINGS = [
    ("Add up the digits of the number 40721. What do you get?", "14"),
    ("Compute the digit sum of 5553.", "18"),
]
NEW_TASK = "Find the sum of all digits in 1234567."
NEW_GOLD = "28"

GOOD_SCRIPT = (
    "import sys\n\n"
    "def digit_sum(number: str) -> int:\n"
    "    return sum(int(c) for c in number if c.isdigit())\n\n"
    "print(digit_sum(sys.argv[1]))\n"
)
HARD_CODED = "print(35)\n"  # right for its own task only
SPEC = {
    "name": "Digit Sum",
    "description": "Add up the decimal digits of a whole number. Use when a task asks for the "
    "sum of the digits of an integer.",
    "computes": "the sum of the decimal digits of the number it is given",
    "arguments": [{"name": "number", "meaning": "the whole number whose digits are added"}],
}
MISNAMED = {
    "name": "csv-analysis",
    "description": "Load CSV spreadsheets with pandas and report column statistics.",
    "computes": "statistics of a table",
    "arguments": [{"name": "file", "meaning": "the CSV file"}],
}


def procedure(script: str = "", args: list[str] | None = None) -> Procedure:
    """What the search hands distil: a trajectory that won with python (no script), or a
    program of the writer's with its arguments."""
    steps = [
        ToolStep(
            tool="python",
            args={"code": "n = 98765\nprint(sum(int(d) for d in str(n)))"},
            output="exit code: 0\nstdout:\n35\n",
            error=False,
        ),
        ToolStep(tool="submit_answer", args={"answer": "35"}, output="", error=False),
    ]
    return Procedure(
        found_by="sample-2" if not script else "program-1",
        script=script,
        args=args or [],
        output="35",
        steps=[] if script else steps,
    )


def writer_for(*replies: Any) -> ScriptedChatModel:
    return ScriptedChatModel(script=list(replies))


@pytest.fixture
def lib(tmp_path: Path) -> dict[str, Any]:
    library = open_library(tmp_path / "skills")
    index = SkillIndex(tmp_path / "index")
    ctx = Context(workspace_dir=str(tmp_path / "ws"), web_search=False)

    def synced() -> Any:
        index.sync(library.skills())
        return index

    return {"library": library, "index": index, "synced": synced, "ctx": ctx, "tmp": tmp_path}


def run_script(path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-I", str(path), *args], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# ---------------------------------------------------------------- distil alone


def test_a_trajectory_becomes_a_parameterised_checked_script_skill(lib: dict[str, Any]) -> None:
    writer = writer_for({"code": GOOD_SCRIPT, "args": ["98765"]}, SPEC)
    proposal = distil(
        procedure(), TASK, writer, lib["library"], lib["synced"], None, ctx=lib["ctx"]
    )
    assert proposal["action"] == "create" and proposal["skill"] == "digit-sum"
    assert proposal["files"] == {"scripts/digit_sum.py": GOOD_SCRIPT}
    md = proposal["skill_md"]
    assert "memento-first-tool: run_skill_script" in md
    assert "allowed-tools: run_skill_script submit_answer" in md
    assert "memento-provenance: learned" in md
    assert "scripts/digit_sum.py" in md and "`number`: the whole number" in md
    # the worked call shows the call, with the task's values generalised
    assert "run_skill_script(script='scripts/digit_sum.py', args=[\"N1\"])" in md
    authored = parse_skill(md, "<proposed>").authored_text()  # no timestamps to hold a gold
    assert "98765" not in authored and GOLD not in authored
    # the diff shown for approval carries the script
    assert "+++ digit-sum@proposed/scripts/digit_sum.py" in proposal["diff"]
    assert "+    return sum(int(c) for c in number if c.isdigit())" in proposal["diff"]
    # the writer saw the trajectory's code and its own answer, never a gold
    script_prompt = writer.calls[0].text
    assert "print(sum(int(d) for d in str(n)))" in script_prompt


def test_a_script_that_does_not_reproduce_the_winning_answer_is_refused(
    lib: dict[str, Any],
) -> None:
    wrong = "import sys\nprint(len(sys.argv[1]))\n"  # counts the digits instead
    writer = writer_for({"code": wrong, "args": ["98765"]}, SPEC)
    with pytest.raises(SkillError, match="does not reproduce the winning answer"):
        distil(procedure(), TASK, writer, lib["library"], lib["synced"], None, ctx=lib["ctx"])
    failing = "import sys\nprint(int(sys.argv[2]))\n"  # reads an argument it was not given
    writer = writer_for({"code": failing, "args": ["98765"]}, SPEC)
    with pytest.raises(SkillError, match=r"failed on this task's arguments.*IndexError"):
        distil(procedure(), TASK, writer, lib["library"], lib["synced"], None, ctx=lib["ctx"])
    assert not lib["library"].exists("digit-sum")


def test_a_javascript_script_is_refused(lib: dict[str, Any]) -> None:
    js = "function digitSum(n) {\n  return String(n).split('').reduce((a, c) => a + +c, 0);\n}\n"
    with pytest.raises(SkillError, match="not python that compiles"):
        distil(
            procedure(js, ["98765"]), TASK, writer_for(SPEC), lib["library"], lib["synced"], None,
            ctx=lib["ctx"],
        )  # fmt: skip
    writer = writer_for({"code": js, "args": ["98765"]}, SPEC)
    with pytest.raises(SkillError, match="not python that compiles"):
        distil(procedure(), TASK, writer, lib["library"], lib["synced"], None, ctx=lib["ctx"])


def test_a_misnamed_skill_is_refused_after_one_more_ask(lib: dict[str, Any]) -> None:
    writer = writer_for({"code": GOOD_SCRIPT, "args": ["98765"]}, MISNAMED, MISNAMED)
    with pytest.raises(SkillError, match="do not describe its task"):
        distil(procedure(), TASK, writer, lib["library"], lib["synced"], None, ctx=lib["ctx"])
    assert "does not describe this task" in writer.calls[2].text  # it was asked once more
    # a second answer that describes the task is taken
    writer = writer_for({"code": GOOD_SCRIPT, "args": ["98765"]}, MISNAMED, SPEC)
    proposal = distil(
        procedure(), TASK, writer, lib["library"], lib["synced"], None, ctx=lib["ctx"]
    )
    assert proposal["skill"] == "digit-sum"


def test_a_learned_skill_of_the_kind_is_refined_with_the_script(lib: dict[str, Any]) -> None:
    library = lib["library"]
    from memento_skills.stores.skill import Skill

    prose = library.create(
        Skill(
            name="digit-sum",
            description="Add up the decimal digits of a whole number.",
            body="Add each digit in your head.",
            provenance="learned",
        )
    )
    proposal = distil(
        procedure(GOOD_SCRIPT, ["98765"]), TASK, writer_for(SPEC), library, lib["synced"], prose,
        ctx=lib["ctx"],
    )  # fmt: skip
    assert proposal["action"] == "refine" and proposal["skill"] == "digit-sum"
    assert proposal["base_version"] == prose.version
    assert "-Add each digit in your head." in proposal["diff"]
    assert "--- /dev/null\n+++ digit-sum@proposed/scripts/digit_sum.py" in proposal["diff"]


# ---------------------------------------------------------------- through the graph


def executor_policy(messages: list[BaseMessage]) -> AIMessage:
    """Calls the skill's script with the task's number when its skill names one; else a wrong
    guess. Submits the last line the script printed."""
    system = next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")
    task = next((str(m.content) for m in messages if isinstance(m, HumanMessage)), "")
    if submitted := script_answer(messages[-1]):
        return submitted
    script = re.search(r"scripts/[\w-]+\.py", system)
    if script and "run_skill_script" in system:
        number = re.findall(r"\d+", task)[-1]
        return _call("run_skill_script", {"script": script.group(0), "args": [number]})
    return AIMessage(content="7")


def script_answer(last: BaseMessage) -> AIMessage | None:
    """After the skill's script ran: submit the last line it printed."""
    if not (isinstance(last, ToolMessage) and last.name == "run_skill_script"):
        return None
    out = str(last.content).split("stdout:")[-1].strip().splitlines()
    return _call("submit_answer", {"answer": out[-1] if out else ""})


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


def prose_writer(messages: list[BaseMessage]) -> dict[str, Any]:
    """The write phase's prose proposal, which the distilled one replaces at the pause."""
    prompt = "\n".join(str(m.content) for m in messages)
    if "Work out why" in prompt:
        return {"cause": "no-skill", "failed_step": None, "action": "create", "tip": ""}
    return {
        "name": "digit-adding",
        "description": "Add digits of numbers.",
        "body": "Add the digits one by one.",
        "allowed_tools": ["python"],
    }


@pytest.fixture
def graph(lib: dict[str, Any]) -> dict[str, Any]:
    return graph_on(lib, executor_policy)


def graph_on(lib: dict[str, Any], executor: Any) -> dict[str, Any]:
    """The compiled graph on the fixture's library, approval on, the learner's cases set."""
    resources = Resources(
        chat_models={
            "executor": ScriptedChatModel(script=[executor] * 100),
            "writer": ScriptedChatModel(script=[prose_writer] * 20),
            "judge": ScriptedChatModel(script=["no"] * 50),
            "router": ScriptedChatModel(script=["none"] * 50),
        },
        library=lib["library"],
        index=lib["index"],
    )
    resources.training_cases = lambda: [
        Case(task=TASK, ground_truth=GOLD, task_id="t0"),  # the task itself: never a sibling
        *(Case(task=t, ground_truth=g, task_id=f"s{i}") for i, (t, g) in enumerate(SIBLINGS)),
        Case(task="Reverse the word lantern.", ground_truth="nretnal", task_id="other"),
    ]
    memento = build_graph(checkpointer=InMemorySaver(), resources=resources)
    ctx = Context(
        approval_required=True,
        max_attempts=1,
        web_search=False,
        workspace_dir=str(lib["tmp"] / "ws"),
        run_log=str(lib["tmp"] / "runs.jsonl"),
    )
    return {**lib, "graph": memento, "ctx": ctx, "resources": resources}


def reviewed(
    graph: dict[str, Any], script: str, decision: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run TASK to its approval pause, answer it with the distilled proposal in place of the
    prose one (as the search node will put it there) and the reviewer's `decision`, and run the
    commit and the gate. Returns the pause's payload, checked to be the approve node's, with the
    distilled proposal, and the run's output."""
    memento, ctx = graph["graph"], graph["ctx"]
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    first = memento.invoke(
        {"task": TASK, "task_id": "t0", "ground_truth": GOLD}, config, context=ctx
    )
    (pending,) = first["__interrupt__"]
    assert pending.value["skill"] == "digit-adding" and pending.value["files"] == []
    proposal = distil(
        procedure(script, ["98765"] if script else []),
        TASK,
        writer_for(SPEC) if script else writer_for({"code": GOOD_SCRIPT, "args": ["98765"]}, SPEC),
        graph["library"],
        graph["synced"],
        None,
        ctx=ctx,
    )
    shown = {**pending.value, "diff": proposal["diff"], "files": sorted(proposal["files"])}
    (sub,) = [t for t in memento.get_state(config, subgraphs=True).tasks if t.state]
    memento.update_state(
        sub.state.config, {"proposal": proposal, "decision": decision}, as_node="approve"
    )
    return shown, memento.invoke(None, config, context=ctx)


def test_a_distilled_skill_is_shown_written_gated_on_siblings_and_used(
    graph: dict[str, Any],
) -> None:
    memento, ctx, library = graph["graph"], graph["ctx"], graph["library"]
    assert not library.exists("digit-sum")
    shown, out = reviewed(graph, "", "accept")
    assert shown["files"] == ["scripts/digit_sum.py"]
    assert "+++ digit-sum@proposed/scripts/digit_sum.py" in shown["diff"]
    (created,) = [w for w in out["writes"] if w["action"] == "create"]
    assert created["accepted"], created
    assert "2 of 2 other training task(s) of its kind pass" in created["reason"]

    fresh = SkillLibrary(library.root)
    skill = fresh.get("digit-sum")
    assert skill.first_tools == ("run_skill_script",) and skill.trusted
    script = fresh.skill_dir("digit-sum") / "scripts" / "digit_sum.py"
    compile(script.read_text(encoding="utf-8"), str(script), "exec")
    # with the arguments of a different task of the kind it gives that task's answer
    assert run_script(script, "1234567") == NEW_GOLD

    # a new task of the kind is routed to it and solved by calling the script with arguments
    later = memento.invoke(
        {"task": NEW_TASK, "task_id": "t9", "ground_truth": NEW_GOLD},
        {"configurable": {"thread_id": uuid.uuid4().hex}},
        context=Context(**{**ctx.__dict__, "approval_required": False, "write_policy": "off"}),
    )
    assert later["selected_skill"] == "digit-sum"
    assert later["verdict"]["passed"] and later["answer"] == NEW_GOLD


def copying_policy(messages: list[BaseMessage]) -> AIMessage:
    """A small model's habit: calls the script exactly as the skill's worked call shows it,
    taking nothing from the task itself."""
    system = next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")
    if submitted := script_answer(messages[-1]):
        return submitted
    shown = re.search(r"run_skill_script\(script='([^']+)', args=(\[.*?\])\)", system)
    if shown:
        return _call("run_skill_script", {"script": shown[1], "args": json.loads(shown[2])})
    return AIMessage(content="7")


def test_an_executor_copying_the_worked_call_gets_its_own_tasks_numbers(
    lib: dict[str, Any],
) -> None:
    graph = graph_on(lib, copying_policy)
    library = graph["library"]
    _, out = reviewed(graph, "", "accept")
    (created,) = [w for w in out["writes"] if w["action"] == "create"]
    assert created["accepted"], created
    # the stored instructions keep the placeholder; only the prompt shows the task's number
    assert 'args=["N1"]' in SkillLibrary(library.root).get("digit-sum").body
    later = graph["graph"].invoke(
        {"task": NEW_TASK, "task_id": "t9", "ground_truth": NEW_GOLD},
        {"configurable": {"thread_id": uuid.uuid4().hex}},
        context=Context(
            **{**graph["ctx"].__dict__, "approval_required": False, "write_policy": "off"}
        ),
    )
    assert later["selected_skill"] == "digit-sum"
    assert later["verdict"]["passed"] and later["answer"] == NEW_GOLD
    executor = graph["resources"].model("executor", graph["ctx"])
    system = str(executor.calls[-2].messages[0].content)
    assert 'args=["1234567"]' in system and "filled in with this task's numbers" in system


def test_a_script_for_its_own_instance_only_is_refused_by_its_siblings(
    graph: dict[str, Any],
) -> None:
    ctx, library = graph["ctx"], graph["library"]
    shown, out = reviewed(graph, HARD_CODED, "accept")
    assert "+print(35)" in shown["diff"]
    (rolled,) = [w for w in out["writes"] if w["action"] == "rollback"]
    assert not rolled["accepted"]
    assert "passes none of 2 other training tasks of its kind" in rolled["reason"]
    assert not SkillLibrary(library.root).exists("digit-sum")
    # the sibling golds never reached the writer
    writer = graph["resources"].model("writer", ctx)
    prompts = "\n".join(c.text for c in writer.calls)
    assert all(g not in prompts for _, g in SIBLINGS)


def test_a_rejected_script_skill_writes_nothing(graph: dict[str, Any]) -> None:
    library = graph["library"]
    _, out = reviewed(graph, GOOD_SCRIPT, "reject")
    assert not [w for w in out["writes"] if w["skill"] == "digit-sum"]
    assert not SkillLibrary(library.root).exists("digit-sum")
    assert not any(p.name == "digit_sum.py" for p in library.root.rglob("*.py"))


def test_proposal_files_are_checked_before_anything_is_written(lib: dict[str, Any]) -> None:
    from memento_skills.nodes.writing.proposals import make_proposal
    from memento_skills.stores.skill import Skill

    new = Skill(name="digit-sum", description="Add digits.", body="Call the script.")
    for files, why in [
        ({"../escape.py": "print(1)\n"}, "not a relative path under scripts/"),
        ({"helper.py": "print(1)\n"}, "not a relative path under scripts/"),
        ({"scripts/x.py": "x" * 70_000}, "the limit is"),
        ({"scripts/x.py": "def f(:\n"}, "not python that compiles"),
    ]:
        with pytest.raises(SkillError, match=re.escape(why)):
            make_proposal("create", new, None, "test", files)
    assert json.dumps(make_proposal("create", new, None, "t", {"scripts/x.sh": "echo 1"})["files"])


def test_called_in_a_graph_node_it_uses_that_runs_context(lib: dict[str, Any]) -> None:
    """The search node calls distil without a context: the run's own applies (its routing
    threshold here, so a strict run refuses a skill a default run would take)."""
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    class S(TypedDict, total=False):
        outcome: str

    def node(state: S) -> S:
        writer = writer_for({"code": GOOD_SCRIPT, "args": ["98765"]}, SPEC, SPEC)
        try:
            made = distil(procedure(), TASK, writer, lib["library"], lib["synced"], None)
        except SkillError as e:
            return {"outcome": str(e)}
        return {"outcome": made["skill"]}

    builder = StateGraph(S, context_schema=Context)
    builder.add_node("distil", node)
    builder.add_edge(START, "distil")
    builder.add_edge("distil", END)
    compiled = builder.compile()
    strict = Context(workspace_dir=lib["ctx"].workspace_dir, min_route_score=0.99)
    assert "under the routing threshold 0.99" in compiled.invoke({}, context=strict)["outcome"]
    assert compiled.invoke({}, context=lib["ctx"])["outcome"] == "digit-sum"


@pytest.mark.parametrize("approved", [False, True])
def test_the_same_script_imported_runs_only_once_approved(
    lib: dict[str, Any], approved: bool
) -> None:
    """A learned script runs unasked (above); the same skill arriving from a pack does not."""
    from memento_skills.stores.skill import parse_skill

    made = distil(
        procedure(GOOD_SCRIPT, ["98765"]), TASK, writer_for(SPEC), lib["library"], lib["synced"],
        None, ctx=lib["ctx"],
    )  # fmt: skip
    skill = parse_skill(made["skill_md"], "<test>", folder_name=made["skill"])
    lib["library"].create(
        skill.with_changes(provenance="imported", trusted=False),
        files={rel: text.encode() for rel, text in made["files"].items()},
    )
    asked: list[str] = []

    def approve(path: str) -> bool:
        asked.append(path)
        return approved

    memento = build_graph(
        chat_models={
            "executor": ScriptedChatModel(script=[executor_policy] * 10),
            "judge": ScriptedChatModel(script=["no"] * 5),
            "router": ScriptedChatModel(script=["none"] * 5),
        },
        library=lib["library"],
        index=lib["index"],
        approve_script=approve,
    )
    out = memento.invoke(
        {"task": NEW_TASK, "task_id": "t9", "ground_truth": NEW_GOLD},
        context=Context(
            workspace_dir=lib["ctx"].workspace_dir, web_search=False, write_policy="off",
            max_attempts=1, run_log=str(lib["tmp"] / "runs.jsonl"),
        ),
    )  # fmt: skip
    assert out["selected_skill"] == "digit-sum"
    assert [Path(p).name for p in asked] == ["digit_sum.py"]
    assert out["verdict"]["passed"] is approved


@pytest.mark.parametrize("provenance", ["learned", "api"])
def test_a_near_duplicate_is_refined_only_when_it_is_learned(
    lib: dict[str, Any], provenance: str
) -> None:
    from memento_skills.stores.skill import Skill

    library = lib["library"]
    library.create(
        Skill(
            name="digit-sum",
            description=str(SPEC["description"]),
            body="Add the digits one by one.",
            provenance=provenance,  # type: ignore[arg-type]
        )
    )
    made = distil(
        procedure(GOOD_SCRIPT, ["98765"]), TASK, writer_for(SPEC), library, lib["synced"], None,
        ctx=lib["ctx"],
    )  # fmt: skip
    if provenance == "learned":
        assert (made["action"], made["skill"]) == ("refine", "digit-sum")
    else:  # a hand-written skill keeps its text; the script skill is a new one beside it
        assert (made["action"], made["skill"]) == ("create", "digit-sum-2")
        assert made["files"] == {"scripts/digit_sum_2.py": GOOD_SCRIPT}


def test_a_stop_during_the_gate_leaves_nothing_of_the_script_skill(lib: dict[str, Any]) -> None:
    def stopped_in_replay(messages: list[BaseMessage]) -> AIMessage:
        if any(isinstance(m, SystemMessage) and "scripts/digit_sum.py" in str(m.content)
               for m in messages):  # fmt: skip
            raise KeyboardInterrupt  # Ctrl-C while the gate replays the new skill
        return executor_policy(messages)

    with pytest.raises(KeyboardInterrupt):
        reviewed(graph_on(lib, stopped_in_replay), GOOD_SCRIPT, "accept")
    library = SkillLibrary(lib["library"].root)
    assert not library.exists("digit-sum")
    assert not (library.root / ".memento" / "history" / "digit-sum").exists()
    for path in library.root.rglob("*"):
        if path.is_file():
            assert b"def digit_sum" not in path.read_bytes(), path


def test_the_writer_prompts_are_a_reviewed_snapshot(lib: dict[str, Any], snapshot: Any) -> None:
    """What distil asks the writer (the script, then the skill's name and arguments), with the
    schemas it is asked to fill: a changed prompt is a reviewed diff
    (`pytest tests/nodes/test_distil.py --snapshot-update`)."""
    writer = writer_for({"code": GOOD_SCRIPT, "args": ["98765"]}, MISNAMED, SPEC)
    distil(procedure(), TASK, writer, lib["library"], lib["synced"], None, ctx=lib["ctx"])
    sent = [
        {
            "messages": [(m.type, m.text) for m in call.messages],
            "tools": call.kwargs.get("tools"),
            "tool_choice": call.kwargs.get("tool_choice"),
        }
        for call in writer.calls
    ]
    assert sent == snapshot


def test_files_put_in_the_state_after_the_proposal_are_checked_again_at_commit(
    graph: dict[str, Any],
) -> None:
    """A proposal edited in the paused state (Studio, `update_state`) cannot slip a file past
    the checks: commit refuses it and writes nothing."""
    memento, ctx, library = graph["graph"], graph["ctx"], graph["library"]
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    memento.invoke({"task": TASK, "task_id": "t0", "ground_truth": GOLD}, config, context=ctx)
    made = distil(
        procedure(GOOD_SCRIPT, ["98765"]), TASK, writer_for(SPEC), library, graph["synced"], None,
        ctx=ctx,
    )  # fmt: skip
    tampered = {**made, "files": {"../../outside.py": GOOD_SCRIPT}}
    (sub,) = [t for t in memento.get_state(config, subgraphs=True).tasks if t.state]
    memento.update_state(
        sub.state.config, {"proposal": tampered, "decision": "accept"}, as_node="approve"
    )
    out = memento.invoke(None, config, context=ctx)
    (refused,) = [w for w in out["writes"] if w["skill"] == "digit-sum"]
    assert not refused["accepted"] and "not a relative path under scripts/" in refused["reason"]
    assert not SkillLibrary(library.root).exists("digit-sum")
    assert not list(library.root.parent.rglob("outside.py"))
