"""The behaviour-trained router: the untrained hybrid score plus what judged runs taught.

Every judged run is a case (task, chosen skill, reward). The learned parts read the cases:

- a case memory: for each skill, how similar the query is to its nearest past success and its
  share of the query's nearest past successes; failures are kept as hard negatives;
- a lexical memory: BM25 of the query against each skill's solved tasks;
- a softmax classifier on the query embedding over the skills that have succeeded, trained from
  scratch on every retrain, with failures as negatives.

A learned part alone knows nothing of a skill without data, and a fixed mixture of it with the
untrained score trades seen skills for unseen ones, so the fusion itself is learned, per
candidate (docs/decisions.md#learned-fusion):

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

import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from memento_skills.graph.state import Candidate
from memento_skills.nodes.routing.hybrid import PRIOR_WEIGHT, HybridRouter, routable, skill_prior
from memento_skills.nodes.routing.model import (
    EXTRAS,
    OBSERVED_KEYS,
    POOL,
    RouterModel,
    Sample,
    fused,
)
from memento_skills.nodes.routing.seams import Retriever
from memento_skills.nodes.routing.training import (
    FitReport,
    UntrainedView,
    fit_fusion,
    skill_vectors,
    with_classifier,
)
from memento_skills.stores.router_weights import (
    ANY_VERSION,
    RouterWeightsError,
    RouterWeightsStore,
    Saved,
    StaleWeights,
    weights_dir,
)
from memento_skills.stores.skill import Skill

SAVE_TRIES = 8
"""Saves one observation may try while other workers' saves keep landing first."""


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
        self._context: tuple[Retriever, Mapping[str, Skill]] | None = None
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

    def refresh(self) -> bool:
        """Load the weights another process saved since this router last loaded or saved (one
        small read of the live version when nothing moved); True if it loaded them.

        Workers sharing a library learn into one router this way: route_skill calls it before
        every task, `observe` before adding a case. A router that does not save its own
        observations (`autosave=False`) keeps what it holds."""
        with self._lock:
            if self.store is None or not self.autosave:
                return False
            live = self.store.live_version()
            if live is None or live == self.version:
                return False
            try:
                self.reload()
            except RouterWeightsError as e:
                self._disable(str(e))
                self.version = live  # not read again until another save
                return False
            return True

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

    def save(self, *, checked: bool = False) -> Saved | None:
        """Save the weights held and make them live. `checked`: only over the version this
        router last loaded or saved (StaleWeights if another worker saved since)."""
        with self._lock:
            if self.store is None or self.model is None:
                return None
            over = self.version if checked else ANY_VERSION
            saved = self.store.save(self.model.arrays(), self.model.header(), over=over)
            self.version = saved.version
            return saved

    # -- routing -------------------------------------------------------------------------

    def rank(
        self, query: str, skills: Mapping[str, Skill], index: Retriever, k: int, mode: str
    ) -> list[Candidate]:
        skills = routable(skills)  # a deprecated skill is no candidate, learned or not
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
            for _ in range(SAVE_TRIES):
                try:
                    self._observe_once(query, vector, skill, reward, version, key, index)
                    return
                except StaleWeights:  # another worker saved in between: add it to theirs
                    continue
            raise RouterWeightsError(
                f"the router's weights kept moving under {SAVE_TRIES} saves of one observation; "
                "too many workers save at once"
            )

    def _observe_once(
        self,
        query: str,
        vector: np.ndarray | None,
        skill: str,
        reward: float,
        version: int | None,
        key: str,
        index: Any | None,
    ) -> None:
        """`observe` on the weights live now; StaleWeights when another save beat its own."""
        with self._lock:
            self.refresh()  # add the case to what other workers taught since, not to an old state
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
            since_fit = self._since_fit
            self.model = model
            self._since_fit += 1
            try:
                if self.retrain_every and self._since_fit >= self.retrain_every:
                    self.retrain(checked=True)
                elif self.autosave:
                    self.save(checked=True)
            except StaleWeights:
                self._since_fit = since_fit  # the next try counts it once
                self.version = None  # `refresh` loads the live weights whatever they are
                raise

    def retrain(self, *, checked: bool = False) -> FitReport | None:
        """Refit the classifier and the parameters on every case held (`checked`: see save)."""
        with self._lock:
            if self.model is None:
                return None
            index, skills = self._context or (None, None)
            report = self._refit(self.model, index, skills, embedded=0)
            if self.autosave:
                self.save(checked=checked)
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
        index: Retriever | None,
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
        prior = skill_prior(skills[name])
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
