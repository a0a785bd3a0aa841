"""Fitting the learned router: the classifier and the fusion, cross-fitted on its own cases.

Both fits are full-batch Adam from a fixed start, so a seed and the cases give the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from memento_skills.nodes.routing.hybrid import LEXICAL_WEIGHT, PRIOR_WEIGHT, routable, skill_prior
from memento_skills.nodes.routing.model import (
    EXTRAS,
    FEATURES,
    POOL,
    Fusion,
    Learned,
    Lexicon,
    RouterModel,
    candidate_features,
    log_softmax,
)
from memento_skills.nodes.routing.seams import Retriever
from memento_skills.stores.skill import Skill

UNSEEN_MARGIN = 0.015
"""Recall@1 the fitted fusion must gain over the untrained score on hidden skills in the
cross-fit: a margin for how unlike the cross-fit a real cold skill can be (a near-twin of a
skill with data; docs/decisions.md#unseen-margin)."""
MIN_CLASSES_TO_FIT = 8
MIN_SUCCESSES_TO_FIT = 100
FOLDS = 5
EVAL_PER_FOLD = 300
L2 = 1e-5
EPOCHS = 150
LEARNING_RATE = 0.05
NEGATIVE_WEIGHT = 0.5
HIDDEN = 16
FUSION_STEPS = 600
FUSION_LEARNING_RATE = 0.02
FUSION_L2 = 1e-3


@dataclass(frozen=True)
class FitReport:
    """What a fit learned from; `crossfit`: the fusion's cross-fit figures (None: fixed rule)."""

    samples: int
    successes: int
    failures: int
    classes: int
    embedded: int
    crossfit: dict[str, float] | None
    seconds: float


def train_classifier(
    vectors: np.ndarray, labels: np.ndarray, rewards: np.ndarray, n_classes: int
) -> np.ndarray:
    """Softmax regression by full-batch Adam from zeros (nothing random: deterministic).

    A success (x, s) adds -log p_s(x); a failure adds -NEGATIVE_WEIGHT·log(1 - p_s(x)).
    """
    x = np.hstack([vectors, np.ones((len(vectors), 1), np.float32)]).astype(np.float32)
    w = np.zeros((x.shape[1], n_classes), np.float32)
    if n_classes < 2 or not len(x):
        return w
    success = rewards > 0.5
    s_rows, f_rows = np.flatnonzero(success), np.flatnonzero(~success)
    total = float(len(s_rows) + NEGATIVE_WEIGHT * len(f_rows))
    m1, m2 = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, EPOCHS + 1):
        p = np.exp(log_softmax(x @ w))
        grad_z = np.zeros_like(p)
        grad_z[s_rows] = p[s_rows]
        grad_z[s_rows, labels[s_rows]] -= 1.0
        if f_rows.size:  # d/dz_j of -log(1 - p_s) = p_s (1[j = s] - p_j) / (1 - p_s)
            ps = p[f_rows, labels[f_rows]][:, None]
            g = -ps * p[f_rows]
            g[np.arange(len(f_rows)), labels[f_rows]] += ps[:, 0]
            grad_z[f_rows] = NEGATIVE_WEIGHT * g / np.maximum(1.0 - ps, 1e-6)
        grad = x.T @ grad_z / total + L2 * w
        m1 = 0.9 * m1 + 0.1 * grad
        m2 = 0.999 * m2 + 0.001 * grad * grad
        w -= LEARNING_RATE * (m1 / (1 - 0.9**t)) / (np.sqrt(m2 / (1 - 0.999**t)) + 1e-8)
    return w


def with_classifier(model: RouterModel) -> RouterModel:
    """The model with its classifier retrained on all its cases."""
    classes = np.unique(model.case_skill[model.case_reward > 0.5]).astype(np.int32)
    col = {int(c): j for j, c in enumerate(classes)}
    keep = np.isin(model.case_skill, classes)
    labels = np.asarray([col[int(s)] for s in model.case_skill[keep]], np.int64)
    weights = train_classifier(model.vectors[keep], labels, model.case_reward[keep], len(classes))
    return replace(
        model,
        classes=classes,
        weights=weights,
        fitted=len(model.case_skill),
        lexicon=Lexicon.of(model),
    )


class UntrainedView:
    """The untrained router's pools for the cross-fit, without a Chroma query per case.

    Dense similarity from the skills' stored vectors (one read), lexical from the BM25 index
    and the skill prior, over the routable skills: the sum HybridRouter computes. Skills outside
    the lexical top-k get no lexical part, as in the live router.
    """

    def __init__(self, index: Retriever, skills: Mapping[str, Skill]):
        skills = routable(skills)
        self.index = index
        stored = skill_vectors(index, sorted(skills))
        self.names = sorted(stored)
        self.column = {n: j for j, n in enumerate(self.names)}
        dim = len(next(iter(stored.values()))) if stored else 1
        self.matrix = np.stack([stored[n] for n in self.names]) if stored else np.zeros((0, dim))
        self.prior = np.asarray([PRIOR_WEIGHT * skill_prior(skills[n]) for n in self.names])

    def dense(self, vectors: np.ndarray) -> np.ndarray:
        """Untrained scores of every skill without their lexical part (how extras are scored),
        one row per query vector."""
        out = np.empty((len(vectors), len(self.names)))
        for i in range(0, len(vectors), 256):
            out[i : i + 256] = np.asarray(vectors[i : i + 256], np.float64) @ self.matrix.T
        return out + self.prior

    def pool(self, dense: np.ndarray, query: str) -> tuple[list[str], np.ndarray]:
        """The top POOL skills for one query, from its row of `dense` plus BM25."""
        u = dense.copy()
        lexical = dict(self.index.lexical_search(query, POOL)) if query else {}
        best = max(lexical.values(), default=0.0)
        for name, score in lexical.items():
            if best > 0 and name in self.column:
                u[self.column[name]] += LEXICAL_WEIGHT * score / best
        top = np.argsort(-u, kind="stable")[:POOL]
        return [self.names[j] for j in top], u[top]


@dataclass(frozen=True)
class _Batch:
    u: np.ndarray  # (n, P) untrained scores of each pool (retrieved + learned extras), -inf pads
    evidence: np.ndarray  # (n, P) column in the fold's Learned, -1 without evidence
    rows: np.ndarray  # (n,) row in the fold's Learned
    target: np.ndarray  # (n,) the true skill's column, -1 when outside the pool
    seen: np.ndarray  # (n,) the true skill has evidence in this fold


def fit_fusion(
    model: RouterModel, view: UntrainedView, seed: int
) -> tuple[Fusion, dict[str, float]] | None:
    """Fit g and T on queries hidden from the learned part; None with too little data.

    Skills are split into FOLDS; in fold k the learned part is trained without the skills of
    fold k (their queries play skills without data) and without a 1/FOLDS share of the other
    skills' queries (those play new queries of skills with data). More folds train the fold
    learners closer to the final one (docs/decisions.md#cross-fit-folds).
    """
    success = model.case_reward > 0.5
    classes = np.unique(model.case_skill[success])
    if len(classes) < MIN_CLASSES_TO_FIT or int(success.sum()) < MIN_SUCCESSES_TO_FIT:
        return None
    rng = np.random.default_rng(seed)
    class_fold = np.full(len(model.names), -1)
    class_fold[rng.permutation(classes)] = np.arange(len(classes)) % FOLDS
    query_fold = rng.integers(0, FOLDS, len(model.case_skill))
    fold_of = class_fold[model.case_skill]
    parts: list[tuple[Learned, np.ndarray, np.ndarray]] = []
    for k in range(FOLDS):
        hidden = fold_of == k
        seen_rows = np.flatnonzero(success & ~hidden & (query_fold == k))
        unseen_rows = np.flatnonzero(success & hidden)
        seen_rows = np.sort(rng.permutation(seen_rows)[:EVAL_PER_FOLD])
        unseen_rows = np.sort(rng.permutation(unseen_rows)[:EVAL_PER_FOLD])
        rows = np.r_[seen_rows, unseen_rows].astype(int)
        learner = with_classifier(model.subset(~hidden & (query_fold != k)))
        learned = learner.learned(
            model.vectors[rows],
            [model.queries[r] for r in rows],
            present=view.column.__contains__,
        )
        parts.append(
            (learned, rows, np.r_[np.ones(len(seen_rows), bool), np.zeros(len(unseen_rows), bool)])
        )
    batches = [_batch(learned, rows, seen, model, view) for learned, rows, seen in parts]
    fusion, figures = _train_fusion(batches, [p[0] for p in parts], seed)
    return fusion, figures


def _batch(
    learned: Learned, rows: np.ndarray, seen: np.ndarray, model: RouterModel, view: UntrainedView
) -> _Batch:
    n, width = len(rows), POOL + EXTRAS
    u = np.full((n, width), -np.inf)
    evidence = np.full((n, width), -1)
    target = np.full(n, -1)
    col = {name: j for j, name in enumerate(learned.names)}
    dense = view.dense(model.vectors[rows])
    for i, r in enumerate(rows):
        pooled, pooled_u = view.pool(dense[i], model.queries[r])
        names, scores = list(pooled), [float(x) for x in pooled_u]
        extra = [s for s in learned.ranking(i)[:EXTRAS] if s not in names]
        names += extra  # as in rank(): dense and prior, no lexical part
        scores += [float(dense[i, view.column[e]]) for e in extra]
        u[i, : len(names)] = scores
        truth = model.names[int(model.case_skill[r])]
        for j, name in enumerate(names):
            evidence[i, j] = col.get(name, -1)
            if name == truth:
                target[i] = j
    return _Batch(u, evidence, np.arange(n), target, seen)


def _train_fusion(
    batches: list[_Batch], learned: list[Learned], seed: int
) -> tuple[Fusion, dict[str, float]]:
    """Listwise softmax over each pool (full-batch Adam), then the bias that loses nothing."""
    feats = np.concatenate(
        [
            candidate_features(b.u, b.evidence, lr, b.rows)
            for b, lr in zip(batches, learned, strict=True)
        ]
    )
    u = np.concatenate([b.u for b in batches])
    has = np.concatenate([b.evidence for b in batches]) >= 0
    target = np.concatenate([b.target for b in batches])
    seen = np.concatenate([b.seen for b in batches])
    valid = np.isfinite(u)
    u0 = np.where(valid, u, 0.0)
    inside = target >= 0
    n = len(u)
    rng = np.random.default_rng(seed)
    params = {
        "w1": rng.standard_normal((FEATURES, HIDDEN)) / math.sqrt(FEATURES),
        "b1": np.zeros(HIDDEN),
        "w2": np.zeros(HIDDEN),
        "b2": np.zeros(1),
        "a": np.asarray([math.log(20.0)]),  # 1/T
    }
    m1 = {k: np.zeros_like(v) for k, v in params.items()}
    m2 = {k: np.zeros_like(v) for k, v in params.items()}
    weight = inside / max(int(inside.sum()), 1)
    for t in range(1, FUSION_STEPS + 1):
        hidden = np.tanh(feats @ params["w1"] + params["b1"])
        g = hidden @ params["w2"] + params["b2"][0]
        inv_t = math.exp(params["a"][0])
        z = np.where(valid, inv_t * u0 + np.where(has, g, 0.0), -1e9)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        dz = p.copy()
        dz[np.arange(n), np.maximum(target, 0)] -= 1.0
        dz *= weight[:, None]
        dg = np.where(has, dz, 0.0)
        dh = dg[..., None] * params["w2"] * (1.0 - hidden**2)
        grads = {
            "w1": np.einsum("nph,npk->kh", dh, feats) + FUSION_L2 * params["w1"],
            "b1": dh.sum(axis=(0, 1)),
            "w2": np.einsum("np,nph->h", dg, hidden) + FUSION_L2 * params["w2"],
            "b2": np.asarray([dg.sum()]),
            "a": np.asarray([(dz * u0).sum() * inv_t]),
        }
        for k in params:
            m1[k] = 0.9 * m1[k] + 0.1 * grads[k]
            m2[k] = 0.999 * m2[k] + 0.001 * grads[k] ** 2
            params[k] = params[k] - FUSION_LEARNING_RATE * (m1[k] / (1 - 0.9**t)) / (
                np.sqrt(m2[k] / (1 - 0.999**t)) + 1e-8
            )
    temperature = math.exp(-params["a"][0])
    g = np.tanh(feats @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"][0]

    def hits(shift: float | None) -> np.ndarray:
        s = u if shift is None else u + np.where(has, temperature * (g + shift), 0.0)
        s = np.where(valid, s, -np.inf)
        return (np.argmax(s, axis=1) == target) & inside

    base = hits(None)
    base_seen = float(base[seen].mean()) if seen.any() else 0.0
    base_unseen = float(base[~seen].mean()) if (~seen).any() else 0.0
    best: tuple[tuple[bool, float], float, float, float] | None = None
    for shift in np.round(np.linspace(-3.0, 3.0, 61), 3):
        hit = hits(float(shift))
        seen_r1 = float(hit[seen].mean()) if seen.any() else 0.0
        unseen_r1 = float(hit[~seen].mean()) if (~seen).any() else 0.0
        ok = unseen_r1 >= base_unseen + UNSEEN_MARGIN
        key = (ok, seen_r1 if ok else seen_r1 + unseen_r1)
        if best is None or key > best[0]:
            best = (key, float(shift), seen_r1, unseen_r1)
    assert best is not None
    _, shift, seen_r1, unseen_r1 = best
    fusion = Fusion(
        params["w1"], params["b1"], params["w2"], float(params["b2"][0] + shift), temperature
    )
    figures = {
        "seen_r1": seen_r1,
        "unseen_r1": unseen_r1,
        "untrained_seen_r1": base_seen,
        "untrained_unseen_r1": base_unseen,
        "queries": float(n),
    }
    return fusion, figures


def skill_vectors(index: Retriever, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Unit vectors of the skills as the retriever stored them."""
    return {
        name: v / max(float(np.linalg.norm(v)), 1e-12)
        for name, v in index.vectors(list(names)).items()
    }
