"""Router benchmark on the shared routing data (MetaTool-derived), on a dev split of train.jsonl.

The held-out evaluation queries are not in the shared folder and are never touched here. The
dev split is carved from train.jsonl two ways: by skill (some skills with data lose all of it:
their queries test cold start, next to the 40 skills that never had data) and by query (a
fraction of every other skill's queries). Compared on it, through the real library, index and
`rank()`: the untrained router in dense and hybrid mode and the learned router trained from
scratch. Then routing latency (query embedding included) at 10,000 skills: the 199 real skills
plus synthetic ones, with the same trained router.

    python -m memento_skills.evals.bench_router [--data DIR] [--seed N] [--skip-10k]
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from memento_skills.evals.router_eval import (
    EvalSetup,
    Labelled,
    eval_library,
    evaluate,
    load_labelled,
    read_jsonl,
    train_router,
)

DEFAULT_DATA = Path("/work/shared/data/routing")
BASELINES = {"bm25": 0.30, "dense": 0.55, "infonce_seen": 0.81, "infonce_unseen": 0.14}
"""Recall@1 on the held-out queries, from the data's README and the issue (for the report)."""


def carve_dev_split(
    rows: list[Labelled], *, seed: int = 0, unseen_skills: int = 30, test_fraction: float = 0.2
) -> tuple[list[Labelled], list[Labelled], list[str]]:
    """(train, test, skills whose data was all moved to test), deterministic given the seed."""
    rng = random.Random(seed)
    by_skill: dict[str, list[Labelled]] = {}
    for r in rows:
        by_skill.setdefault(r.skill, []).append(r)
    skills = sorted(by_skill)
    cold = sorted(rng.sample(skills, unseen_skills))
    train: list[Labelled] = []
    test: list[Labelled] = []
    for skill in skills:
        items = list(by_skill[skill])
        rng.shuffle(items)
        if skill in cold:
            test += items
            continue
        k = max(1, round(test_fraction * len(items)))
        test += items[:k]
        train += items[k:]
    return train, test, cold


def run_router_bench(
    data: Path = DEFAULT_DATA,
    *,
    seed: int = 0,
    unseen_skills: int = 30,
    test_fraction: float = 0.2,
    latency_skills: int = 10_000,
    latency_queries: int = 300,
    workdir: Path | None = None,
) -> dict[str, Any]:
    from memento_skills.nodes.routing.hybrid import HybridRouter

    result: dict[str, Any] = {"baselines_heldout_r1": BASELINES, "seed": seed}
    with eval_library(data / "skills.jsonl", workdir) as setup:
        rows = load_labelled(data / "train.jsonl", setup.names)
        train, test, cold = carve_dev_split(
            rows, seed=seed, unseen_skills=unseen_skills, test_fraction=test_fraction
        )
        seen = {t.skill for t in train}
        result["split"] = {
            "train": len(train),
            "test": len(test),
            "test_seen": sum(t.skill in seen for t in test),
            "test_unseen": sum(t.skill not in seen for t in test),
            "skills": len(setup.skills),
            "skills_with_data": len(seen),
            "cold_skills_carved": len(cold),
        }
        hybrid = HybridRouter()
        result["untrained_dense"] = evaluate(hybrid, setup, test, seen, mode="dense")
        result["untrained_hybrid"] = evaluate(hybrid, setup, test, seen, mode="hybrid")
        start = time.perf_counter()
        router, report = train_router(setup, train, seed)
        result["learned"] = evaluate(router, setup, test, seen)
        result["learned"]["train_s"] = round(time.perf_counter() - start, 1)
        result["learned"]["crossfit"] = report.crossfit
        vectors = dict(zip(router.model.queries, router.model.vectors, strict=True))
    if latency_skills:
        result["at_scale"] = _at_scale(
            data, train, test, seen, vectors, latency_skills, latency_queries, seed, workdir
        )
    return result


def _at_scale(
    data: Path,
    train: list[Labelled],
    test: list[Labelled],
    seen: set[str],
    vectors: dict[str, np.ndarray],
    n_skills: int,
    n_queries: int,
    seed: int,
    workdir: Path | None,
) -> dict[str, Any]:
    """The real skills plus synthetic ones up to `n_skills`; latency and quality of both routers."""
    from memento_skills.evals.bench_store import synthetic_skill
    from memento_skills.nodes.routing.hybrid import HybridRouter
    from memento_skills.stores.index import SkillIndex

    rows = read_jsonl(data / "skills.jsonl", ("name", "description"))
    base = Path(tempfile.mkdtemp(prefix="memento-router-10k-", dir=workdir))
    try:
        with eval_library(data / "skills.jsonl", base) as small:
            library, names = small.library, small.names
            rng = random.Random(seed)
            for i in range(n_skills - len(rows)):
                skill = synthetic_skill(i, rng)
                folder = library.root / skill.name
                folder.mkdir()
                (folder / "SKILL.md").write_text(skill.to_markdown(), "utf-8")
            index = SkillIndex(base / "index-10k", library=library.root)
            try:
                skills = {s.name: s for s in library.skills()}
                start = time.perf_counter()
                index.sync(skills.values())
                build_s = time.perf_counter() - start
                setup = EvalSetup(base, library, index, skills, names)
                sample = random.Random(seed).sample(test, min(n_queries, len(test)))
                untrained = evaluate(HybridRouter(), setup, sample, seen)
                from memento_skills.nodes.routing.model import Sample
                from memento_skills.nodes.routing.service import LearnedRouter

                router = LearnedRouter(seed=seed, retrain_every=0, autosave=False)
                start = time.perf_counter()
                router.fit(
                    [Sample(t.query, t.skill, 1.0, vector=vectors[t.query]) for t in train],
                    index=index,
                    skills=skills,
                )
                train_s = time.perf_counter() - start
                learned = evaluate(router, setup, sample, seen)
            finally:
                index.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {
        "skills": len(skills),
        "index_build_s": round(build_s, 1),
        "train_s": round(train_s, 1),
        "queries": len(sample),
        "untrained": untrained,
        "learned": learned,
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-10k", action="store_true", help="skip the 10,000-skill latency run")
    args = parser.parse_args()
    result = run_router_bench(
        args.data, seed=args.seed, latency_skills=0 if args.skip_10k else 10_000
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
