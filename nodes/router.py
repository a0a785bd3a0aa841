"""The behaviour-trained router: the untrained hybrid score plus what judged runs taught.

Every judged run is a case (task, chosen skill, reward). The learned parts read the cases:

- a case memory: for each skill, how similar the query is to its nearest past success and its
  share of the query's nearest past successes; failures are kept as hard negatives;
- a lexical memory: BM25 of the query against each skill's solved tasks;
- a softmax classifier on the query embedding over the skills that have succeeded, trained from
  scratch on every retrain, with failures as negatives.

A learned part alone is useless for a skill without data (measured on the shared routing data:
an InfoNCE adapter reached 0.81 on seen skills and 0.14 on unseen ones, dense alone 0.44), and a
fixed mixture of it with the untrained score under a per-query gate trades one for the other
(on a dev split: 0.79 seen, -1 point unseen). So the fusion itself is learned, per candidate
(same split: 0.83 seen, +2 points unseen):

    score_s = u_s + T · g(features of s)     for a skill s with evidence
    score_s = u_s                             for a skill without

u is the untrained score (dense + bounded BM25 + utility prior, as HybridRouter), g a small MLP
over the evidence for s against this query — classifier log-probability, memory similarity and
vote share, how much data s has, how close the query is to any past success, how s and the
best unevidenced candidate compare on u — so it learns when to trust the learned part and when
a query looks like none of the skills with data. Scores stay on the untrained scale (the route
threshold keeps its meaning) and equal it exactly while nothing has been learned.

g and T are fitted by cross-fitting on the router's own cases: folds of skills are hidden from
the learned part, so the fusion sees what queries of skills without data look like, and g's
bias is then set to gain most on evidenced skills while gaining at least UNSEEN_MARGIN on
hidden ones. With too little data for that, a fixed rule applies: a past success on a
near-identical query lifts its skill.

A failure costs its skill a penalty on near-identical queries while the skill is still at the
version that failed, so a refined skill gets its retry.

Online, `observe` adds the run to the memory at once (a new immutable model is swapped in, so
readers never see half an update) and saves it; every `retrain_every` observations the
classifier and fusion are refitted from all cases. Everything is deterministic given the seed.
"""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from memento_skills.graph.state import Candidate
from memento_skills.nodes.route_skill import (
    LEXICAL_WEIGHT,
    PRIOR_WEIGHT,
    HybridRouter,
    utility_prior,
)
from memento_skills.stores.router_weights import (
    RouterWeightsError,
    RouterWeightsStore,
    Saved,
    weights_dir,
)
from memento_skills.stores.skill import Skill

POOL = 10
"""Untrained candidates the learned part re-scores; the caller's top-k is taken from them."""
EXTRAS = 5
"""Skills the learned part rates highest, added to the pool when retrieval missed them."""
NEIGHBOURS = 10
EXTRA_MEMORY_WEIGHT = 10.0
RECALL_FLOOR = 0.65
RECALL_WEIGHT = 0.3
"""Before the fusion is fitted: a past success lifts its skill by up to RECALL_WEIGHT on queries
more similar than RECALL_FLOOR to the one it solved."""
FAILURE_FLOOR = 0.8
FAILURE_WEIGHT = 0.2
"""A failure lowers its skill by up to FAILURE_WEIGHT on queries more similar than FAILURE_FLOOR
to the one it failed, while the skill is at the version that failed."""
UNSEEN_MARGIN = 0.015
"""Recall@1 the fitted fusion must gain over the untrained score on hidden skills in the
cross-fit: a margin for how unlike the cross-fit a real cold skill can be (a near-twin of a
skill with data). On four dev splits of the shared data, with no margin the cold skills moved
-2.7 to +1.2 points against the untrained router (seen 0.83-0.85); with this one -1.2 to +3.6
(seen 0.81-0.84)."""
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
FEATURES = 10


@dataclass(frozen=True)
class Sample:
    """One judged run: the task, the skill it was routed to, whether it succeeded."""

    query: str
    skill: str
    reward: float
    version: int | None = None
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class FitReport:
    samples: int
    successes: int
    failures: int
    classes: int
    embedded: int
    crossfit: dict[str, float] | None
    seconds: float


@dataclass(frozen=True, eq=False)
class Fusion:
    """g: features of an evidenced candidate -> its learned score, in units of T."""

    w1: np.ndarray  # (FEATURES, HIDDEN)
    b1: np.ndarray  # (HIDDEN,)
    w2: np.ndarray  # (HIDDEN,)
    b2: float
    temperature: float

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return np.tanh(features @ self.w1 + self.b1) @ self.w2 + self.b2

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "fusion_w1": self.w1,
            "fusion_b1": self.b1,
            "fusion_w2": self.w2,
            "fusion_b2": np.asarray([self.b2, self.temperature]),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Fusion | None:
        if "fusion_w1" not in arrays:
            return None
        b2, temperature = (float(x) for x in arrays["fusion_b2"])
        fusion = cls(
            np.asarray(arrays["fusion_w1"], np.float64),
            np.asarray(arrays["fusion_b1"], np.float64),
            np.asarray(arrays["fusion_w2"], np.float64),
            b2,
            temperature,
        )
        h = fusion.b1.shape[0] if fusion.b1.ndim == 1 else -1
        if fusion.w1.shape != (FEATURES, h) or fusion.w2.shape != (h,) or not temperature > 0:
            raise ValueError("the fusion's shapes do not match this version of the router")
        return fusion


# ----------------------------------------------------------------------------- the model


class Lexicon:
    """BM25 over each evidenced skill's solved tasks, concatenated: the words that worked.

    Built at each fit (a second or so for ten thousand runs) and rebuilt on load, never saved.
    """

    def __init__(self, skill_ids: np.ndarray, documents: list[list[str]]):
        import bm25s

        self.skill_ids = skill_ids
        self.retriever = bm25s.BM25()
        self.retriever.index(documents, show_progress=False)
        self.vocabulary = self.retriever.vocab_dict

    @classmethod
    def of(cls, model: RouterModel) -> Lexicon | None:
        from memento_skills.stores.index import tokenize

        success = np.flatnonzero(model.case_reward > 0.5)
        if not success.size:
            return None
        documents: dict[int, list[str]] = {}
        for row in success:
            documents.setdefault(int(model.case_skill[row]), []).extend(
                tokenize(model.queries[row])
            )
        ids = sorted(documents)
        if not any(documents[i] for i in ids):
            return None
        return cls(np.asarray(ids), [documents[i] or ["-"] for i in ids])

    def scores(self, query: str) -> np.ndarray:
        """Scores per skill in `skill_ids`, scaled so the best is 1 (all 0 without overlap)."""
        from memento_skills.stores.index import tokenize

        tokens = [t for t in tokenize(query) if t in self.vocabulary]
        if not tokens:
            return np.zeros(len(self.skill_ids))
        scores = np.asarray(self.retriever.get_scores(tokens), np.float64)
        best = scores.max()
        return scores / best if best > 0 else scores


@dataclass(frozen=True)
class Learned:
    """What the learned part knows about a batch of queries, over the evidenced skills."""

    names: list[str]
    logp: np.ndarray  # (n, E) classifier log-probability
    memory: np.ndarray  # (n, E) similarity to the skill's nearest past success
    vote: np.ndarray  # (n, E) share of the query's nearest past successes
    count: np.ndarray  # (E,) successes of the skill
    lexical: np.ndarray  # (n, E) BM25 of the query against the skill's solved tasks, best = 1

    def ranking(self, row: int) -> list[str]:
        """Evidenced skills, most likely first (for the candidates retrieval missed)."""
        key = self.logp[row] + EXTRA_MEMORY_WEIGHT * self.memory[row]
        return [self.names[j] for j in np.argsort(-key, kind="stable")]


OBSERVED_KEYS = 256
"""How many observed runs' keys the router keeps: far more than are ever replayed at once."""


@dataclass(frozen=True, eq=False)
class RouterModel:
    """Immutable learned state: readers keep a reference while `observe` swaps in a new one."""

    names: tuple[str, ...]  # every skill with a case; cases and classes index into it
    queries: tuple[str, ...]  # the cases' tasks (lexical scores in the cross-fit, retrains)
    vectors: np.ndarray  # (n, d) query vectors
    case_skill: np.ndarray  # (n,) int32
    case_reward: np.ndarray  # (n,) float32: 1 success, 0 failure
    case_version: np.ndarray  # (n,) int32: the skill's version, 0 when unknown
    classes: np.ndarray  # (m,) int32: skills the classifier knows
    weights: np.ndarray  # (d + 1, m) float32
    fusion: Fusion | None = None
    fitted: int = 0  # cases the classifier was trained on; later ones arrived online
    lexicon: Lexicon | None = None  # built from the fitted cases
    observed: tuple[str, ...] = ()  # keys of the last observed runs: a replayed one is skipped

    @classmethod
    def empty(cls, dim: int) -> RouterModel:
        return cls(
            names=(),
            queries=(),
            vectors=np.zeros((0, dim), np.float32),
            case_skill=np.zeros(0, np.int32),
            case_reward=np.zeros(0, np.float32),
            case_version=np.zeros(0, np.int32),
            classes=np.zeros(0, np.int32),
            weights=np.zeros((dim + 1, 0), np.float32),
        )

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @cached_property
    def _successes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Success vectors grouped by skill: (vectors, group starts, skill per group, counts)."""
        rows = np.flatnonzero(self.case_reward > 0.5)
        rows = rows[np.argsort(self.case_skill[rows], kind="stable")]
        if not rows.size:
            empty = np.zeros(0, np.int64)
            return np.zeros((0, self.dim), np.float32), empty, empty, empty
        skills = self.case_skill[rows]
        starts = np.flatnonzero(np.r_[True, skills[1:] != skills[:-1]])
        counts = np.diff(np.r_[starts, len(rows)])
        return np.ascontiguousarray(self.vectors[rows]), starts, skills[starts], counts

    @property
    def evidence(self) -> list[str]:
        """Skills with at least one success."""
        return [self.names[i] for i in self._successes[2]]

    def with_cases(self, samples: Sequence[Sample], vectors: np.ndarray) -> RouterModel:
        names = list(self.names)
        index = {n: i for i, n in enumerate(names)}
        ids = []
        for s in samples:
            if s.skill not in index:
                index[s.skill] = len(names)
                names.append(s.skill)
            ids.append(index[s.skill])
        return replace(
            self,
            names=tuple(names),
            queries=self.queries + tuple(s.query for s in samples),
            vectors=np.vstack([self.vectors, np.asarray(vectors, np.float32)]),
            case_skill=np.r_[self.case_skill, ids].astype(np.int32),
            case_reward=np.r_[self.case_reward, [float(s.reward > 0.5) for s in samples]].astype(
                np.float32
            ),
            case_version=np.r_[self.case_version, [s.version or 0 for s in samples]].astype(
                np.int32
            ),
        )

    def subset(self, rows: np.ndarray) -> RouterModel:
        """The cases at `rows` (a mask), without classifier or fusion."""
        index = np.flatnonzero(rows)
        return replace(
            self,
            queries=tuple(self.queries[int(r)] for r in index),
            vectors=self.vectors[index],
            case_skill=self.case_skill[index],
            case_reward=self.case_reward[index],
            case_version=self.case_version[index],
            classes=np.zeros(0, np.int32),
            weights=np.zeros((self.dim + 1, 0), np.float32),
            fusion=None,
            fitted=0,
            lexicon=None,
        )

    # -- persistence ---------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        out = {
            "names": _json_bytes(list(self.names)),
            "queries": _json_bytes(list(self.queries)),
            "vectors": self.vectors.astype(np.float32),
            "case_skill": self.case_skill,
            "case_reward": self.case_reward,
            "case_version": self.case_version,
            "classes": self.classes,
            "weights": self.weights.astype(np.float32),
        }
        if self.fusion is not None:
            out.update(self.fusion.arrays())
        return out

    def header(self) -> dict[str, Any]:
        return {
            "fitted": self.fitted,
            "dim": self.dim,
            "cases": len(self.case_skill),
            "observed": list(self.observed),
        }

    @classmethod
    def from_saved(cls, arrays: Mapping[str, np.ndarray], header: Mapping[str, Any]) -> RouterModel:
        """Rebuild a saved model; RouterWeightsError says what is inconsistent."""
        try:
            names = tuple(str(n) for n in json.loads(arrays["names"].tobytes().decode("utf-8")))
            queries = json.loads(arrays["queries"].tobytes().decode("utf-8"))
            model = cls(
                names=names,
                queries=tuple(str(q) for q in queries),
                vectors=np.asarray(arrays["vectors"], np.float32),
                case_skill=np.asarray(arrays["case_skill"], np.int32),
                case_reward=np.asarray(arrays["case_reward"], np.float32),
                case_version=np.asarray(arrays["case_version"], np.int32),
                classes=np.asarray(arrays["classes"], np.int32),
                weights=np.asarray(arrays["weights"], np.float32),
                fusion=Fusion.from_arrays(arrays),
                fitted=int(header.get("fitted", 0)),
                observed=tuple(str(k) for k in header.get("observed") or ()),
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
            raise RouterWeightsError(f"router weights are incomplete or malformed ({e})") from None
        n, m = len(model.case_skill), len(model.classes)
        consistent = (
            model.vectors.ndim == 2
            and model.vectors.shape[0] == n == len(model.queries)
            and len(model.case_reward) == n == len(model.case_version)
            and model.weights.shape == (model.dim + 1, m)
            and (
                n == 0
                or 0 <= int(model.case_skill.min()) <= int(model.case_skill.max()) < len(names)
            )
            and (m == 0 or 0 <= int(model.classes.min()) <= int(model.classes.max()) < len(names))
            and bool(np.isfinite(model.weights).all() and np.isfinite(model.vectors).all())
        )
        if not consistent:
            raise RouterWeightsError("router weights have inconsistent shapes or values")
        fitted = model.subset(np.arange(n) < model.fitted)
        return replace(model, lexicon=Lexicon.of(fitted)) if model.fitted else model

    # -- scoring -------------------------------------------------------------------------

    def learned(
        self,
        vectors: np.ndarray,
        queries: Sequence[str],
        present: Callable[[str], bool] | None = None,
    ) -> Learned:
        """The learned part's view of a batch of queries, over the evidenced skills present."""
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        n = vectors.shape[0]
        success_vectors, starts, skill_ids, counts = self._successes
        keep = np.fromiter(
            (present is None or present(self.names[i]) for i in skill_ids), bool, len(skill_ids)
        )
        if not keep.any():
            empty = np.zeros((n, 0), np.float32)
            return Learned([], empty, empty, empty, np.zeros(0), empty)
        sims = _product(vectors, success_vectors.T)
        memory = np.maximum.reduceat(sims, starts, axis=1)
        group = np.repeat(np.arange(len(starts)), counts)  # success column -> skill group
        k = min(NEIGHBOURS, sims.shape[1])
        near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        vote = np.zeros_like(memory)
        for i in range(n):
            np.add.at(vote[i], group[near[i]], 1.0 / near.shape[1])
        ids = skill_ids[keep]
        slot = np.full(len(self.names), -1)  # skill id -> column of the result
        slot[ids] = np.arange(len(ids))
        m = len(self.classes)
        lp = np.full((n, len(ids)), math.log(1.0 / (m + 1)), np.float32)
        if m:  # a skill that succeeded since the last fit keeps the prior 1/(m + 1)
            biased = np.hstack([vectors, np.ones((n, 1), np.float32)])
            logp = _log_softmax(_product(biased, self.weights))
            cols = slot[self.classes]
            lp[:, cols[cols >= 0]] = logp[:, cols >= 0]
        lexical = np.zeros((n, len(ids)))
        if self.lexicon is not None:
            cols = slot[self.lexicon.skill_ids]
            for i, query in enumerate(queries):
                lexical[i, cols[cols >= 0]] = self.lexicon.scores(query)[cols >= 0]
        return Learned(
            [self.names[i] for i in ids],
            lp,
            memory[:, keep].astype(np.float32),
            vote[:, keep].astype(np.float32),
            counts[keep].astype(np.float64),
            lexical,
        )

    def failure_penalty(
        self, vector: np.ndarray, pool: Sequence[str], versions: Mapping[str, int]
    ) -> np.ndarray:
        out = np.zeros(len(pool))
        failures = np.flatnonzero(self.case_reward <= 0.5)
        if not failures.size:
            return out
        sims = _product(np.asarray(vector, np.float32)[None], self.vectors[failures].T)[0]
        strength = np.clip((sims - FAILURE_FLOOR) / (1.0 - FAILURE_FLOOR), 0.0, 1.0)
        slot = {n: j for j, n in enumerate(pool)}
        for i in np.flatnonzero(strength > 0):
            case = int(failures[i])
            name = self.names[int(self.case_skill[case])]
            j = slot.get(name)
            failed_at = int(self.case_version[case])
            if j is not None and (failed_at == 0 or versions.get(name, failed_at) == failed_at):
                out[j] = max(out[j], FAILURE_WEIGHT * float(strength[i]))
        return out


def candidate_features(
    u: np.ndarray, evidence: np.ndarray, learned: Learned, rows: np.ndarray | None = None
) -> np.ndarray:
    """(n, P, FEATURES) for pools of candidates; zeros where a candidate has no evidence.

    `u`: untrained scores (-inf pads); `evidence`: column in `learned` per candidate, -1 none;
    `rows`: the row of `learned` for each pool (default: the same row).
    """
    n, width = u.shape
    rows = np.arange(n) if rows is None else rows
    has = evidence >= 0
    col = np.where(has, evidence, 0)
    r = rows[:, None]
    lp = np.where(has, learned.logp[r, col], 0.0)
    memory = np.where(has, learned.memory[r, col], 0.0)
    vote = np.where(has, learned.vote[r, col], 0.0)
    count = np.where(has, np.log1p(learned.count[col]) / 5.0, 0.0)
    lexical = np.where(has, learned.lexical[r, col], 0.0)
    if not learned.names:
        return np.zeros((n, width, FEATURES))
    memory_top = learned.memory[rows].max(axis=1)[:, None]
    lp_top = learned.logp[rows].max(axis=1)[:, None]
    finite = np.isfinite(u)
    top = np.where(finite, u, -np.inf).max(axis=1, keepdims=True)
    best_e = np.where(has & finite, u, -np.inf).max(axis=1, keepdims=True)
    best_n = np.where(~has & finite, u, -np.inf).max(axis=1, keepdims=True)
    margin = np.where(np.isfinite(best_n), best_e - np.where(np.isfinite(best_n), best_n, 0), 0.2)
    features = np.stack(
        [
            lp / 5.0,
            memory,
            np.broadcast_to(memory_top, (n, width)),
            np.broadcast_to(np.clip(margin, -0.2, 0.2) * 5.0, (n, width)),
            np.where(finite, (u - top) * 10.0, 0.0),
            memory - memory_top,
            (lp - lp_top) / 5.0,
            vote,
            count,
            lexical,
        ],
        axis=-1,
    )
    return np.where(has[..., None], features, 0.0)


def fused(
    u: np.ndarray,
    evidence: np.ndarray,
    learned: Learned,
    fusion: Fusion | None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Scores on the untrained scale: u plus the learned term for evidenced candidates."""
    has = evidence >= 0
    if not learned.names:
        return u
    if fusion is None:
        n = u.shape[0]
        r = (np.arange(n) if rows is None else rows)[:, None]
        memory = np.where(has, learned.memory[r, np.where(has, evidence, 0)], 0.0)
        lift = RECALL_WEIGHT * np.clip((memory - RECALL_FLOOR) / (1 - RECALL_FLOOR), 0.0, 1.0)
        return u + np.where(has, lift, 0.0)
    g = fusion(candidate_features(u, evidence, learned, rows))
    return u + np.where(has, fusion.temperature * g, 0.0)


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b, without BLAS for a single row.

    OpenBLAS threads a matrix-vector product across cores; on a busy machine they wait on each
    other: measured here with two cores taken, 11 ms for one query against 7,600 cases, against
    0.7 ms for numpy's own loop. Batches (training, the cross-fit) keep BLAS.
    """
    if a.shape[0] == 1:
        return np.einsum("ij,jk->ik", a, b)
    return a @ b


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)


# ----------------------------------------------------------------------------- training


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
        p = np.exp(_log_softmax(x @ w))
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
    and the utility prior: the sum HybridRouter computes. Skills outside the lexical top-k get no
    lexical part, as in the live router.
    """

    def __init__(self, index: Any, skills: Mapping[str, Skill]):
        self.index = index
        stored = skill_vectors(index, sorted(skills))
        self.names = sorted(stored)
        self.column = {n: j for j, n in enumerate(self.names)}
        dim = len(next(iter(stored.values()))) if stored else 1
        self.matrix = np.stack([stored[n] for n in self.names]) if stored else np.zeros((0, dim))
        self.prior = np.asarray([PRIOR_WEIGHT * utility_prior(skills[n]) for n in self.names])

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
    learners closer to the final one: on the shared data 5 folds beat 4 by two points on seen.
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


def skill_vectors(index: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Unit vectors of skills as stored in the index's Chroma collection (through the index's
    in-memory cache when it has one)."""
    out: dict[str, np.ndarray] = {}
    names = list(names)
    cached = getattr(index, "vectors", None)
    if callable(cached):
        for name, v in cached(names).items():
            out[name] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out
    for i in range(0, len(names), 5000):
        got = index.collection.get(ids=names[i : i + 5000], include=["embeddings"])
        embeddings = got["embeddings"]
        if embeddings is None:
            continue
        for name, vec in zip(got["ids"], embeddings, strict=True):
            v = np.asarray(vec, np.float32)
            out[name] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


# ----------------------------------------------------------------------------- the router


class LearnedRouter:
    """A `Router` that learns from judged runs; with no evidence it ranks as `HybridRouter`.

    Weights live in `<library>/.memento/router/` (stores/router_weights.py). A router made
    without `weights_dir` keeps its state in memory until `bind(library_root)`, which
    route_skill calls with the run's library. Damaged weights are reported in `load_error` (and
    a warning) and routing goes on untrained; the next save starts a new version, and
    `memento router train` rebuilds the state from the run log.
    """

    def __init__(
        self,
        weights_dir: Path | str | None = None,
        *,
        seed: int = 0,
        retrain_every: int = 200,
        autosave: bool = True,
        base: HybridRouter | None = None,
    ):
        self.seed = seed
        self.retrain_every = retrain_every
        self.autosave = autosave
        self.base = base or HybridRouter()
        self.store: RouterWeightsStore | None = None
        self.model: RouterModel | None = None
        self.version: int | None = None
        self.load_error: str | None = None
        self._bound: Path | None = None
        self._lock = threading.RLock()
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._context: tuple[Any, Mapping[str, Skill]] | None = None
        self._since_fit = 0
        self._pinned = weights_dir is not None  # an explicit folder wins over bind()
        if weights_dir is not None:
            self._attach(Path(weights_dir))

    # -- weights -------------------------------------------------------------------------

    def bind(self, library_root: Path | str) -> None:
        """Use (and load) the weights kept next to this library; a no-op when already bound or
        when the router was made with its own `weights_dir`."""
        root = Path(library_root)
        with self._lock:
            if self._pinned or self._bound == root:
                return
            self._bound = root
            if self.store is None or self.store.root != weights_dir(root):
                self._attach(weights_dir(root))

    def _attach(self, folder: Path) -> None:
        self.store = RouterWeightsStore(folder)
        self.model, self.version, self.load_error = None, None, None
        try:
            self.reload()
        except RouterWeightsError as e:
            self.load_error = str(e)
            warnings.warn(f"learned router disabled, routing untrained: {e}", stacklevel=3)

    def reload(self) -> None:
        """Load the live weights; RouterWeightsError when they are damaged."""
        if self.store is None:
            return
        loaded = self.store.load()
        if loaded is None:
            return
        arrays, header, version = loaded
        model = RouterModel.from_saved(arrays, header)
        with self._lock:
            self.model, self.version, self.load_error = model, version, None

    def save(self) -> Saved | None:
        with self._lock:
            if self.store is None or self.model is None:
                return None
            saved = self.store.save(self.model.arrays(), self.model.header())
            self.version = saved.version
            return saved

    # -- routing -------------------------------------------------------------------------

    def rank(
        self, query: str, skills: Mapping[str, Skill], index: Any, k: int, mode: str
    ) -> list[Candidate]:
        if not skills:
            return []
        vector = np.asarray(index.embed_query(query), np.float32)
        with self._lock:
            self._remember(query, vector)
            self._context = (index, skills)
            model = self.model
        pool = self.base.rank(query, skills, index, max(k, POOL), mode, vector=vector)
        if model is None or not pool or not len(model.case_skill):
            return pool[:k]
        if model.dim != vector.shape[0]:
            self._disable(
                f"the router was trained on {model.dim}-dimensional embeddings and the embedder "
                f"gives {vector.shape[0]}: retrain it with `memento router train`"
            )
            return pool[:k]
        learned = model.learned(vector, [query], present=skills.__contains__)
        names = [c["name"] for c in pool]
        extras = [s for s in learned.ranking(0)[:EXTRAS] if s not in names] if learned.names else []
        stored = skill_vectors(index, extras) if extras else {}
        pool = pool + _extra_candidates(extras, skills, stored, vector, mode)
        names = [c["name"] for c in pool]
        col = {n: j for j, n in enumerate(learned.names)}
        evidence = np.asarray([[col.get(n, -1) for n in names]])
        u = np.asarray([[c["score"] for c in pool]], np.float64)
        final = fused(u, evidence, learned, model.fusion)[0] - model.failure_penalty(
            vector, names, {n: skills[n].version for n in names}
        )
        out = [
            Candidate(
                name=c["name"],
                score=round(float(s), 6),
                dense=c["dense"],
                lexical=c["lexical"],
                prior=c["prior"],
                learned=round(float(s) - c["score"], 6),
            )
            for c, s in zip(pool, final, strict=True)
        ]
        out.sort(key=lambda c: -c["score"])
        return out[:k]

    def _disable(self, reason: str) -> None:
        with self._lock:
            if self.load_error != reason:
                warnings.warn(f"learned router disabled, routing untrained: {reason}", stacklevel=3)
            self.model, self.load_error = None, reason

    def _remember(self, query: str, vector: np.ndarray) -> None:
        self._vectors[query] = vector
        self._vectors.move_to_end(query)
        while len(self._vectors) > 256:
            self._vectors.popitem(last=False)

    # -- learning ------------------------------------------------------------------------

    def observe(
        self,
        query: str,
        vector: np.ndarray | None,
        skill: str | None,
        reward: float,
        *,
        version: int | None = None,
        key: str = "",
        index: Any | None = None,
    ) -> None:
        """Learn from one judged run: the memory takes it now, the classifier at the retrain.

        A run observed with a `key` is learned once: the key is saved with the weights, so a
        task replayed after a crash does not teach the router its outcome twice. `index` embeds
        a query this router has not ranked (a task resumed in a new process).
        """
        if not skill:
            return
        with self._lock:
            if key and self.model is not None and key in self.model.observed:
                return
            if vector is None:
                vector = self._vectors.get(query)
            if vector is None and self._context is None and index is not None:
                vector = index.embed_query(query)
            if vector is None:
                if self._context is None:
                    raise ValueError(
                        "observe() needs the query's vector: pass vector=, or rank the query "
                        "through this router first"
                    )
                vector = self._context[0].embed_query(query)
            row = np.asarray(vector, np.float32).reshape(1, -1)
            model = self.model
            if model is None or model.dim != row.shape[1]:
                model = RouterModel.empty(row.shape[1])
            model = model.with_cases([Sample(query, skill, reward, version)], row)
            if key:
                model = replace(model, observed=(*model.observed, key)[-OBSERVED_KEYS:])
            self.model = model
            self._since_fit += 1
            if self.retrain_every and self._since_fit >= self.retrain_every:
                self.retrain()
            elif self.autosave:
                self.save()

    def retrain(self) -> FitReport | None:
        """Refit the classifier and the parameters on every case held."""
        with self._lock:
            if self.model is None:
                return None
            index, skills = self._context or (None, None)
            report = self._refit(self.model, index, skills, embedded=0)
            if self.autosave:
                self.save()
            return report

    def fit(
        self,
        samples: Iterable[Sample],
        *,
        index: Any,
        skills: Mapping[str, Skill],
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ) -> FitReport:
        """Train from scratch on `samples`; vectors are taken from the samples, reused from the
        current model's cases, or embedded (`embed`, default: the index's embedder)."""
        start = time.perf_counter()
        samples = [s for s in samples if s.skill]
        known: dict[str, np.ndarray] = {}
        if self.model is not None:
            known = dict(zip(self.model.queries, self.model.vectors, strict=True))
        missing = sorted({s.query for s in samples if s.vector is None and s.query not in known})
        if missing:
            vectors = embed(missing) if embed else _embed_many(index, missing)
            known.update(zip(missing, np.asarray(vectors, np.float32), strict=True))
        if samples:
            matrix = np.stack(
                [s.vector if s.vector is not None else known[s.query] for s in samples]
            ).astype(np.float32)
        else:
            matrix = np.zeros((0, len(index.embed_query("dimension probe"))), np.float32)
        model = RouterModel.empty(matrix.shape[1]).with_cases(samples, matrix)
        with self._lock:
            report = self._refit(model, index, skills, embedded=len(missing))
        return replace(report, seconds=time.perf_counter() - start)

    def _refit(
        self,
        model: RouterModel,
        index: Any | None,
        skills: Mapping[str, Skill] | None,
        embedded: int,
    ) -> FitReport:
        start = time.perf_counter()
        fitted = None
        if index is not None and skills:
            fitted = fit_fusion(model, UntrainedView(index, skills), self.seed)
        fusion, crossfit = fitted if fitted else (None, None)
        model = replace(with_classifier(model), fusion=fusion)
        self.model = model
        self._since_fit = 0
        success = model.case_reward > 0.5
        return FitReport(
            samples=len(model.case_skill),
            successes=int(success.sum()),
            failures=int((~success).sum()),
            classes=len(model.classes),
            embedded=embedded,
            crossfit=crossfit,
            seconds=time.perf_counter() - start,
        )


def _extra_candidates(
    extras: list[str],
    skills: Mapping[str, Skill],
    stored: Mapping[str, np.ndarray],
    vector: np.ndarray,
    mode: str,
) -> list[Candidate]:
    """Untrained scores of skills retrieval missed: dense from their stored vectors, no BM25."""
    q = vector / max(float(np.linalg.norm(vector)), 1e-12)
    out = []
    for name in extras:
        prior = utility_prior(skills[name])
        dense = float(stored[name] @ q) if name in stored else None
        score = (0.0 if mode == "lexical" or dense is None else dense) + PRIOR_WEIGHT * prior
        out.append(
            Candidate(
                name=name, score=round(score, 6), dense=dense, lexical=None, prior=round(prior, 6)
            )
        )
    return out


def _embed_many(index: Any, texts: list[str]) -> np.ndarray:
    from memento_skills.stores.embedder import embed

    return embed(index.embedder, texts)
