"""Graph benchmark: what the graph itself costs per task, and what the executor's prompt costs.

Overhead: every part is real (the library folders, the Chroma + BM25 index, the query embedding,
routing, the execute subgraph with its workspace and tools, the judge, the write phase and its
run log) except the model, which answers "42" at once, so the time measured is the graph's alone.

Prompt size: the executor's prompt holds the selected skill only (progressive disclosure), so it
must not grow with the library. It is measured with 10 and with 1,000 synthetic skills written
as real folders, beside what a prompt listing every skill's name and description would need.
The unit is the scripted model's: whitespace-separated words of the messages (tool schemas not
included), the same unit for every figure here; real tokenizers give roughly 1.3-1.5x more.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memento_skills.evals.bench_store import write_library
from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context, WritePolicy
from memento_skills.graph.models import ROLE_KEY, UsageTracker
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import Skill
from memento_skills.testing import ScriptedChatModel

ANSWER = "42"
TOKEN_UNIT = "whitespace-separated words of the prompt messages (tool schemas excluded)"


def _words(text: str) -> int:
    """The scripted model's token unit (see memento_skills.testing), so listing and prompts compare."""
    return len(text.split())


def listing_words(skills: Sequence[Skill]) -> int:
    """A prompt section naming every skill with its description, as a list-all design would."""
    return _words("\n".join(f"- {s.name}: {s.description}" for s in skills))


def _tasks(skills: Sequence[Skill], count: int) -> list[str]:
    """Tasks phrased after the first skills' descriptions, so routing has a real match."""
    out = []
    for i in range(count):
        skill = skills[i % len(skills)]
        first = skill.description.split(". ")[0].rstrip(".")
        out.append(f"Task {i}: please {first[0].lower()}{first[1:]}, and report the count.")
    return out


def _run_library(
    base: Path, n: int, tasks: int, warmup: int, write_policy: WritePolicy
) -> dict[str, Any]:
    """Run `tasks` tasks through the graph over an N-skill library; time and prompt sizes."""
    root = base / f"skills-{n}"
    skills = write_library(root, n)
    library = SkillLibrary(root)
    index = SkillIndex(base / f"index-{n}", library=root)
    try:
        start = time.perf_counter()
        index.sync(library.skills())
        index_s = time.perf_counter() - start
        executor = ScriptedChatModel(
            script=[ANSWER] * (warmup + tasks), metadata={ROLE_KEY: "executor"}
        )
        # the judge decides exactly against the gold here; the writer is never asked (no failures)
        idle = ScriptedChatModel(script=[])
        graph = build_graph(
            chat_models={"executor": executor, "judge": idle, "writer": idle, "router": idle},
            library=library,
            index=index,
        )
        ctx = Context(
            write_policy=write_policy,
            max_attempts=1,
            web_search=False,
            min_route_score=0.0,  # every task routes to a skill, so every prompt carries one
            workspace_dir=str(base / "ws"),
            run_log=str(base / f"runs-{n}.jsonl"),
        )
        questions = _tasks(skills[: min(10, n)], warmup + tasks)
        times_ms: list[float] = []
        cpu_ms: list[float] = []
        prompt_tokens: list[int] = []
        selected: list[str | None] = []
        for i, question in enumerate(questions):
            usage = UsageTracker(prices={})
            t, cpu = time.perf_counter(), time.process_time()
            out = graph.invoke(
                {"task": question, "task_id": f"bench-{i}", "ground_truth": ANSWER},
                config={"callbacks": [usage]},
                context=ctx,
            )
            elapsed = (time.perf_counter() - t) * 1000
            elapsed_cpu = (time.process_time() - cpu) * 1000
            if not (out.get("verdict") or {}).get("passed"):
                raise RuntimeError(f"benchmark task {i} did not pass: {out.get('verdict')}")
            if i >= warmup:
                times_ms.append(elapsed)
                cpu_ms.append(elapsed_cpu)
                prompt_tokens.append(usage.summary()["roles"]["executor"]["input_tokens"])
                selected.append(out.get("selected_skill"))
        return {
            "times_ms": times_ms,
            "cpu_ms": cpu_ms,
            "prompt_tokens": prompt_tokens,
            "selected": selected,
            "listing": listing_words(library.skills()),
            "index_s": index_s,
        }
    finally:
        index.close()


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_graph_bench(
    tasks: int = 30,
    warmup: int = 5,
    sizes: tuple[int, int] = (10, 1000),
    write_policy: WritePolicy = "off",
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Graph overhead per task (ms) and executor prompt size at two library sizes.

    Keys: overhead_ms_p50 (small library), overhead_ms_p50_<large>, prompt_tokens_<n> for both
    sizes (mean per task), listing_tokens_<large>; plus spreads and context for the report.
    """
    small, large = sizes
    if not 0 < small < large:
        raise ValueError(f"sizes must be two library sizes, small then large; got {sizes}")
    if tasks < 1 or warmup < 0:
        raise ValueError(f"tasks must be >= 1 and warmup >= 0; got tasks={tasks}, warmup={warmup}")
    own = workdir is None
    base = (
        Path(workdir)
        if workdir is not None
        else Path(tempfile.mkdtemp(prefix="memento-bench-graph-"))
    )
    try:
        lo = _run_library(base, small, tasks, warmup, write_policy)
        hi = _run_library(base, large, tasks, warmup, write_policy)
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)
    prompt_lo = statistics.mean(lo["prompt_tokens"])
    prompt_hi = statistics.mean(hi["prompt_tokens"])
    return {
        "overhead_ms_p50": round(statistics.median(lo["times_ms"]), 2),
        "overhead_ms_p95": round(_p(lo["times_ms"], 0.95), 2),
        "overhead_cpu_ms_p50": round(statistics.median(lo["cpu_ms"]), 2),
        f"overhead_ms_p50_{large}": round(statistics.median(hi["times_ms"]), 2),
        f"overhead_cpu_ms_p50_{large}": round(statistics.median(hi["cpu_ms"]), 2),
        f"prompt_tokens_{small}": round(prompt_lo, 1),
        f"prompt_tokens_{large}": round(prompt_hi, 1),
        "prompt_tokens_diff_pct": round(100 * abs(prompt_hi - prompt_lo) / prompt_lo, 2),
        "same_skill_share": round(
            sum(a == b for a, b in zip(lo["selected"], hi["selected"], strict=True)) / tasks, 3
        ),
        f"listing_tokens_{large}": hi["listing"],
        "token_unit": TOKEN_UNIT,
        "tasks": tasks,
        "warmup": warmup,
        "write_policy": write_policy,
        f"index_build_s_{large}": round(hi["index_s"], 2),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_graph_bench(), indent=2))
