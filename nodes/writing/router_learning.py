"""The last steps of the write phase: the attempt's run-log record, and the router learning.

Two steps of their own, after the commit: the run log records every judged attempt; the
router (the injected `LearningRouter`, when the graph's router learns) observes the reward of
the skill it routed to. Both are keyed by the attempt (`effect_key`), so a step replayed after
a crash appends or learns once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.state import LibraryWrite, SearchReport, State, task_text
from memento_skills.nodes.routing.seams import LearningRouter
from memento_skills.nodes.writing.proposals import effect_key


def reward(state: Mapping[str, Any]) -> float:
    """The attempt's reward: 1 if the judge passed it, else 0."""
    verdict: Mapping[str, Any] = state.get("verdict") or {}
    return 1.0 if verdict.get("passed") else 0.0


def run_record(
    state: State,
    ctx: Context,
    writes: Sequence[LibraryWrite],
    search: SearchReport | None = None,
) -> dict[str, Any]:
    """The run-log line of one judged attempt: what ran, how it was judged, what changed, and
    the learning-time search when it ran on this attempt (`search`)."""
    verdict: Mapping[str, Any] = state.get("verdict") or {}
    steps = state.get("trajectory") or []
    return {
        "time": time.time(),
        "task_id": state.get("task_id"),
        "task": task_text(state),
        "attempt": state.get("attempt"),
        "candidates": state.get("candidates") or [],
        "skill": state.get("selected_skill"),
        "skill_version": state.get("selected_version"),
        "route_reason": state.get("route_reason"),
        "trajectory": {
            "steps": len(steps),
            "tools": [s["tool"] for s in steps],
            "errors": sum(1 for s in steps if s["error"]),
        },
        "answer": state.get("answer"),
        "execute_error": state.get("execute_error"),
        "execute_error_kind": state.get("execute_error_kind"),
        "verdict": {k: verdict.get(k) for k in ("passed", "score", "method")},
        "reward": reward(state),
        "writes": list(writes),
        "search": search,
        "usage": state.get("usage") or {},
        "write_policy": ctx.write_policy,
    }


def append_run_log(
    run_log: Any, state: State, ctx: Context, search: SearchReport | None = None
) -> None:
    """Append the attempt's record (a failed append is reported, never fails the task)."""
    record = run_record(state, ctx, state.get("writes") or [], search)
    try:
        run_log.append(record, key=effect_key(state, "log"))
    except OSError as e:
        emit("reflect_write", {"event": "run_log_error", "error": str(e)})


def observe_route(
    router: LearningRouter | None,
    state: State,
    ctx: Context,
    library_root: Callable[[], Path],
    index: Callable[[], Any],
) -> None:
    """The router learns from the judged attempt: the task, the skill it ran, the reward.

    Only a learning router with a skill to credit, and never under the read-only ablation
    (write policy "off" learns nothing, router included). `library_root` and `index` are asked
    for only then. Learning must never fail the task: a failure is reported as a
    `router_error` event.
    """
    skill = state.get("selected_skill")
    if router is None or not skill or ctx.write_policy == "off":
        return
    try:
        router.bind(library_root())  # a resumed task may reach here before route_skill bound it
        router.observe(
            task_text(state),
            None,
            skill,
            reward(state),
            version=state.get("selected_version"),
            key=effect_key(state, "router"),
            index=index(),
        )
    except Exception as e:
        emit("reflect_write", {"event": "router_error", "error": f"{type(e).__name__}: {e}"})
