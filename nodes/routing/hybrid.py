"""The untrained score: dense similarity, a bounded BM25 bonus and the skill's prior (its
measured lift, else its utility), and the Boltzmann draw over the top candidates that turns
scores into a choice.

Only routable skills are ranked: a deprecated one never is (docs/decisions.md#lifecycle-and-lift).

Selection is a softmax draw over the top-k with a temperature — exploration while learning,
greedy at 0 — seeded by the task and attempt so runs are reproducible.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping

import numpy as np

from memento_skills.graph.state import Candidate
from memento_skills.nodes.routing.seams import Retriever
from memento_skills.stores.skill import Skill

LEXICAL_WEIGHT = 0.05
"""BM25 enters as a bounded bonus (score / best score in the result), never as an equal partner:
equal-weight fusion ranks worse than dense alone (docs/decisions.md#lexical-bonus)."""
PRIOR_WEIGHT = 0.1
"""How far a skill's track record moves its score (at full confidence, ±0.05)."""
PRIOR_SHRINK = 5
"""Evidence (runs, or lift cases) at which a prior counts half: few runs say little."""


def utility_prior(skill: Skill) -> float:
    """Smoothed success rate centred on 0, shrunk toward 0 while a skill has few runs."""
    u = skill.utility
    rate = (u.successes + 1) / (u.runs + 2)
    confidence = u.runs / (u.runs + PRIOR_SHRINK)
    return (rate - 0.5) * confidence


def lift_prior(skill: Skill) -> float | None:
    """Half the measured lift (so on utility_prior's -0.5..0.5 scale), shrunk toward 0 while it
    rests on few cases; None when no lift is measured."""
    lift = skill.lift
    value = lift.value if lift is not None else None
    if lift is None or value is None:
        return None
    return 0.5 * value * lift.cases / (lift.cases + PRIOR_SHRINK)


def skill_prior(skill: Skill) -> float:
    """The prior a score carries: the lift when measured — success with the skill against
    without it, what routing to it is worth — else the utility, its success rate when used.
    Without a lift it is utility_prior exactly, so a library that measured none ranks as before."""
    lifted = lift_prior(skill)
    return utility_prior(skill) if lifted is None else lifted


class Routable(dict[str, Skill]):
    """Skills by name that `routable` has already filtered: passed on, it does not filter again
    (a pass over a 10,000-skill library costs milliseconds a task, and a route made three)."""


def routable(skills: Mapping[str, Skill]) -> Routable:
    """The skills a router may offer: all but the deprecated (retired, kept for rollback)."""
    if isinstance(skills, Routable):
        return skills
    return Routable((n, s) for n, s in skills.items() if s.lifecycle != "deprecated")


def harmful(skill: Skill) -> bool:
    """Measured to do worse than no skill on its own cases: never the greedy pick."""
    value = skill.lift.value if skill.lift is not None else None
    return value is not None and value < 0


class HybridRouter:
    """Dense similarity + a bounded BM25 bonus + the skill prior, over the routable skills."""

    def rank(
        self,
        query: str,
        skills: Mapping[str, Skill],
        index: Retriever,
        k: int,
        mode: str,
        *,
        vector: np.ndarray | None = None,
    ) -> list[Candidate]:
        """`vector`: the query's embedding when the caller already has it."""
        skills = routable(skills)
        if not skills:
            return []
        want = k
        while True:  # the index also holds skills not offered (deprecated): look further
            hits = _hits(index, query, want, mode, vector)
            if len(hits) < want or sum(n in skills for n, _, _ in hits) >= k:
                break
            want *= 2
        best_lexical = max((lx for _, _, lx in hits if lx), default=0.0)
        out: list[Candidate] = []
        for name, dense, lexical in hits:
            skill = skills.get(name)
            if skill is None:  # indexed but no longer (validly) in the library
                continue
            prior = skill_prior(skill)
            lex_part = (lexical or 0.0) / best_lexical if best_lexical > 0 else 0.0
            if mode == "lexical":
                score = lex_part
            else:
                score = (dense or 0.0) + (LEXICAL_WEIGHT * lex_part if mode == "hybrid" else 0.0)
            score += PRIOR_WEIGHT * prior
            out.append(
                Candidate(
                    name=name,
                    score=round(score, 6),
                    dense=dense,
                    lexical=lexical,
                    prior=round(prior, 6),
                )
            )
        out.sort(key=lambda c: -c["score"])
        return out[:k]


def _hits(
    index: Retriever, query: str, k: int, mode: str, vector: np.ndarray | None
) -> list[tuple[str, float | None, float | None]]:
    """The index's top `k` for `query` as (name, dense, lexical)."""
    if mode == "lexical":
        return [(n, None, s) for n, s in index.lexical_search(query, k)]
    if mode == "dense":
        return [(n, s, None) for n, s in index.dense_search(query, k, vector=vector)]
    return [(h.name, h.dense, h.lexical) for h in index.search(query, k, vector=vector)]


def select(candidates: list[Candidate], temperature: float, seed: str) -> Candidate:
    """Softmax draw over the candidates' scores; greedy when the temperature is 0."""
    if temperature <= 0 or len(candidates) == 1:
        return candidates[0]
    top = max(c["score"] for c in candidates)
    weights = [math.exp((c["score"] - top) / temperature) for c in candidates]
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    return rng.choices(candidates, weights=weights, k=1)[0]
