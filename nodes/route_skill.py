"""route_skill: the read phase — choose a skill for the current stateful prompt.

The node ranks the library through the injected `Router` (routing/seams.py), draws among the
candidates over the threshold (routing/hybrid.py `select`) and, when a router model is set, lets
it pick among them. "No skill fits" (best score under the threshold) is a valid outcome.

Lifecycle and lift (docs/decisions.md#lifecycle-and-lift): a deprecated skill is never ranked,
and a skill measured to do worse than no skill (lift < 0) is never the greedy pick — at
temperature 0 the next candidate is taken (none when no other fits); exploration may still
draw it, so a skill that changed can show its worth again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.models import structured
from memento_skills.graph.state import Candidate, State, task_text
from memento_skills.nodes.routing.hybrid import harmful, routable, select
from memento_skills.nodes.routing.seams import LearningRouter, RetrieverSource, Router
from memento_skills.stores.skill import Skill

ROUTER_PICK_PROMPT = """Pick the skill that best fits the task, or "none" if no skill fits.

Task:
{task}

Candidate skills:
{candidates}

Answer with the skill name exactly as listed, or none."""


class RouterPick(BaseModel):
    skill: str = Field(description="The chosen skill's name, or none")
    reason: str = Field(default="", description="One sentence: why")


def route_skill(
    state: State,
    runtime: Runtime[Context],
    *,
    router: Router,
    retriever: RetrieverSource,
    model: Callable[[Context], BaseChatModel],
) -> dict[str, Any]:
    """`router` ranks, `retriever` gives the run's library and its synced index, `model` the
    router-role chat model for the optional LLM pick: all injected by the graph's builder."""
    ctx = runtime.context or Context()
    task = task_text(state)
    attempt = int(state.get("attempt") or 0) + 1
    index, offered = retriever.synced_index(ctx)
    skills = routable(offered)  # already filtered when the source is Resources
    if isinstance(router, LearningRouter):  # it keeps its weights next to the run's library
        router.bind(retriever.library(ctx).root)
        router.refresh()  # what other workers sharing the library taught it since
    candidates = router.rank(task, skills, index, ctx.top_k, ctx.router_mode)

    chosen: Candidate | None = None
    reason: str
    if not candidates or candidates[0]["score"] < ctx.min_route_score:
        best = f"{candidates[0]['name']} at {candidates[0]['score']:.2f}" if candidates else "none"
        reason = f"no skill fits: best was {best}, under the threshold {ctx.min_route_score}"
    else:
        eligible = [c for c in candidates if c["score"] >= ctx.min_route_score]
        passed_over = []
        if ctx.router_temperature <= 0:  # greedy: never a skill that does worse than none
            passed_over = [
                c["name"] for c in eligible if c["name"] in skills and harmful(skills[c["name"]])
            ]
            eligible = [c for c in eligible if c["name"] not in passed_over]
        skipped = f" (passed over {', '.join(passed_over)}: negative lift)" if passed_over else ""
        if not eligible:
            reason = f"no skill fits: every candidate over the threshold has negative lift{skipped}"
        else:
            seed = f"{state.get('task_id') or task}|{attempt}"
            chosen = select(eligible, ctx.router_temperature, seed)
            reason = (
                f"highest score {chosen['score']:.2f}{skipped}"
                if chosen is eligible[0]
                else f"sampled at temperature {ctx.router_temperature} (score {chosen['score']:.2f})"
            )
            if ctx.router_model and len(eligible) > 1:
                chosen, reason = _llm_pick(model, ctx, task, eligible, skills, chosen, reason)

    selected = chosen["name"] if chosen else None
    version = skills[selected].version if selected else None
    emit(
        "route_skill",
        {
            "event": "route",
            "skill": selected,
            "version": version,
            "reason": reason,
            "candidates": [(c["name"], c["score"]) for c in candidates],
        },
    )
    return {
        "task": task,
        "candidates": candidates,
        "selected_skill": selected,
        "selected_version": version,
        "route_reason": reason,
        "attempt": attempt,
    }


def _llm_pick(
    model: Callable[[Context], BaseChatModel],
    ctx: Context,
    task: str,
    eligible: list[Candidate],
    skills: Mapping[str, Skill],
    fallback: Candidate,
    fallback_reason: str,
) -> tuple[Candidate | None, str]:
    listing = "\n".join(f"- {c['name']}: {skills[c['name']].description}" for c in eligible)
    try:
        pick = structured(
            model(ctx),
            RouterPick,
            ROUTER_PICK_PROMPT.format(task=task, candidates=listing),
        )
    except Exception as e:  # a weak or unreachable router model falls back to the scores
        return fallback, f"{fallback_reason} (LLM pick failed: {type(e).__name__})"
    name = pick.skill.strip().lower()
    if name in ("none", ""):
        return None, f"the router model judged that no skill fits: {pick.reason}"
    for c in eligible:
        if c["name"] == name:
            return c, f"picked by the router model: {pick.reason}"
    return fallback, f"{fallback_reason} (the router model named an unknown skill {name!r})"
