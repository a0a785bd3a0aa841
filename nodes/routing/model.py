"""The learned router's immutable state and its scoring: the case memory, the lexical memory,
the classifier's weights, the fusion g, and the features g reads (fitted in `training.py`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from memento_skills.stores.router_weights import RouterWeightsError

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
FEATURES = 10


@dataclass(frozen=True)
class Sample:
    """One judged run: the task, the skill it was routed to, whether it succeeded."""

    query: str
    skill: str
    reward: float
    version: int | None = None
    vector: np.ndarray | None = None


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
        from memento_skills.stores.lexical import tokenize

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
        from memento_skills.stores.lexical import tokenize

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
            logp = log_softmax(_product(biased, self.weights))
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
    """a @ b, without BLAS for a single row: on busy cores OpenBLAS's threads wait on each other
    (docs/decisions.md#single-row-product). Batches (training, the cross-fit) keep BLAS."""
    if a.shape[0] == 1:
        return np.einsum("ij,jk->ik", a, b)
    return a @ b


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _json_bytes(value: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(value, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
