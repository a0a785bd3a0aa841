"""Store benchmark: a real on-disk library of N synthetic skills through the real index.

Times what an agent pays: the first full build, the resync it runs before every task (reading
the folders and Chroma's metadata), an incremental resync after a few edits, and a top-10 query
with the query embedding included. Nothing is mocked; the figures depend on this machine.
"""

from __future__ import annotations

import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import SKILL_FILE, Skill

_VERBS = [
    *("extract", "convert", "summarize", "translate", "search", "fetch", "plot", "parse"),
    *("validate", "compare", "merge", "split", "rename", "compress", "schedule", "draft"),
    *("classify", "transcribe", "tag", "deduplicate", "forecast", "audit"),
]
_OBJECTS = [
    *("pdf-tables", "csv-files", "json-logs", "web-pages", "emails", "invoices", "images"),
    *("audio-clips", "spreadsheets", "source-code", "sql-queries", "calendars", "receipts"),
    *("charts", "contracts", "datasets", "markdown-notes", "api-responses", "git-history"),
    "server-metrics",
]
_WHEN = (
    "when the user asks for it",
    "before a report is written",
    "for exact numeric answers",
    "when the input is large or messy",
    "to check facts against sources",
    "when a quick overview is needed",
    "for files in a shared folder",
    "when results must be reproducible",
)
_HOW = (
    "with a short Python script",
    "using shell tools",
    "step by step with checks",
    "by calling the web search tool",
    "with a fixed output template",
    "keeping the original formatting",
)


def synthetic_skill(i: int, rng: random.Random) -> Skill:
    verb, obj = rng.choice(_VERBS), rng.choice(_OBJECTS)
    description = (
        f"{verb.capitalize()} {obj.replace('-', ' ')} {rng.choice(_HOW)} {rng.choice(_WHEN)}. "
        f"Also {rng.choice(_VERBS)} {rng.choice(_OBJECTS).replace('-', ' ')} {rng.choice(_WHEN)}."
    )
    return Skill(
        name=f"{verb}-{obj}-{i}",
        description=description,
        body=f"# {verb} {obj}\n\n1. Read the input.\n2. {description}\n3. Check the result.\n",
        provenance="seed",
    )


def write_library(root: Path, n: int, seed: int = 0) -> list[Skill]:
    """Write N SKILL.md folders directly (faster than `create`, same files)."""
    rng = random.Random(seed)
    skills = [synthetic_skill(i, rng) for i in range(n)]
    for skill in skills:
        folder = root / skill.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SKILL_FILE).write_text(skill.to_markdown(), "utf-8")
    return skills


def _queries(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        f"please {rng.choice(_VERBS)} these {rng.choice(_OBJECTS).replace('-', ' ')} "
        f"{rng.choice(_WHEN)}"
        for _ in range(count)
    ]


def run_store_bench(n: int = 10_000, workdir: Path | None = None) -> dict[str, Any]:
    """Build, no-op resync, resync after 10 edits and query latency for N skills."""
    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="memento-bench-")) if own else Path(workdir)  # type: ignore[arg-type]
    try:
        root, index_dir = base / "skills", base / "index"
        write_library(root, n)
        library = SkillLibrary(root)
        index = SkillIndex(index_dir, library=root)
        try:
            start = time.perf_counter()
            built = index.sync(library.skills())
            build_s = time.perf_counter() - start
            if built.embedded != n or library.errors:
                raise RuntimeError(f"build indexed {built.embedded} of {n}: {library.errors[:3]}")

            start = time.perf_counter()
            noop = index.sync(library.skills())
            noop_s = time.perf_counter() - start
            if noop.embedded:
                raise RuntimeError(f"a no-op resync embedded {noop.embedded} texts")

            edits = min(10, n)
            for skill in random.Random(1).sample(library.skills(), edits):
                library.update(skill.name, description=skill.description + " Edited.")
            edited = index.sync(library.skills())

            for q in _queries(5, seed=2):  # warm the model and Chroma's caches
                index.search(q, 10)
            latencies = []
            for q in _queries(200, seed=3):
                t = time.perf_counter()
                index.search(q, 10)
                latencies.append((time.perf_counter() - t) * 1000)
        finally:
            index.close()
        return {
            "n": n,
            "build_s": round(build_s, 3),
            "noop_resync_s": round(noop_s, 4),
            "reembedded_after_edits": edited.embedded,
            "query_p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "query_p95_ms": round(float(np.percentile(latencies, 95)), 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run_store_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)))
