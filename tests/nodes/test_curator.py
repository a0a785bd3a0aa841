"""The curator: its plan as a table of cases, and its steps end to end on a real library.

The end-to-end tests run on a real seeded library, the real index (Chroma + the local embedder)
and the gate's real replay graph (execute subgraph, sandboxed python, judge) with a scripted
executor that sums digits right only when a digit-sum skill is in its prompt.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage

from memento_skills.graph.builder import build_gate_replay
from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.nodes.writing.curator import (
    DRAFT_USES,
    CurationGate,
    CurationStep,
    Similarities,
    apply_curation,
    plan_curation,
    plan_library,
    redundant_text,
)
from memento_skills.stores.cases import Case, CaseStore
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.settings import open_library
from memento_skills.stores.skill import Lift, Skill, Utility
from memento_skills.testing import ScriptedChatModel

# --- the plan, case by case -------------------------------------------------------------------

SCRIPT = "scripts/count_things.py"
CALLING_BODY = (
    f"# Counting\n\nCall run_skill_script with {SCRIPT} and the task's two numbers.\n\n"
    "## Steps\n\n1. Loop over every number in the range.\n2. Count those that qualify.\n\n"
    "```python\ndef count(a, b):\n    return sum(1 for n in range(a, b))\n```\n"
)


def skill(name: str, **kw: Any) -> Skill:
    fields: dict[str, Any] = {
        "description": f"Does {name.replace('-', ' ')} for tasks of its kind.",
        "body": "# Steps\n1. Think.\n2. Answer.",
        "provenance": "learned",
        "lifecycle": "candidate",
        "version": 3,
        **kw,
    }
    return Skill(name=name, **fields)


def actions(steps: list[CurationStep]) -> list[tuple[str, str]]:
    return [(s.action, s.skill) for s in steps]


NONE = Similarities()


@pytest.mark.parametrize(
    ("case", "given", "expected"),
    [
        ("negative lift, 2 cases each way", skill("junk", lift=Lift(0, 2, 2, 2, 3)), "retire"),
        ("zero lift, 3 cases each way", skill("junk", lift=Lift(1, 3, 1, 3, 3)), "retire"),
        ("negative lift on 1 case: no evidence", skill("junk", lift=Lift(0, 1, 1, 1, 3)), None),
        ("negative lift, 1 case without", skill("junk", lift=Lift(0, 3, 1, 1, 3)), None),
        ("positive lift", skill("good", lift=Lift(2, 2, 0, 2, 3)), None),
        ("never measured", skill("new"), None),
        (
            "a draft that kept failing",
            skill("probation", lifecycle="draft", utility=Utility(0, DRAFT_USES)),
            "retire",
        ),
        (
            "a draft that failed fewer times",
            skill("probation", lifecycle="draft", utility=Utility(0, DRAFT_USES - 1)),
            None,
        ),
        (
            "a draft that once passed",
            skill("probation", lifecycle="draft", utility=Utility(1, 5)),
            None,
        ),
        (
            "a candidate that failed (no lift shown either way)",
            skill("cand", utility=Utility(0, 5)),
            None,
        ),
        (
            "a seed with negative lift",
            skill("python", provenance="seed", lifecycle="active", lift=Lift(0, 2, 2, 2, 3)),
            None,
        ),
        (
            "already deprecated",
            skill("old", lifecycle="deprecated", lift=Lift(0, 2, 2, 2, 3)),
            None,
        ),
    ],
)
def test_retire_on_evidence_only(case: str, given: Skill, expected: str | None) -> None:
    steps = plan_curation([given], NONE, {})
    assert [s.action for s in steps] == ([expected] if expected else []), case
    if expected:
        assert steps[0].base_version == given.version and steps[0].evidence


def test_an_imported_skill_is_retired_only_with_approval() -> None:
    imported = skill("pack-skill", provenance="imported", lift=Lift(0, 2, 2, 2, 3))
    (step,) = plan_curation([imported], NONE, {})
    assert step.action == "retire" and step.needs_approval


def _pair(sim: float) -> Similarities:
    return Similarities(documents={("digit-sum", "sum-of-digits"): sim})


@pytest.mark.parametrize(
    ("sim", "merged"),
    [(0.95, True), (0.9, True), (0.85, False)],
)
def test_near_duplicates_merge_into_the_better_one(sim: float, merged: bool) -> None:
    better = skill("sum-of-digits", lift=Lift(2, 2, 0, 2, 3))
    worse = skill("digit-sum", lift=Lift(1, 2, 0, 2, 3), utility=Utility(9, 0))
    steps = plan_curation([worse, better], _pair(sim), {})
    if not merged:
        assert steps == []
        return
    (step,) = steps
    assert (step.action, step.skill, step.into) == ("merge", "digit-sum", "sum-of-digits")
    assert step.into_version == 3 and "0.9" in step.evidence


def test_without_lift_the_better_record_stays() -> None:
    a = skill("digit-sum", utility=Utility(1, 3))
    b = skill("sum-of-digits", utility=Utility(4, 1))
    (step,) = plan_curation([a, b], _pair(0.97), {})
    assert (step.skill, step.into) == ("digit-sum", "sum-of-digits")


def test_seed_and_imported_skills_are_never_merged() -> None:
    seed = skill("digit-sum", provenance="seed", lifecycle="active")
    imported = skill("digit-sum", provenance="imported", lifecycle="active")
    learned = skill("sum-of-digits")
    assert plan_curation([seed, learned], _pair(0.99), {}) == []
    assert plan_curation([imported, learned], _pair(0.99), {}) == []


def test_redundant_body_text_is_dropped_and_the_call_kept() -> None:
    s = skill("count-things", body=CALLING_BODY)
    (step,) = plan_curation([s], NONE, {"count-things": [SCRIPT]})
    assert step.action == "drop"
    assert "run_skill_script" in step.body and SCRIPT in step.body
    assert "def count" not in step.body and "Loop over" not in step.body
    assert "## Steps" not in step.body  # a heading left empty goes with its text
    assert "1 code block(s), 1 step list(s)" in step.evidence


@pytest.mark.parametrize(
    ("case", "body", "scripts"),
    [
        ("no script: the steps are the procedure", CALLING_BODY, []),
        (
            "the steps call the script",
            f"1. Read the two numbers.\n2. Call run_skill_script {SCRIPT} with them.",
            [SCRIPT],
        ),
        (
            "nothing would call the script after the drop",
            "1. Loop over the numbers.\n2. Count.\n\n```python\nprint(1)\n```",
            [SCRIPT],
        ),
        (
            "a data block (the script's output) is not code",
            f"Run {SCRIPT} with the numbers.\n\n```text\n42\n```",
            [SCRIPT],
        ),
    ],
)
def test_nothing_to_drop(case: str, body: str, scripts: list[str]) -> None:
    assert redundant_text(body, scripts) is None, case


def _names(own: float, suggested: float, other: tuple[str, float] = ("", -1.0)) -> Similarities:
    return Similarities(
        name_own={"csv-analysis": own},
        name_other={"csv-analysis": other} if other[0] else {},
        suggested={"csv-analysis": ("reverse-letters-word", suggested)},
    )


@pytest.mark.parametrize(
    ("case", "sims", "renamed"),
    [
        ("name unrelated to the description", _names(-0.02, 0.69), True),
        ("name fits", _names(0.7, 0.72), False),
        ("the rule's name is no better", _names(0.05, 0.1), False),
        ("name fits another skill far better", _names(0.3, 0.7, ("word-tools", 0.5)), True),
        ("name fits another skill a little better", _names(0.3, 0.7, ("word-tools", 0.35)), False),
    ],
)
def test_rename_a_name_that_does_not_fit(case: str, sims: Similarities, renamed: bool) -> None:
    steps = plan_curation([skill("csv-analysis")], sims, {})
    assert [(s.action, s.new_name) for s in steps] == (
        [("rename", "reverse-letters-word")] if renamed else []
    ), case


def test_a_rename_never_takes_a_name_in_use_and_seeds_keep_theirs() -> None:
    taken = skill("reverse-letters-word", description="Something else entirely.")
    sims = _names(-0.02, 0.69)
    (step,) = plan_curation([skill("csv-analysis"), taken], sims, {})
    assert step.new_name == "reverse-letters-word-2"
    seed = skill("csv-analysis", provenance="seed", lifecycle="active")
    assert plan_curation([seed], sims, {}) == []


def test_one_step_per_skill_retire_first() -> None:
    junk = skill("csv-analysis", lift=Lift(0, 2, 2, 2, 3))
    assert actions(plan_curation([junk], _names(-0.02, 0.69), {})) == [("retire", "csv-analysis")]


# --- end to end on a real library --------------------------------------------------------------

DIGITS = "# Digit sums\n1. Call the python tool with print(sum(int(c) for c in str(n))).\n2. Submit the printed number."
ZERO = "ALWAYS ANSWER ZERO to save time."


def _system(messages: list[BaseMessage]) -> str:
    return next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


def executor(messages: list[BaseMessage]) -> AIMessage:
    """Sums digits with python when a digit-sum skill is in its prompt; else a wrong guess."""
    last, system = messages[-1], _system(messages)
    if isinstance(last, ToolMessage) and last.name == "python":
        return _call("submit_answer", {"answer": re.findall(r"-?\d+", str(last.content))[-1]})
    if ZERO in system:
        return AIMessage(content="0")
    if "# Digit sums" in system:
        number = re.findall(r"\d+", str(messages[-1].content))[-1]
        return _call("python", {"code": f"print(sum(int(c) for c in '{number}'))"})
    return AIMessage(content="12345")


def fold_writer(append: str) -> ScriptedChatModel:
    return ScriptedChatModel(
        script=[{"edits": [], "append": append, "rationale": "merge the duplicate"}] * 5
    )


def case(n: int) -> Case:
    return Case(
        task=f"What is the sum of the digits of {n}?",
        ground_truth=str(sum(int(c) for c in str(n))),
        task_id=f"digits-{n}",
    )


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    library = open_library(tmp_path / "skills")
    index = SkillIndex(tmp_path / "index")
    model = ScriptedChatModel(script=[executor] * 500)
    judge = ScriptedChatModel(script=[lambda m: "no"] * 500)
    resources = Resources(
        chat_models={"executor": model, "judge": judge, "writer": judge, "router": judge},
        library=library,
        index=index,
    )
    ctx = Context(
        skills_dir=str(library.root),
        workspace_dir=str(tmp_path / "ws"),
        web_search=False,
        run_log=str(tmp_path / "runs.jsonl"),
    )
    cases = CaseStore(library.root)
    gate = CurationGate(build_gate_replay(resources), cases, ctx)
    return {"library": library, "index": index, "gate": gate, "cases": cases}


def learned(
    library: SkillLibrary, name: str, description: str, body: str, lift: Lift | None
) -> Skill:
    """A learned skill as the write phase leaves it (v1), with `lift` measured on v1."""
    library.create(
        Skill(
            name=name,
            description=description,
            body=body,
            provenance="learned",
            lifecycle="candidate",
        )
    )
    if lift is not None:
        library.record_lift(name, lift)
    return library.get(name)


def plan(world: dict[str, Any]) -> list[CurationStep]:
    library, index = world["library"], world["index"]
    index.sync(library.skills())
    return plan_library(library, index)


def test_a_junk_skill_is_retired_and_rollback_restores_it(world: dict[str, Any]) -> None:
    library = world["library"]
    junk = learned(
        library,
        "count-vowels",
        "Count the vowels in a word. Use when a task asks how many vowels a word has.",
        "# Vowels\n1. Answer 3.",
        Lift(0, 2, 1, 2, 1),
    )
    steps = plan(world)
    assert actions(steps) == [("retire", "count-vowels")]
    result = apply_curation(steps[0], library, world["gate"])
    assert result.applied, result.detail
    retired = library.get("count-vowels")
    assert retired.lifecycle == "deprecated" and retired.version > junk.version
    assert result.undo == [f"memento skills rollback count-vowels {junk.version}"]
    library.rollback("count-vowels", junk.version)
    back = library.get("count-vowels")
    assert back.lifecycle == "candidate" and back.body == junk.body
    assert plan(world)[0].action == "retire"  # the evidence is the same: it would go again


def test_seed_skills_are_never_touched(world: dict[str, Any]) -> None:
    library = world["library"]
    seeds = {s.name: s for s in library.skills()}
    assert seeds and all(s.provenance == "seed" for s in seeds.values())
    library.record_lift("python", Lift(0, 3, 3, 3, seeds["python"].version))
    assert plan(world) == []  # a seed with negative lift stays: a person made it
    assert library.get("python").lifecycle == "active"


def test_a_misnamed_skill_is_renamed_with_its_cases(world: dict[str, Any]) -> None:
    library, cases = world["library"], world["cases"]
    learned(
        library,
        "csv-analysis",
        "Reverse the letters of a word and give the word spelled backward. Use when a task asks "
        "to spell a word backwards.",
        "# Reversing\n1. Read the word.\n2. Give its letters in reverse order.",
        None,
    )
    cases.add("csv-analysis", Case(task="Spell 'stone' backward.", ground_truth="enots"))
    (step,) = plan(world)
    assert step.action == "rename" and step.skill == "csv-analysis"
    assert "reverse" in step.new_name and "csv" not in step.new_name
    result = apply_curation(step, library, world["gate"])
    assert result.applied, result.detail
    assert not library.exists("csv-analysis")
    renamed = library.get(step.new_name)
    assert renamed.description.startswith("Reverse the letters")
    assert [c.ground_truth for c in cases.load(step.new_name)] == ["enots"]
    assert result.undo == [f"memento skills rename {step.new_name} csv-analysis"]
    assert plan(world) == []  # the new name fits


def _duplicates(world: dict[str, Any]) -> tuple[Skill, Skill]:
    library, cases = world["library"], world["cases"]
    keep = learned(
        library,
        "sum-of-digits",
        "Add up the decimal digits of a whole number with Python. Use when a task asks for the "
        "digit sum of a number.",
        DIGITS,
        Lift(2, 2, 0, 2, 1),
    )
    other = learned(
        library,
        "digit-sum",
        "Add up the digits of a whole number by running Python. Use when a task asks for the "
        "sum of the digits of a number.",
        DIGITS + "\n3. Digits only: ignore a sign.",
        Lift(1, 2, 0, 2, 1),
    )
    cases.add("sum-of-digits", case(4821))
    cases.add("digit-sum", case(907))
    return keep, other


def test_a_near_duplicate_pair_is_merged(world: dict[str, Any]) -> None:
    library, cases = world["library"], world["cases"]
    keep, other = _duplicates(world)
    (step,) = plan(world)
    assert (step.action, step.skill, step.into) == ("merge", "digit-sum", "sum-of-digits")
    result = apply_curation(step, library, world["gate"], writer=fold_writer("Check the sum."))
    assert result.applied, result.detail
    kept = library.get("sum-of-digits")
    assert kept.version > keep.version and kept.body.endswith("Check the sum.")
    assert library.get("digit-sum").lifecycle == "deprecated"
    assert {c.task_id for c in cases.load("sum-of-digits")} == {"digits-4821", "digits-907"}
    assert result.undo == [
        f"memento skills rollback sum-of-digits {keep.version}",
        f"memento skills rollback digit-sum {other.version}",
    ]


def test_a_merge_that_breaks_a_regression_case_is_taken_back(world: dict[str, Any]) -> None:
    library, cases = world["library"], world["cases"]
    keep, _ = _duplicates(world)
    (step,) = plan(world)
    result = apply_curation(step, library, world["gate"], writer=fold_writer(ZERO))
    assert not result.applied and "broke" in result.detail
    kept = library.get("sum-of-digits")
    assert kept.body == keep.body and ZERO not in kept.body
    assert all(ZERO not in library.read_version("sum-of-digits", v.version).body
               for v in library.history("sum-of-digits"))  # fmt: skip
    assert library.get("digit-sum").lifecycle == "candidate"
    assert [c.task_id for c in cases.load("sum-of-digits")] == ["digits-4821"]


def test_a_drop_is_gated_and_keeps_the_call(world: dict[str, Any]) -> None:
    library = world["library"]
    library.create(
        Skill(
            name="count-things",
            description="Count the whole numbers in a range that qualify. Use when a task asks "
            "how many numbers in a range qualify.",
            body=CALLING_BODY,
            provenance="learned",
            lifecycle="candidate",
        ),
        files={SCRIPT: b"import sys\nprint(int(sys.argv[2]) - int(sys.argv[1]))\n"},
    )
    steps = [s for s in plan(world) if s.skill == "count-things"]
    assert actions(steps) == [("drop", "count-things")]
    result = apply_curation(steps[0], library, world["gate"])
    assert result.applied, result.detail
    body = library.get("count-things").body
    assert SCRIPT in body and "def count" not in body
    assert library.read_file("count-things", SCRIPT).startswith(b"import sys")


def test_a_step_waits_for_approval_and_a_changed_skill(world: dict[str, Any]) -> None:
    library = world["library"]
    learned(
        library, "count-vowels", "Count the vowels in a word.", "1. Answer 3.", Lift(0, 2, 1, 2, 1)
    )
    (step,) = plan(world)
    asking = CurationGate(world["gate"].replay, world["cases"], Context(approval_required=True))
    assert apply_curation(step, library, asking).detail.startswith("needs approval")
    assert apply_curation(step, library, world["gate"], approve=lambda s: False).detail == (
        "not approved"
    )
    library.update("count-vowels", body="1. Count a, e, i, o and u.")
    later = apply_curation(step, library, world["gate"])
    assert not later.applied and "changed since planned" in later.detail
    assert library.get("count-vowels").lifecycle == "candidate"


def test_a_drop_that_breaks_a_regression_case_is_taken_back(world: dict[str, Any]) -> None:
    library, cases = world["library"], world["cases"]
    body = f"Run {SCRIPT} with run_skill_script and the task's number.\n\n{DIGITS}"
    library.create(
        Skill(
            name="digit-sum",
            description="Add up the digits of a whole number. Use when a task asks for the sum "
            "of the digits of a number.",
            body=body,
            provenance="learned",
            lifecycle="candidate",
        ),
        files={SCRIPT: b"import sys\nprint(sum(int(c) for c in sys.argv[1]))\n"},
    )
    cases.add("digit-sum", case(4821))  # solved by following the steps the drop would remove
    (step,) = plan(world)
    assert step.action == "drop" and "# Digit sums" not in step.body
    result = apply_curation(step, library, world["gate"])
    assert not result.applied and "broke 1 regression case" in result.detail
    assert library.get("digit-sum").body == body  # restored (as a new version)
    bodies = [
        library.read_version("digit-sum", v.version).body for v in library.history("digit-sum")
    ]
    assert step.body not in bodies  # the taken-back drop leaves no version behind


def test_an_imported_skill_is_retired_only_when_approved(world: dict[str, Any]) -> None:
    library = world["library"]
    library.create(
        Skill(
            name="count-vowels",
            description="Count the vowels in a word.",
            body="1. Answer 3.",
            provenance="imported",
            lifecycle="active",
        )
    )
    library.record_lift("count-vowels", Lift(0, 2, 1, 2, 1))
    (step,) = plan(world)
    assert step.action == "retire" and step.needs_approval
    assert apply_curation(step, library, world["gate"]).detail.startswith("needs approval")
    assert library.get("count-vowels").lifecycle == "active"
    done = apply_curation(step, library, world["gate"], approve=lambda s: True)
    assert done.applied and library.get("count-vowels").lifecycle == "deprecated"


def test_a_merge_that_would_carry_a_gold_is_taken_back(world: dict[str, Any]) -> None:
    library = world["library"]
    keep, _ = _duplicates(world)
    (step,) = plan(world)
    gold = str(9 + 0 + 7)  # the gold of a case of the skill merged away
    result = apply_curation(
        step, library, world["gate"], writer=fold_writer(f"Remember: the answer is {gold}.")
    )
    assert not result.applied and "gold answer" in result.detail and gold not in result.detail
    assert library.get("sum-of-digits").body == keep.body
    assert library.get("digit-sum").lifecycle == "candidate"
