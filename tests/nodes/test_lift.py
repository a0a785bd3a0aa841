"""measure_lift end to end: the real replay graph (execute in the sandbox → judge), a scripted
executor, real skill and case files; the lift cache on disk; the lifecycle rule as a table."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from memento_skills.graph.builder import build_gate_replay
from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.nodes.gate import run_gate
from memento_skills.nodes.writing.lifecycle import next_state
from memento_skills.nodes.writing.lift import LiftNotMeasured, measure_lift, update_lift
from memento_skills.stores.cases import Case, CaseStore
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.lift_cache import LiftCache
from memento_skills.stores.skill import Lift, Skill, Utility
from memento_skills.testing import ScriptedChatModel

SKILL = "sum-digits"
CALLS = 10_000


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


class APIConnectionError(Exception):
    """Named as the openai client's: what the execute node reads as an endpoint failure."""


class Executor:
    """Computes the digit sum with the real python tool only when the skill is in its prompt;
    without it, it guesses 0 (or, during an `outage`, the endpoint fails). Counts the attempts
    it saw without a skill."""

    def __init__(self, helps: bool = True) -> None:
        self.helps = helps
        self.without = 0
        self.outage = False
        self.down = False  # every call fails, with the skill or without

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        if self.down:
            raise APIConnectionError("Connection error.")
        last = messages[-1]
        if isinstance(last, ToolMessage) and last.name == "python":
            value = re.findall(r"-?\d+", str(last.content).split("stdout:")[-1])[0]
            return _call("submit_answer", {"answer": value})
        system = next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")
        task = next((str(m.content) for m in messages if isinstance(m, HumanMessage)), "")
        if SKILL not in system:
            if self.outage:
                raise APIConnectionError("Connection error.")
            self.without += 1
            return AIMessage(content="0")
        number = re.findall(r"\d+", task)[-1]
        code = f"print(sum(int(d) for d in '{number}'))" if self.helps else "print(-1)"
        return _call("python", {"code": code})


def world(tmp_path: Path, *, helps: bool = True) -> tuple[Any, ...]:
    library = SkillLibrary(tmp_path / "skills")
    library.create(
        Skill(
            name=SKILL,
            description="Add up the decimal digits of a whole number. Use for digit sums.",
            body="Call python to sum the digits, then submit the printed number.",
            allowed_tools=("python",),
            provenance="learned",
            lifecycle="candidate",
        )
    )
    cases = CaseStore(library.root)
    for n in ("4821", "9007"):
        cases.add(SKILL, Case(f"What is the sum of the digits of {n}?", str(sum(map(int, n)))))
    executor = Executor(helps)
    judge = ScriptedChatModel(script=[lambda m: "no"] * CALLS)  # never asked: golds are numbers
    resources = Resources(
        chat_models={
            "executor": ScriptedChatModel(script=[executor] * CALLS),
            "judge": judge,
            "writer": judge,
            "router": judge,
        },
        library=library,
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"),
        skills_dir=str(library.root),
        web_search=False,
        max_steps=4,
    )
    return library, cases, build_gate_replay(resources), ctx, executor


def test_a_skill_that_makes_its_cases_pass_has_positive_lift_and_the_cache_spares_replays(
    tmp_path: Path,
) -> None:
    library, cases, replay, ctx, executor = world(tmp_path)
    extra = [Case("What is the sum of the digits of 555?", "15", task_id="train-3")]
    cache = LiftCache.of_library(library.root)
    lift = measure_lift(replay, cases, ctx, SKILL, extra, cache)
    assert lift == Lift(3, 3, 0, 3, 1)
    assert lift.value == pytest.approx(1.0)
    assert executor.without == 3 and (cache.hits, cache.misses) == (0, 3)
    stored = json.loads((library.root / ".memento" / "lift-cache.json").read_text())
    assert len(stored["outcomes"]) == 3
    assert "4821" not in json.dumps(stored)  # keys are hashes: no task, no gold

    again = LiftCache.of_library(library.root)  # a new process reads the file
    assert measure_lift(replay, cases, ctx, SKILL, extra, again) == lift
    assert executor.without == 3  # no replay without the skill the second time
    assert (again.hits, again.misses) == (3, 0)

    other = LiftCache.of_library(library.root)  # another run configuration is another key
    measure_lift(replay, cases, replace(ctx, max_steps=5), SKILL, (), other)
    assert executor.without == 5 and other.misses == 2


def test_update_lift_records_it_and_promotes_or_retires_on_it(tmp_path: Path) -> None:
    library, cases, replay, ctx, _ = world(tmp_path)
    skill = update_lift(library, replay, cases, ctx, SKILL)
    assert (skill.lifecycle, skill.lift) == ("active", Lift(2, 2, 0, 2, 1))
    assert skill.version == 3  # the lift, then the promotion: two versions, history kept
    assert "lift +1.00" in skill.lifecycle_reason
    assert library.rollback(SKILL, 1).lifecycle == "candidate"


def test_a_measurement_without_cases_replaces_no_evidence(tmp_path: Path) -> None:
    library, cases, replay, ctx, _ = world(tmp_path)
    kept = update_lift(library, replay, cases, ctx, SKILL)
    none = update_lift(library, replay, cases, replace(ctx, gate_cases=0), SKILL)
    assert measure_lift(replay, cases, replace(ctx, gate_cases=0), SKILL) == Lift(0, 0, 0, 0, 3)
    assert (none.version, none.lift) == (kept.version, kept.lift)


def test_an_endpoint_outage_measures_nothing_caches_nothing_and_retires_nothing(
    tmp_path: Path,
) -> None:
    library, cases, replay, ctx, executor = world(tmp_path)
    executor.outage = True  # the replays without the skill meet a connection error
    cache = LiftCache.of_library(library.root)
    with pytest.raises(LiftNotMeasured, match="endpoint failed"):
        update_lift(library, replay, cases, ctx, SKILL, cache=cache)
    assert not cache.path.exists()  # no outcome of the outage is kept
    skill = library.get(SKILL)
    assert (skill.version, skill.lifecycle, skill.lift) == (1, "candidate", None)


def test_the_gate_during_an_outage_judges_nothing_and_blames_no_case(tmp_path: Path) -> None:
    library, cases, replay, ctx, executor = world(tmp_path)
    skill = library.get(SKILL)
    assert run_gate(replay, cases, ctx, SKILL, skill.authored_text(), None).passed
    executor.down = True
    result = run_gate(replay, cases, ctx, SKILL, skill.authored_text(), None)
    assert not result.passed and result.unjudged and result.broken == []
    assert result.reason.startswith("not gated: the model endpoint failed during a replay")
    assert "Connection error." in result.reason


def test_a_skill_that_breaks_its_cases_is_retired_on_its_lift(tmp_path: Path) -> None:
    library, cases, replay, ctx, _ = world(tmp_path, helps=False)
    skill = update_lift(library, replay, cases, ctx, SKILL)
    assert skill.lift == Lift(0, 2, 0, 2, 1)  # no better than no skill
    assert skill.lifecycle == "deprecated"


def learned(lifecycle: str, lift: Lift | None = None, runs: tuple[int, int] = (0, 0)) -> Skill:
    return Skill(
        name="x",
        description="d",
        body="b",
        provenance="learned",
        lifecycle=lifecycle,  # type: ignore[arg-type]
        lift=lift,
        utility=Utility(*runs),
    )


@pytest.mark.parametrize(
    ("skill", "state"),
    [
        (learned("candidate", Lift(2, 2, 0, 2, 1)), "active"),
        (learned("draft", Lift(2, 2, 1, 2, 1)), "active"),
        (learned("candidate", Lift(1, 1, 0, 1, 1)), "candidate"),  # one case: too thin
        (learned("candidate", Lift(1, 2, 1, 2, 1)), "deprecated"),  # lift 0 on 2 cases
        (learned("active", Lift(0, 3, 2, 3, 1)), "deprecated"),
        (learned("active", Lift(0, 0, 0, 0, 1)), "active"),  # nothing measured
        (learned("candidate"), "candidate"),
        (learned("draft", runs=(0, 3)), "deprecated"),  # failing past its uses
        (learned("draft", runs=(0, 2)), "draft"),
        (learned("draft", runs=(1, 5)), "draft"),  # passed once: not "stays failing"
        (learned("candidate", runs=(0, 9)), "candidate"),  # only a draft retires on failures
        (learned("deprecated", Lift(2, 2, 0, 2, 1)), "deprecated"),  # brought back by rollback
        (
            Skill(name="x", description="d", body="b", provenance="seed", lift=Lift(0, 2, 2, 2, 1)),
            "active",
        ),  # a person's skill: evidence ranks it, the curator retires it
    ],
)
def test_next_state_table(skill: Skill, state: str) -> None:
    assert next_state(skill) == state
