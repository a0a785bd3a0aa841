"""The write phase's decision, one row per rule: verdict × attribution × trajectory × skill ×
write policy in, what the library should do out (nodes/writing/decision.py)."""

from __future__ import annotations

from typing import Any

import pytest

from memento_skills.nodes.writing.decision import (
    Decision,
    decide,
    fallback_attribution,
    needs_attribution,
    records_outcome,
)
from memento_skills.nodes.writing.heuristics import EXAMPLE_HEADING, NUMBER_PATTERN
from memento_skills.nodes.writing.prompts import Attribution
from memento_skills.stores.skill import Skill

LEARNED = Skill(name="lcm", description="Find an LCM.", body="Use python.", provenance="learned")
SEED = Skill(name="python", description="Run python.", body="Run code.", provenance="seed")
SHOWN = LEARNED.with_changes(body=f"Use python.\n\n{EXAMPLE_HEADING}\n\nStep 1")
FORCED = LEARNED.with_changes(first_tools=("python",), answer_pattern=r"\d+")

PASS: Any = {"passed": True, "score": 1.0, "critique": "", "method": "exact"}
FAIL: Any = {"passed": False, "score": 0.0, "critique": "wrong", "method": "exact"}
FAIL_NUMBER: Any = {**FAIL, "format": "number"}  # the right kind of value, buried in words

HEAD: Any = []  # answered from its head
COMPUTED: Any = [{"tool": "python", "args": {"code": "print(6)"}, "output": "6", "error": False}]
LOOKED: Any = [{"tool": "list_dir", "args": {"path": "."}, "output": "", "error": False}]
EXAMPLE = f"{EXAMPLE_HEADING}\n\nStep 1, python: print(N1)"
PYTHON_FIRST = {"first_tools": ("python",)}


def why(cause: str, action: str) -> Attribution:
    return Attribution.model_validate({"cause": cause, "action": action})


ROWS: list[tuple[str, dict[str, Any], Decision]] = [
    # a pass: a learned skill keeps what worked, once; nothing else changes
    ("pass-learned-full", dict(verdict=PASS, skill=LEARNED, example=EXAMPLE), Decision("example")),
    (
        "pass-learned-refine",
        dict(verdict=PASS, skill=LEARNED, example=EXAMPLE, write_policy="refine"),
        Decision("example"),
    ),
    ("pass-seed", dict(verdict=PASS, skill=SEED, example=EXAMPLE), Decision("nothing")),
    ("pass-already-shown", dict(verdict=PASS, skill=SHOWN, example=EXAMPLE), Decision("nothing")),
    ("pass-no-clean-call", dict(verdict=PASS, skill=LEARNED, example=None), Decision("nothing")),
    ("pass-no-skill", dict(verdict=PASS, skill=None, example=EXAMPLE), Decision("nothing")),
    (
        "pass-policy-create",
        dict(verdict=PASS, skill=LEARNED, example=EXAMPLE, write_policy="create"),
        Decision("nothing"),
    ),
    (
        "pass-policy-off",
        dict(verdict=PASS, skill=LEARNED, example=EXAMPLE, write_policy="off"),
        Decision("nothing"),
    ),
    # a failure with no write allowed and no attempt left: no writer call, a reason
    (
        "fail-off-last",
        dict(verdict=FAIL, skill=LEARNED, write_policy="off", last_attempt=True, attribution=None),
        Decision("nothing", "no change: write policy 'off' and no attempt left"),
    ),
    (
        "fail-off-attempt-left",
        dict(verdict=FAIL, skill=LEARNED, write_policy="off", attribution=why("skill", "refine")),
        Decision("nothing", "no change: attribution says 'refine', write policy 'off'"),
    ),
    # the skill used failed: the writer's action, unless the trajectory overrides it
    ("fail-refine", dict(attribution=why("skill", "refine")), Decision("refine")),
    (
        "fail-none-computed",
        dict(attribution=why("execution", "none")),
        Decision("nothing", "no change: attribution says 'none', write policy 'full'"),
    ),
    (
        "fail-none-no-tool",
        dict(attribution=why("execution", "none"), trajectory=HEAD),
        Decision("refine", policy=PYTHON_FIRST, behaviour=True),
    ),
    (
        "fail-refine-wrong-tool",
        dict(attribution=why("skill", "refine"), trajectory=LOOKED),
        Decision("refine", policy=PYTHON_FIRST, behaviour=True),
    ),
    (
        "fail-none-number-format",
        dict(verdict=FAIL_NUMBER, attribution=why("execution", "none")),
        Decision("refine", policy={"answer_pattern": NUMBER_PATTERN}, behaviour=True),
    ),
    (
        "fail-none-skill-has-policy",
        dict(
            verdict=FAIL_NUMBER, skill=FORCED, attribution=why("execution", "none"), trajectory=HEAD
        ),
        Decision("nothing", "no change: attribution says 'none', write policy 'full'"),
    ),
    (
        "fail-create-over-used-skill",
        dict(attribution=why("no-skill", "create")),
        Decision("create", may_merge=True),
    ),
    (
        "fail-behaviour-refine-not-allowed",
        dict(attribution=why("execution", "none"), trajectory=HEAD, write_policy="create"),
        Decision(
            "nothing",
            "no change: attribution says 'none', write policy 'create'",
            policy=PYTHON_FIRST,
            behaviour=True,
        ),
    ),
    (
        "fail-refine-not-allowed",
        dict(attribution=why("skill", "refine"), write_policy="create"),
        Decision("nothing", "no change: attribution says 'refine', write policy 'create'"),
    ),
    # no skill fitted: a new skill fills the gap whatever the writer says, unless unanswerable
    (
        "fail-no-skill-none",
        dict(skill=None, attribution=why("no-skill", "none"), trajectory=HEAD),
        Decision("create", policy=PYTHON_FIRST, may_merge=True),
    ),
    (
        "fail-no-skill-refine",
        dict(skill=None, attribution=why("skill", "refine")),
        Decision("create", may_merge=True),
    ),
    (
        "fail-no-skill-task",
        dict(skill=None, attribution=why("task", "none")),
        Decision("nothing", "no change: attribution says 'none', write policy 'full'"),
    ),
    (
        "fail-no-skill-task-create",
        dict(skill=None, attribution=why("task", "create")),
        Decision("create", may_merge=True),
    ),
    (
        "fail-no-skill-policy-create",
        dict(skill=None, attribution=why("no-skill", "create"), write_policy="create"),
        Decision("create", may_merge=False),
    ),
    (
        "fail-no-skill-policy-refine",
        dict(skill=None, attribution=why("no-skill", "create"), write_policy="refine"),
        Decision("nothing", "no change: attribution says 'create', write policy 'refine'"),
    ),
]


@pytest.mark.parametrize(("given", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_the_decision_table(given: dict[str, Any], expected: Decision) -> None:
    inputs: dict[str, Any] = {
        "verdict": FAIL,
        "attribution": None,
        "trajectory": COMPUTED,
        "skill": LEARNED,
        "write_policy": "full",
        "last_attempt": False,
        "example": None,
        **given,
    }
    assert decide(**inputs) == expected


def test_a_failure_to_decide_needs_the_writers_attribution() -> None:
    with pytest.raises(ValueError, match="attribution"):
        decide(FAIL, None, COMPUTED, LEARNED, "full", last_attempt=False)


@pytest.mark.parametrize(
    ("passed", "write_policy", "last_attempt", "asked"),
    [
        (True, "full", False, False),  # nothing to learn from a pass
        (False, "full", True, True),
        (False, "off", False, True),  # the next attempt takes the tip
        (False, "off", True, False),  # no write, no attempt left: no writer call
    ],
)
def test_the_writer_is_asked_only_when_its_answer_can_be_used(
    passed: bool, write_policy: Any, last_attempt: bool, asked: bool
) -> None:
    assert needs_attribution(passed, write_policy, last_attempt) is asked


def test_an_outcome_counts_for_the_skill_used_unless_writes_are_off() -> None:
    assert records_outcome("full", "lcm") and records_outcome("create", "lcm")
    assert not records_outcome("off", "lcm") and not records_outcome("full", None)


def test_an_unusable_attribution_falls_back_on_what_is_known() -> None:
    assert fallback_attribution(True, "wrong") == Attribution(
        cause="skill", action="refine", tip="The previous attempt failed: wrong"
    )
    assert fallback_attribution(False, "") == Attribution(cause="no-skill", action="create", tip="")
    assert len(fallback_attribution(True, "x" * 400).tip) == 300
