"""Where a learned skill stands on evidence: the one rule that moves it between lifecycle states.

draft → candidate is the gate's (reflect_write `_vet`); candidate or draft → active, and any
learned state → deprecated, are this module's, on measured lift or on a draft's failures
(docs/decisions.md#lifecycle-and-lift). A skill a person made (seed, import, API) keeps the
state it has: evidence still ranks it (the router's prior, no greedy pick with negative lift)
but retiring it is the curator's call, shown in its plan.
"""

from __future__ import annotations

from typing import Any, cast

from memento_skills.stores.skill import Lifecycle, Skill

MIN_LIFT_CASES = 2
"""Cases on each side (with and without) before a lift moves a skill: one case is an anecdote."""
DRAFT_USES = 3
"""Uses after which a draft that never passed is retired."""


def next_state(skill: Skill, *, draft_uses: int = DRAFT_USES) -> Lifecycle:
    """The state the evidence puts `skill` in (its current one when the evidence is too thin).

    - deprecated stays deprecated (rollback or the curator's undo bring a skill back);
    - a lift on >= MIN_LIFT_CASES cases each way: active when > 0, deprecated when <= 0;
    - a draft used `draft_uses` times or more without one success: deprecated.
    """
    state = skill.lifecycle
    if state == "deprecated" or skill.provenance != "learned":
        return state
    lift = skill.lift
    value = lift.value if lift is not None else None
    if lift is not None and value is not None and lift.cases >= MIN_LIFT_CASES:
        return "active" if value > 0 else "deprecated"
    u = skill.utility
    if state == "draft" and u.runs >= draft_uses and u.successes == 0:
        return "deprecated"
    return state


def why(skill: Skill, state: Lifecycle) -> str:
    """One line saying what evidence put `skill` in `state` (kept as the lifecycle reason)."""
    lift = skill.lift
    if lift is not None and lift.value is not None and lift.cases >= MIN_LIFT_CASES:
        return f"lift {lift.value:+.2f} ({lift.to_text()})"
    u = skill.utility
    return f"draft used {u.runs} times, never passed"


def settle(library: Any, name: str, *, draft_uses: int = DRAFT_USES) -> Skill:
    """Move `name` to the state its evidence says (a versioned write, none when it stays)."""
    skill = cast(Skill, library.get(name))
    state = next_state(skill, draft_uses=draft_uses)
    if state == skill.lifecycle:
        return skill
    return cast(Skill, library.set_lifecycle(name, state, reason=why(skill, state)))
