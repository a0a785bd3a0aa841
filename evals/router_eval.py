"""Routing evaluation on labelled data: a real library and index, the real router, timed.

`run_eval` builds a temporary library from a skills file (`{"name", "description"}` per line),
trains the learned router from scratch on labelled tasks (`{"query", "skill"}`, each taken as a
successful run) and ranks every test task through `rank()` — query embedding, Chroma, BM25 and
the learned part included in the timing. `run_replay` is a bandit replay: the router only ever
learns whether the skill it picked was the labelled one.

Skill names in public data (e.g. MetaTool's `PDF&URLTool`) are not valid Agent Skills names;
`skill_name` maps them deterministically (camel case and punctuation become hyphens).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import MAX_NAME, Skill, check_name

RANK_DEPTH = 10
"""Candidates ranked per test task: Recall@5 needs five, MRR is computed over these ten."""


class DataError(ValueError):
    """A routing data file is missing, malformed or inconsistent."""


def skill_name(raw: str) -> str:
    """A valid skill name for a tool name: `PDF&URLTool` -> `pdf-url-tool`."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", raw)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", s)
    s = re.sub(r"[^A-Za-z0-9]+", "-", s).lower().strip("-")
    s = re.sub(r"-+", "-", s)[:MAX_NAME].strip("-")
    return s or "skill"


def name_map(raws: Sequence[str]) -> dict[str, str]:
    """raw -> unique valid name, in input order (a clash gets -2, -3, ...)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for raw in raws:
        if raw in out:
            continue
        base = skill_name(raw)
        name, i = base, 2
        while name in used:
            suffix = f"-{i}"
            name = base[: MAX_NAME - len(suffix)].rstrip("-") + suffix
            i += 1
        if check_name(name):
            raise DataError(f"cannot make a valid skill name from {raw!r} (got {name!r})")
        out[raw] = name
        used.add(name)
    return out


def read_jsonl(path: Path | str, keys: Sequence[str]) -> list[dict[str, str]]:
    """Rows with the given string keys; DataError names the file, line and what is wrong."""
    path = Path(path)
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path}:{number} is not JSON ({e})") from None
        if not isinstance(row, dict) or any(
            not isinstance(row.get(k), str) or not row[k].strip() for k in keys
        ):
            wanted = ", ".join(f'"{k}"' for k in keys)
            raise DataError(f"{path}:{number} needs non-empty string fields {wanted}: {line[:120]}")
        rows.append({k: row[k] for k in keys})
    if not rows:
        raise DataError(f"{path} has no rows")
    return rows


@dataclass(frozen=True)
class Labelled:
    query: str
    skill: str  # the mapped skill name


def load_labelled(path: Path | str, names: Mapping[str, str]) -> list[Labelled]:
    rows = read_jsonl(path, ("query", "skill"))
    out = []
    for i, row in enumerate(rows, 1):
        name = names.get(row["skill"]) or (row["skill"] if row["skill"] in names.values() else None)
        if name is None:
            raise DataError(
                f"{path}: row {i} names the skill {row['skill']!r}, which is not in the skills "
                "file; add it there or drop the row"
            )
        out.append(Labelled(row["query"], name))
    return out


@contextmanager
def eval_library(skills_path: Path | str, workdir: Path | None = None) -> Iterator[EvalSetup]:
    """A temporary library and index holding the skills of `skills_path`."""
    from memento_skills.stores.index import SkillIndex

    rows = read_jsonl(skills_path, ("name", "description"))
    names = name_map([r["name"] for r in rows])
    base = Path(tempfile.mkdtemp(prefix="memento-router-eval-", dir=workdir))
    index = None
    try:
        library = SkillLibrary(base / "skills")
        for row in rows:
            library.create(
                Skill(
                    name=names[row["name"]],
                    description=row["description"][:1024],
                    body=f"# {row['name']}\n\n{row['description']}\n",
                    provenance="imported",
                )
            )
        index = SkillIndex(base / "index", library=library.root)
        skills = {s.name: s for s in library.skills()}
        index.sync(skills.values())
        yield EvalSetup(base, library, index, skills, names)
    finally:
        if index is not None:
            index.close()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class EvalSetup:
    root: Path
    library: SkillLibrary
    index: Any
    skills: dict[str, Skill]
    names: dict[str, str]


def evaluate(
    router: Any, setup: EvalSetup, test: Sequence[Labelled], seen: set[str], mode: str = "hybrid"
) -> dict[str, Any]:
    """Recall@1/@5, MRR@10 and the latency of `router.rank` (embedding included) per task."""
    for warm in test[:3]:  # model session, Chroma and BM25 caches
        router.rank(warm.query, setup.skills, setup.index, RANK_DEPTH, mode)
    ranks: list[int | None] = []
    latencies = []
    for item in test:
        start = time.perf_counter()
        candidates = router.rank(item.query, setup.skills, setup.index, RANK_DEPTH, mode)
        latencies.append((time.perf_counter() - start) * 1000)
        order = [c["name"] for c in candidates]
        ranks.append(order.index(item.skill) if item.skill in order else None)
    is_seen = np.asarray([t.skill in seen for t in test])
    result: dict[str, Any] = {
        **_quality(ranks, np.ones(len(test), bool)),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p95_ms": round(float(np.percentile(latencies, 95)), 2),
        "seen": _quality(ranks, is_seen),
        "unseen": _quality(ranks, ~is_seen),
    }
    return result


def _quality(ranks: Sequence[int | None], mask: np.ndarray) -> dict[str, Any]:
    picked = [r for r, m in zip(ranks, mask, strict=True) if m]
    n = len(picked)
    if not n:
        return {"recall_at_1": None, "recall_at_5": None, "mrr": None, "n_test": 0}
    return {
        "recall_at_1": round(sum(r == 0 for r in picked) / n, 4),
        "recall_at_5": round(sum(r is not None and r < 5 for r in picked) / n, 4),
        "mrr": round(sum(1 / (r + 1) for r in picked if r is not None) / n, 4),
        "n_test": n,
    }


def train_router(
    setup: EvalSetup, train: Sequence[Labelled], seed: int = 0, vectors: np.ndarray | None = None
) -> tuple[Any, Any]:
    """A LearnedRouter trained from scratch on `train`, each row a successful run."""
    from memento_skills.nodes.routing.model import Sample
    from memento_skills.nodes.routing.service import LearnedRouter

    router = LearnedRouter(seed=seed, retrain_every=0, autosave=False)
    samples = [
        Sample(t.query, t.skill, 1.0, vector=None if vectors is None else vectors[i])
        for i, t in enumerate(train)
    ]
    report = router.fit(samples, index=setup.index, skills=setup.skills)
    return router, report


def run_eval(
    skills_path: Path | str,
    train_path: Path | str,
    test_path: Path | str,
    *,
    seed: int = 0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    with eval_library(skills_path, workdir) as setup:
        train = load_labelled(train_path, setup.names)
        test = load_labelled(test_path, setup.names)
        router, report = train_router(setup, train, seed)
        result = evaluate(router, setup, test, {t.skill for t in train})
        result["n_test"] = len(test)
        result["n_train"] = len(train)
        result["train_s"] = round(report.seconds, 2)
        result["crossfit"] = report.crossfit
        return result


def run_replay(
    skills_path: Path | str,
    stream_path: Path | str,
    *,
    block: int = 500,
    temperature: float = 0.05,
    top_k: int = 5,
    seed: int = 0,
    limit: int | None = None,
    retrain_every: int = 1000,
    png: Path | None = None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Route each task in order, reward 1 only when the pick is the labelled skill, learn.

    The router never sees a label, only the reward of the skill it picked (failures become
    hard negatives). Hit rate per block of `block` tasks, beside the untrained router's greedy
    pick on the same tasks.
    """
    from memento_skills.nodes.routing.hybrid import select
    from memento_skills.nodes.routing.model import EXTRAS, POOL
    from memento_skills.nodes.routing.service import LearnedRouter

    if block < 1:
        raise DataError(f"block must be at least 1, got {block}")
    with eval_library(skills_path, workdir) as setup:
        stream = load_labelled(stream_path, setup.names)[:limit]
        router = LearnedRouter(seed=seed, retrain_every=retrain_every, autosave=False)
        learned_hits, untrained_hits = [], []
        start = time.perf_counter()
        for i, item in enumerate(stream):
            candidates = router.rank(item.query, setup.skills, setup.index, POOL + EXTRAS, "hybrid")
            untrained = max(candidates, key=lambda c: c["score"] - c.get("learned", 0.0))
            chosen = select(candidates[:top_k], temperature, f"{seed}|{i}")
            reward = 1.0 if chosen["name"] == item.skill else 0.0
            router.observe(item.query, None, chosen["name"], reward)
            learned_hits.append(reward)
            untrained_hits.append(1.0 if untrained["name"] == item.skill else 0.0)
        seconds = time.perf_counter() - start
    blocks = [
        {
            "start": s,
            "tasks": len(learned_hits[s : s + block]),
            "hit_rate": round(float(np.mean(learned_hits[s : s + block])), 4),
            "untrained_hit_rate": round(float(np.mean(untrained_hits[s : s + block])), 4),
        }
        for s in range(0, len(learned_hits), block)
    ]
    result: dict[str, Any] = {
        "tasks": len(learned_hits),
        "block": block,
        "temperature": temperature,
        "hit_rate": round(float(np.mean(learned_hits)), 4) if learned_hits else None,
        "untrained_hit_rate": round(float(np.mean(untrained_hits)), 4) if untrained_hits else None,
        "blocks": blocks,
        "seconds": round(seconds, 1),
    }
    if png is not None:
        plot_replay(blocks, png, temperature)
        result["png"] = str(png)
    return result


def plot_replay(blocks: list[dict[str, Any]], png: Path, temperature: float) -> None:
    try:
        import matplotlib
    except ImportError:
        raise DataError(
            'the replay plot needs matplotlib: pip install -e ".[evals]" (or pip install matplotlib)'
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [b["start"] + b["tasks"] for b in blocks]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [b["hit_rate"] for b in blocks], marker="o", label=f"learned (T={temperature})")
    ax.plot(x, [b["untrained_hit_rate"] for b in blocks], linestyle="--", label="untrained, greedy")
    ax.set_xlabel("tasks routed")
    ax.set_ylabel("hit rate per block")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("router bandit replay: reward 1 when the routed skill is the labelled one")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
