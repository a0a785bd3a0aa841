"""Scale-out benchmark: what one shared library costs per task as it grows and as workers share it.

Figures, each measured through the real graph (folders or Postgres, the Chroma + BM25 index, the
query embedding, routing, the execute subgraph, the judge, the write phase, the run log) with a
model that answers at once, so the time is the graph's and the store's alone:

- graph overhead per task (p50, ms) at each library size (default 10, 1,000 and 10,000 skills)
  on each backend: the folder, and the shared Postgres store when a database is given; once
  with nothing written, once with each task writing its utility count (as when learning);
- route p50 (ms): the route_skill node alone, read from the graph's own callbacks, at the
  largest size, both backends side by side in one run;
- a write's p50 (ms): one `update` of a skill's body through the store, at the largest size;
- judged tasks per second with 1, 2 and 4 worker processes sharing one library (utility counts
  written to it on every task), each worker its own graph, index folder and process.

`memento bench scale` runs it (`--json` for one object); `python -m memento_skills.evals.bench_scale`
too. Timing depends on the machine: run it on a quiet one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from memento_skills.evals.bench_store import synthetic_skill, write_library
from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context, WritePolicy
from memento_skills.graph.models import ROLE_KEY
from memento_skills.graph.resources import Resources
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import Skill
from memento_skills.stores.skill_store import SkillStore
from memento_skills.testing import ScriptedChatModel

ANSWER = "42"
SIZES = (10, 1000, 10_000)
WORKERS = (1, 2, 4)
WORKER_LIBRARY = 100  # skills in the library the workers share
WORKER_START_S = 600.0  # a worker opens its store and embeds the library before the clock starts


# ---------------------------------------------------------------------------------- stores


def store_spec(backend: str, base: Path, n: int, store_url: str = "") -> dict[str, Any]:
    """Where an N-skill library of `backend` lives, as JSON a worker process can open."""
    if backend == "folder":
        return {"backend": "folder", "root": str(base / f"skills-{n}")}
    return {
        "backend": "postgres",
        "url": store_url,
        "library": f"bench-{n}-{uuid.uuid4().hex[:8]}",
        "cache": str(base / "pg-cache"),
    }


def open_store(spec: dict[str, Any], *, cache: str | None = None) -> SkillStore:
    """Open the store `spec` names (each process its own; `cache`: this process's own folder)."""
    if spec["backend"] == "folder":
        return SkillLibrary(spec["root"])
    from memento_skills.stores.pg_store import PgSkillStore

    folder = Path(cache or spec["cache"]) / spec["library"]
    return PgSkillStore(spec["url"], library=spec["library"], cache_dir=folder)


def fill(spec: dict[str, Any], n: int) -> list[Skill]:
    """Give the library of `spec` N synthetic skills (the folder: written as files directly)."""
    if spec["backend"] == "folder":
        return write_library(Path(spec["root"]), n)
    store = open_store(spec)
    import random

    rng = random.Random(0)
    skills = [synthetic_skill(i, rng) for i in range(n)]
    for skill in skills:
        store.create(skill)
    return skills


def postgres_unavailable(store_url: str) -> str | None:
    """Why the Postgres backend cannot be measured (None: it can)."""
    if not store_url:
        return "no database given (--store-url or $MEMENTO_STORE_URL)"
    try:
        import memento_skills.stores.pg_store  # noqa: F401
    except ImportError as e:
        return (
            f"the Postgres backend cannot be imported ({e}): pip install memento-skills[postgres]"
        )
    return None


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A real Postgres from the `pgserver` wheel in a temp folder, for a benchmark run only."""
    import pgserver  # the dev extra ships it
    import psycopg

    with tempfile.TemporaryDirectory(prefix="memento-bench-pg-") as folder:
        server = pgserver.get_server(Path(folder) / "pgdata", cleanup_mode="delete")
        try:
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                conn.execute("CREATE DATABASE memento")
            yield server.get_uri("memento")
        finally:
            server.cleanup()


# ---------------------------------------------------------------------------------- graph


class NodeTimer(BaseCallbackHandler):
    """Wall time of each run of one graph node, from the callbacks LangGraph emits for it."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.started: dict[UUID, float] = {}
        self.ms: list[float] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if kwargs.get("name") == self.node:
            self.started[run_id] = time.perf_counter()

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        start = self.started.pop(run_id, None)
        if start is not None:
            self.ms.append((time.perf_counter() - start) * 1000)


def _tasks(skills: Sequence[Skill], count: int, prefix: str = "") -> list[str]:
    """Tasks phrased after the first skills' descriptions, so routing has a real match."""
    out = []
    for i in range(count):
        skill = skills[i % len(skills)]
        first = skill.description.split(". ")[0].rstrip(".")
        out.append(f"{prefix}Task {i}: please {first[0].lower()}{first[1:]}, and report it.")
    return out


def _graph(store: SkillStore, index: SkillIndex, answers: int) -> tuple[Any, Resources]:
    executor = ScriptedChatModel(script=[ANSWER] * answers, metadata={ROLE_KEY: "executor"})
    idle = ScriptedChatModel(script=[])  # exact judging against the gold; no writer call on a pass
    resources = Resources(
        chat_models={"executor": executor, "judge": idle, "writer": idle, "router": idle},
        library=store,  # any SkillStore backs the graph
        index=index,
    )
    return build_graph(resources=resources), resources


def _context(base: Path, tag: str, write_policy: WritePolicy) -> Context:
    return Context(
        write_policy=write_policy,
        max_attempts=1,
        web_search=False,
        min_route_score=0.0,  # every task routes to a skill
        workspace_dir=str(base / f"ws-{tag}"),
        run_log=str(base / f"runs-{tag}.jsonl"),
    )


def run_tasks(
    graph: Any, ctx: Context, questions: Sequence[str], warmup: int, tag: str
) -> tuple[list[float], list[float]]:
    """(task ms, route_skill ms) of every task after the first `warmup`; each must pass."""
    task_ms: list[float] = []
    route_ms: list[float] = []
    for i, question in enumerate(questions):
        timer = NodeTimer("route_skill")
        start = time.perf_counter()
        out = graph.invoke(
            {"task": question, "task_id": f"{tag}-{i}", "ground_truth": ANSWER},
            config={"callbacks": [timer]},
            context=ctx,
        )
        elapsed = (time.perf_counter() - start) * 1000
        if not (out.get("verdict") or {}).get("passed"):
            raise RuntimeError(f"benchmark task {tag}-{i} did not pass: {out.get('verdict')}")
        if i >= warmup:
            task_ms.append(elapsed)
            route_ms.extend(timer.ms)
    return task_ms, route_ms


def measure_size(
    backend: str, base: Path, n: int, tasks: int, warmup: int, writes: int, store_url: str
) -> dict[str, Any]:
    """Overhead and route time per task, then a write's time, on an N-skill library."""
    spec = store_spec(backend, base, n, store_url)
    skills = fill(spec, n)
    store = open_store(spec)
    index = SkillIndex(base / f"index-{backend}-{n}", library=store.root)
    try:
        start = time.perf_counter()
        index.sync(store.skills())
        index_s = time.perf_counter() - start
        graph, resources = _graph(store, index, 2 * (warmup + tasks))
        ctx = _context(base, f"{backend}-{n}", "off")  # nothing written while timing tasks
        questions = _tasks(skills[: min(10, n)], warmup + tasks)
        task_ms, route_ms = run_tasks(graph, ctx, questions, warmup, f"{backend}-{n}")
        scans = resources.scans
        # as when learning: every task writes its skill's utility count, so the next task
        # finds the generation moved (and reloads that one skill)
        counting = _context(base, f"{backend}-{n}-counted", "full")
        counted_ms, _ = run_tasks(graph, counting, questions, warmup, f"{backend}-{n}-counted")
        write_ms: list[float] = []
        target = skills[0].name
        for i in range(writes):
            start = time.perf_counter()
            store.update(target, body=f"{skills[0].body}\nRevision {i}.\n")
            write_ms.append((time.perf_counter() - start) * 1000)
        return {
            "overhead_ms_p50": round(statistics.median(task_ms), 2),
            "route_ms_p50": round(statistics.median(route_ms), 2),
            "overhead_counted_ms_p50": round(statistics.median(counted_ms), 2),
            "write_ms_p50": round(statistics.median(write_ms), 2) if write_ms else None,
            "scans": scans,  # full scans while no write landed (1: the first look)
            "scans_counted": resources.scans - scans,
            "index_build_s": round(index_s, 2),
        }
    finally:
        index.close()


# ---------------------------------------------------------------------------------- workers


def worker_main(job: dict[str, Any]) -> None:
    """One worker process: open the shared store, sync an own index, say ready, wait for go,
    run its tasks (utility counts written to the shared library), report its times."""
    base = Path(job["base"])
    store = open_store(job["spec"], cache=job.get("cache"))
    index = SkillIndex(Path(job["index"]), library=store.root)
    try:
        index.sync(store.skills())
        skills = sorted(store.skills(), key=lambda s: s.name)
        graph, _ = _graph(store, index, job["tasks"] + 1)
        ctx = _context(base, job["tag"], "full")
        questions = _tasks(skills[:10], job["tasks"] + 1, prefix=f"[{job['tag']}] ")
        run_tasks(graph, ctx, questions[:1], 0, f"{job['tag']}-warm")  # imports, first embed
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        start = time.perf_counter()
        task_ms, _ = run_tasks(graph, ctx, questions[1:], 0, job["tag"])
        wall = time.perf_counter() - start
        print(json.dumps({"tasks": len(task_ms), "seconds": wall}), flush=True)
    finally:
        index.close()


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    # a selector, not select(): select() refuses a descriptor above 1023, which a long-lived
    # process (a test session, an app embedding the benchmark) can hold
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout_s)
    line = proc.stdout.readline() if ready else ""
    if not line:
        raise RuntimeError(f"a benchmark worker gave no answer (exit {proc.poll()})")
    return line


def measure_workers(
    backend: str, base: Path, counts: Sequence[int], tasks: int, store_url: str
) -> dict[str, Any]:
    """Judged tasks per second with each count of worker processes on one shared library."""
    spec = store_spec(backend, base / f"shared-{backend}", WORKER_LIBRARY, store_url)
    Path(base / f"shared-{backend}").mkdir(parents=True, exist_ok=True)
    fill(spec, WORKER_LIBRARY)
    out: dict[str, Any] = {}
    for count in counts:
        procs: list[subprocess.Popen[str]] = []
        try:
            for w in range(count):
                job = {
                    "spec": spec,
                    "base": str(base),
                    "index": str(base / f"worker-index-{backend}-{w}"),
                    "cache": str(base / f"worker-cache-{backend}-{w}"),
                    "tasks": tasks,
                    "tag": f"{backend}-w{count}-{w}",
                }
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "memento_skills.evals.bench_scale", "--worker"],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                        env={**os.environ, "MEMENTO_BENCH_JOB": json.dumps(job)},
                    )
                )
            for proc in procs:
                if _read_line(proc, WORKER_START_S).strip() != "ready":
                    raise RuntimeError("a benchmark worker did not start")
            start = time.perf_counter()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            reports = [json.loads(_read_line(proc, WORKER_START_S)) for proc in procs]
            wall = time.perf_counter() - start
        finally:
            for proc in procs:
                if proc.stdin is not None:
                    proc.stdin.close()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        done = sum(r["tasks"] for r in reports)
        out[f"tasks_per_s_{count}_workers"] = round(done / wall, 2)
    return out


# ---------------------------------------------------------------------------------- the run


def run_scale_bench(
    sizes: Sequence[int] = SIZES,
    tasks: int = 20,
    warmup: int = 3,
    writes: int = 20,
    workers: Sequence[int] = WORKERS,
    worker_tasks: int = 20,
    store_url: str = "",
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Every figure for each backend measured: `folder` always, `postgres` with `store_url`.

    Keys per backend `<b>`: `<b>.overhead_ms_p50_<n>`, `<b>.route_ms_p50_<n>`,
    `<b>.write_ms_p50_<n>` per size, `<b>.tasks_per_s_<k>_workers`; then `overhead_ratio_<b>`
    (largest size over smallest) and `route_ratio_postgres_over_folder` at the largest size.
    """
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 1:
        raise ValueError(f"sizes must be library sizes >= 1; got {list(sizes)}")
    if tasks < 1 or warmup < 0 or writes < 0 or worker_tasks < 1:
        raise ValueError(
            f"tasks and worker_tasks must be >= 1, warmup and writes >= 0; got tasks={tasks}, "
            f"warmup={warmup}, writes={writes}, worker_tasks={worker_tasks}"
        )
    if any(k < 1 for k in workers):
        raise ValueError(f"worker counts must be >= 1; got {list(workers)}")
    own = workdir is None
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="memento-bench-scale-"))
    backends = ["folder"]
    result: dict[str, Any] = {"sizes": list(sizes), "tasks": tasks, "cpus": os.cpu_count()}
    why = postgres_unavailable(store_url)
    if why is None:
        backends.append("postgres")
    else:
        result["postgres_skipped"] = why
    try:
        for backend in backends:
            for n in sizes:
                figures = measure_size(backend, base, n, tasks, warmup, writes, store_url)
                for key, value in figures.items():
                    result[f"{backend}.{key}_{n}"] = value
            if workers:
                for key, value in measure_workers(
                    backend, base, workers, worker_tasks, store_url
                ).items():
                    result[f"{backend}.{key}"] = value
            lo, hi = sizes[0], sizes[-1]
            result[f"overhead_ratio_{backend}_{hi}_over_{lo}"] = round(
                result[f"{backend}.overhead_ms_p50_{hi}"]
                / result[f"{backend}.overhead_ms_p50_{lo}"],
                2,
            )
        if "postgres" in backends:
            hi = sizes[-1]
            result[f"route_ratio_postgres_over_folder_{hi}"] = round(
                result[f"postgres.route_ms_p50_{hi}"] / result[f"folder.route_ms_p50_{hi}"], 2
            )
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)
    return result


def table(result: dict[str, Any]) -> str:
    """The figures as a plain-text table: one row per figure, one column per backend."""
    rows: dict[str, dict[str, Any]] = {}
    extra: list[tuple[str, Any]] = []
    for key, value in result.items():
        backend, dot, figure = key.partition(".")
        if dot:
            rows.setdefault(figure, {})[backend] = value
        else:
            extra.append((key, value))
    backends = sorted({b for r in rows.values() for b in r}, key=["folder", "postgres"].index)
    width = max([len(k) for k in rows] + [6])
    lines = [f"{'figure':<{width}}  " + "  ".join(f"{b:>10}" for b in backends)]
    for figure, by in rows.items():
        cells = "  ".join(f"{'' if by.get(b) is None else by.get(b)!s:>10}" for b in backends)
        lines.append(f"{figure:<{width}}  {cells}")
    lines.append("")
    lines.extend(f"{k}: {v}" for k, v in extra)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--workers", default=",".join(map(str, WORKERS)))
    parser.add_argument("--worker-tasks", type=int, default=20)
    parser.add_argument("--store-url", default=os.environ.get("MEMENTO_STORE_URL", ""))
    parser.add_argument("--pgserver", action="store_true", help="start a throwaway Postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(json.loads(os.environ["MEMENTO_BENCH_JOB"]))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    counts = [int(s) for s in args.workers.split(",") if s]
    with throwaway_postgres() if args.pgserver else contextlib.nullcontext(args.store_url) as url:
        result = run_scale_bench(
            sizes, tasks=args.tasks, workers=counts, worker_tasks=args.worker_tasks, store_url=url
        )
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
