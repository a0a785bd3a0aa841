"""The untrained score: dense similarity, a bounded BM25 bonus and the utility prior, and the
Boltzmann draw over the top candidates that turns scores into a choice.

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


def utility_prior(skill: Skill) -> float:
    """Smoothed success rate centred on 0, shrunk toward 0 while a skill has few runs."""
    u = skill.utility
    rate = (u.successes + 1) / (u.runs + 2)
    confidence = u.runs / (u.runs + 5)
    return (rate - 0.5) * confidence


class HybridRouter:
    """Dense similarity + a bounded BM25 bonus + the utility prior."""

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
        if not skills:
            return []
        hits: list[tuple[str, float | None, float | None]]
        if mode == "lexical":
            hits = [(n, None, s) for n, s in index.lexical_search(query, k)]
        elif mode == "dense":
            hits = [(n, s, None) for n, s in index.dense_search(query, k, vector=vector)]
        else:
            hits = [(h.name, h.dense, h.lexical) for h in index.search(query, k, vector=vector)]
        best_lexical = max((lx for _, _, lx in hits if lx), default=0.0)
        out: list[Candidate] = []
        for name, dense, lexical in hits:
            skill = skills.get(name)
            if skill is None:  # indexed but no longer (validly) in the library
                continue
            prior = utility_prior(skill)
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


def select(candidates: list[Candidate], temperature: float, seed: str) -> Candidate:
    """Softmax draw over the candidates' scores; greedy when the temperature is 0."""
    if temperature <= 0 or len(candidates) == 1:
        return candidates[0]
    top = max(c["score"] for c in candidates)
    weights = [math.exp((c["score"] - top) / temperature) for c in candidates]
    rng = random.Random(int(hashlib.sha256(seed.encode()).hexdigest()[:16], 16))
    return rng.choices(candidates, weights=weights, k=1)[0]
