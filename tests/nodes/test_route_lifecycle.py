"""Routing on lifecycle and lift through the compiled graph: the real embedder, index and BM25,
the default learned router, a scripted executor; candidates read back from the run log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.nodes.routing.hybrid import PRIOR_WEIGHT, HybridRouter, utility_prior
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.run_log import RunLog
from memento_skills.stores.skill import Lift, Skill, Utility
from memento_skills.testing import ScriptedChatModel

TASK = "Convert the temperature 451 degrees Fahrenheit to degrees Celsius."
BEST = "fahrenheit-to-celsius"  # the closest match to TASK
NEXT = "temperature-units"


def skill(name: str, description: str) -> Skill:
    return Skill(
        name=name,
        description=description,
        body="Use python to compute the conversion, then submit the number.",
        provenance="learned",
        lifecycle="candidate",
        utility=Utility(3, 1),
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    library = SkillLibrary(tmp_path / "skills")
    library.create(skill(BEST, "Convert a temperature from degrees Fahrenheit to degrees Celsius."))
    library.create(
        skill(NEXT, "Convert temperatures between units such as Celsius, Fahrenheit and Kelvin.")
    )
    library.create(skill("bake-bread", "Plan a bread recipe: flour, water, yeast and proofing."))
    index = SkillIndex(tmp_path / "index")
    answer = ScriptedChatModel(script=[lambda m: AIMessage(content="232.8")] * 1000)
    graph = build_graph(
        chat_models={"executor": answer, "judge": answer, "writer": answer, "router": answer},
        library=library,
        index=index,
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"),
        run_log=str(tmp_path / "runs.jsonl"),
        write_policy="off",
        web_search=False,
        max_attempts=1,
    )
    try:
        yield {"library": library, "graph": graph, "ctx": ctx, "index": index}
    finally:
        index.close()


def route(world: dict[str, Any], task_id: str, **ctx: Any) -> tuple[str | None, list[str], str]:
    """Run TASK through the graph; the chosen skill, the candidates in rank order, the reason."""
    context = Context(**{**world["ctx"].__dict__, **ctx})
    out = world["graph"].invoke(
        {"task": TASK, "task_id": task_id, "ground_truth": "232.8"}, context=context
    )
    record = list(RunLog(context.run_log).records())[-1]
    return out["selected_skill"], [c["name"] for c in record["candidates"]], record["route_reason"]


def test_a_negative_lift_skill_ranked_first_is_not_the_greedy_pick(world: dict[str, Any]) -> None:
    chosen, ranked, _ = route(world, "t0")
    assert chosen == BEST and ranked[:2] == [BEST, NEXT]
    world["library"].record_lift(BEST, Lift(1, 4, 3, 4, 1))  # worse than no skill
    chosen, ranked, reason = route(world, "t1")
    assert ranked[0] == BEST  # it still ranks first (the prior moves it a little)
    assert chosen == NEXT  # at temperature 0 the next candidate is taken
    assert f"passed over {BEST}: negative lift" in reason
    drawn = {route(world, f"explore-{i}", router_temperature=5.0)[0] for i in range(12)}
    assert BEST in drawn  # exploring may still draw it


def test_only_negative_lift_candidates_over_the_threshold_means_no_skill(
    world: dict[str, Any],
) -> None:
    for name in (BEST, NEXT):
        world["library"].record_lift(name, Lift(0, 2, 1, 2, 1))
    chosen, _, reason = route(world, "t2", min_route_score=0.45)
    assert chosen is None and "negative lift" in reason


def test_a_deprecated_skill_is_never_a_candidate_and_rollback_brings_it_back(
    world: dict[str, Any],
) -> None:
    library = world["library"]
    library.set_lifecycle(BEST, "deprecated", reason="merged into temperature-units")
    for temperature in (0.0, 5.0):
        chosen, ranked, _ = route(world, f"d{temperature}", router_temperature=temperature)
        assert BEST not in ranked and chosen == NEXT
    library.rollback(BEST, 1)
    chosen, ranked, _ = route(world, "d-back")
    assert chosen == BEST and ranked[0] == BEST


def test_the_prior_uses_lift_when_measured_and_utility_exactly_without(
    world: dict[str, Any],
) -> None:
    library, index = world["library"], world["index"]
    index.sync(library.skills())
    router = HybridRouter()

    def scores() -> dict[str, tuple[float, float]]:
        skills = {s.name: s for s in library.skills()}
        return {
            c["name"]: (c["score"], c["prior"])
            for c in router.rank(TASK, skills, index, 3, "hybrid")
        }

    before = scores()
    assert before[BEST][1] == pytest.approx(utility_prior(library.get(BEST)), abs=1e-6)
    library.record_lift(BEST, Lift(4, 4, 0, 4, 1))
    lifted = scores()
    assert lifted[BEST][1] == pytest.approx(0.5 * 1.0 * 4 / 9, abs=1e-6)
    assert lifted[BEST][0] - before[BEST][0] == pytest.approx(
        PRIOR_WEIGHT * (lifted[BEST][1] - before[BEST][1]), abs=1e-5
    )
    assert lifted[NEXT] == before[NEXT]  # no lift: untouched
    library.update(BEST, body="Use python; round to one decimal.")  # the lift is dropped
    assert scores()[BEST] == before[BEST]  # no lift => the scores as before, exactly


def test_the_learned_routers_training_pool_leaves_deprecated_skills_out(
    world: dict[str, Any],
) -> None:
    from memento_skills.nodes.routing.hybrid import skill_prior
    from memento_skills.nodes.routing.training import UntrainedView

    library, index = world["library"], world["index"]
    library.record_lift(NEXT, Lift(3, 3, 0, 3, 1))
    library.set_lifecycle(BEST, "deprecated")
    index.sync(library.skills())
    skills = {s.name: s for s in library.skills()}
    view = UntrainedView(index, skills)
    assert BEST not in view.names and NEXT in view.names
    column = view.column[NEXT]
    assert view.prior[column] == pytest.approx(PRIOR_WEIGHT * skill_prior(skills[NEXT]))
