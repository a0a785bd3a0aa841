"""Lift: how much a skill helps — success with it against success without it on its own cases.

The with/without comparison SkillsBench uses (arXiv 2602.12670): each of the skill's regression
cases (the most recent ctx.gate_cases, as the gate replays) and any `extra` cases of its kind
(training tasks routed to it) is replayed through the real execute → judge graph twice, once
with the skill forced and once with no skill. The "without" outcome does not depend on the
skill, so a LiftCache keeps it per case and run configuration and the next measurement of any
skill on that case spares the replay (docs/decisions.md#lifecycle-and-lift).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.nodes.gate import ReplayGraph, ReplayUnjudged
from memento_skills.nodes.gate import replay as gate_replay
from memento_skills.nodes.writing.lifecycle import settle
from memento_skills.stores.cases import Case, Cases, MissingCaseFiles
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.lift_cache import LiftCache, outcome_key
from memento_skills.stores.skill import Lift, Skill, SkillError


class LiftNotMeasured(SkillError):
    """A replay failed for a reason that says nothing about the skill (the model endpoint):
    counted, it would read as the skill failing, and retire good skills during an outage."""


def _passed(replay: ReplayGraph, ctx: Context, skill: str | None, case: Case, files: Any) -> bool:
    """One replay's verdict; LiftNotMeasured when the endpoint failed under it."""
    try:
        return gate_replay(replay, ctx, skill, case, files)
    except ReplayUnjudged as e:
        raise LiftNotMeasured(
            f"lift not measured: {e}; check the endpoint and measure again"
        ) from None


def run_config(ctx: Context) -> tuple[str | int, ...]:
    """What a case's outcome without a skill depends on besides the case itself."""
    return (
        ctx.executor_model,
        ctx.judge_model,
        ctx.base_url,
        ctx.max_steps,
        ctx.max_tokens,
        ctx.sandbox_level,
    )


def case_key(case: Case, ctx: Context) -> str:
    """The cache key of `case`'s outcome without a skill under `ctx`."""
    files = sorted(f"{a.name}:{a.sha256}" for a in case.attachments)
    return outcome_key((case.task, case.ground_truth, case.rubric, *files), run_config(ctx))


def measure_lift(
    replay: ReplayGraph,
    cases: Cases,
    ctx: Context,
    skill: str,
    extra: Sequence[Case] = (),
    cache: LiftCache | None = None,
) -> Lift:
    """Replay `skill`'s cases (and `extra`) with it forced and with no skill; the Lift of the
    version live when the measurement started. A case whose stored files are gone is left out
    of both sides; a case listed twice (stored and extra) counts once. Raises LiftNotMeasured
    when the model endpoint fails under a replay (nothing is cached from it)."""
    version = SkillLibrary(cases.library_root).get(skill).version
    own = cases.load(skill)[-ctx.gate_cases :] if ctx.gate_cases > 0 else []
    picked: dict[str, Case] = {}
    for case in [*own, *extra]:
        picked.setdefault(case_key(case, ctx), case)
    with_passed = without_passed = total = 0
    for key, case in picked.items():
        try:
            files = cases.files_of(case)
        except MissingCaseFiles as e:
            emit("lift", {"event": "case_skipped", "skill": skill, "reason": str(e)})
            continue
        total += 1
        with_passed += _passed(replay, ctx, skill, case, files)
        without = cache.get(key) if cache is not None else None
        if without is None:
            without = _passed(replay, ctx, None, case, files)
            if cache is not None:
                cache.put(key, without)
        without_passed += without
    lift = Lift(with_passed, total, without_passed, total, version)
    emit("lift", {"event": "measured", "skill": skill, "lift": lift.to_text()})
    return lift


def update_lift(
    library: Any,
    replay: ReplayGraph,
    cases: Cases,
    ctx: Context,
    skill: str,
    extra: Sequence[Case] = (),
    cache: LiftCache | None = None,
) -> Skill:
    """Measure `skill`'s lift, keep it with the skill, and move the skill to the state that lift
    puts it in (lifecycle.next_state): each a versioned write, none when nothing changed. A
    measurement that replayed no case is not kept: it would replace evidence with none."""
    if cache is None:
        cache = LiftCache.of_library(cases.library_root)
    lift = measure_lift(replay, cases, ctx, skill, extra, cache)
    if lift.with_total > 0:
        library.record_lift(skill, lift)
    return cast(Skill, settle(library, skill))
