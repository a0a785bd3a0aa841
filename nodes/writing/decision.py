"""What the write phase does with an attempt, decided from data alone (no I/O, no model call).

The node gathers the inputs (the verdict, the writer's attribution, the trajectory, the skill
used with its policy, the write policy), calls `decide`, then acts on the `Decision`: every
rule that overrides the writer's own answer lives here, where a table test can reach it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from memento_skills.graph.context import WritePolicy
from memento_skills.graph.state import ToolStep, Verdict
from memento_skills.nodes.writing.heuristics import EXAMPLE_HEADING, behaviour_policy
from memento_skills.nodes.writing.prompts import Attribution
from memento_skills.stores.skill import Skill

ALLOWED: Mapping[WritePolicy, frozenset[str]] = {
    "off": frozenset(),
    "create": frozenset({"create"}),
    "refine": frozenset({"refine"}),
    "full": frozenset({"refine", "create"}),
}
"""The library changes each write policy lets the writer make."""


@dataclass(frozen=True)
class Decision:
    """What to do with one judged attempt."""

    action: Literal["nothing", "example", "refine", "create"]
    """nothing: leave the library as it is; example: add the worked example to the skill used;
    refine: patch the skill used; create: write a new skill (or merge into a near-duplicate)."""
    reason: str = ""
    """Why nothing changes, recorded as a write; empty when there is nothing to say (a pass)."""
    policy: Mapping[str, Any] = field(default_factory=dict)
    """Policy (first_tools, answer_pattern) the trajectory argues for, for the change to carry."""
    behaviour: bool = False
    """The trajectory shows a behaviour failure, and that made the action a refine."""
    may_merge: bool = False
    """create: a near-duplicate of an existing skill may be refined instead."""


def records_outcome(write_policy: WritePolicy, selected: str | None) -> bool:
    """Whether the attempt's pass or failure counts in the utility of the skill it used."""
    return write_policy != "off" and bool(selected)


def needs_attribution(passed: bool, write_policy: WritePolicy, last_attempt: bool) -> bool:
    """Whether the writer is asked why the attempt failed.

    Nothing could use an attribution after a pass, or when no write is allowed and no attempt
    follows to take a tip (an eval's failures would otherwise each cost a writer call).
    """
    return not (passed or (write_policy == "off" and last_attempt))


def fallback_attribution(has_skill: bool, critique: str) -> Attribution:
    """The attribution used when the writer's own is unusable: the skill failed, or none fitted."""
    return Attribution(
        cause="skill" if has_skill else "no-skill",
        action="refine" if has_skill else "create",
        tip=f"The previous attempt failed: {critique}"[:300] if critique else "",
    )


def decide(
    verdict: Verdict | None,
    attribution: Attribution | None,
    trajectory: Sequence[ToolStep],
    skill: Skill | None,
    write_policy: WritePolicy,
    *,
    last_attempt: bool,
    example: str | None = None,
) -> Decision:
    """The write phase's decision for one attempt.

    `skill` is the skill the attempt used, carrying its policy (None: none fitted, or it is
    gone); `attribution` is the writer's account of a failure (None when `needs_attribution`
    says none is asked for); `example` is the worked example the trajectory gives, if any.
    """
    passed = bool(verdict and verdict.get("passed"))
    if not needs_attribution(passed, write_policy, last_attempt):
        if not passed:
            return Decision("nothing", "no change: write policy 'off' and no attempt left")
        return _after_a_pass(skill, write_policy, example)
    if attribution is None:
        raise ValueError("a failed attempt with a write to decide needs the writer's attribution")
    action: str = attribution.action
    policy = behaviour_policy(trajectory, verdict, skill)
    behaviour = bool(policy) and skill is not None and action in ("none", "refine")
    if behaviour:
        action = "refine"  # the trajectory shows a behaviour failure: policy fixes it
    if skill is None and (action != "none" or attribution.cause != "task"):
        # Nothing in the library fitted a task that failed: that is the gap a new skill
        # fills, whatever the writer's action says (docs/decisions.md#create-when-nothing-fits).
        # Only a task judged unanswerable ("task") is left without a skill.
        action = "create"
    allowed = ALLOWED[write_policy]
    if action == "none" or action not in allowed:
        return Decision(
            "nothing",
            f"no change: attribution says {attribution.action!r}, write policy {write_policy!r}",
            policy=policy,
            behaviour=behaviour,
        )
    if action == "refine" and skill is not None:
        return Decision("refine", policy=policy, behaviour=behaviour)
    return Decision(
        "create",
        policy=behaviour_policy(trajectory, verdict, None),
        may_merge="refine" in allowed,
    )


def _after_a_pass(skill: Skill | None, write_policy: WritePolicy, example: str | None) -> Decision:
    """Keep what worked: a learned skill that just solved a task gains that task's tool calls
    as a worked example, once.

    A small executor copies a call far better than it follows prose
    (docs/decisions.md#worked-example). Seed skills are left alone: they serve every kind of
    task, and one task's example would pull the others towards it. The gate replays the
    skill's cases with the example.
    """
    if write_policy not in ("refine", "full") or skill is None or example is None:
        return Decision("nothing")
    if skill.provenance == "seed" or EXAMPLE_HEADING in skill.body:
        return Decision("nothing")
    return Decision("example")
