"""How often the learning-time search's program path finds a program the judge passes.

The real path of `Search.programs` (nodes/writing/search.py): the configured writer model
writes a program for the task, the sandbox runs it, the real judge scores its last printed line
against the task's answer, and the writer repairs it from the output and the bare verdict, within
the Context's search budget. No executor attempt comes first: the writer is shown the task with
an empty trajectory, so the figures are of the program path alone, task by task.

    python -m memento_skills.evals.bench_search --generators count_primes,gcd --per-generator 3 \
        [--seed 17] [--out FILE.jsonl]

Prints one line per task and the totals: programs found (95% Wilson CI), per generator, and the
tries, writer tokens and seconds per task. Needs a model endpoint (OPENAI_BASE_URL, MEMENTO_MODEL).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, cast

from langgraph.runtime import Runtime

from memento_skills.evals.stats import wilson
from memento_skills.evals.suites import suite_from_spec
from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import State, Verdict
from memento_skills.nodes.judge import judge
from memento_skills.nodes.writing.search import Search


def _never_replayed() -> Any:
    raise RuntimeError("the program probe runs no executor candidate")


def probe(task: Any, ctx: Context, res: Resources) -> dict[str, Any]:
    """The program path of the search on one task: what it found and what it spent."""
    state = {
        "task": task.question,
        "task_id": task.id,
        "ground_truth": task.answer,
        "attachments": list(task.attachments),
        "trajectory": [],
        "answer": None,
    }

    def judged(candidate: Any, c: Context) -> Verdict:
        return cast(
            Verdict, judge(cast(State, candidate), Runtime(context=c), resources=res)["verdict"]
        )

    search = Search(
        state,
        ctx,
        replay=_never_replayed,
        judge=judged,
        writer=lambda: res.model("writer", ctx),
        skill=None,
    )
    started = time.monotonic()
    found, stopped = search.programs(None)
    report = search.spend.report(found["found_by"] if found else None, stopped)
    last = report.get("last_program")
    return {
        "task_id": task.id,
        "group": (task.metadata or {}).get("subject") or task.id.rsplit("-", 2)[0],
        "found_by": report["found_by"],
        "stopped": stopped,
        "tries": report["tries"],
        "tokens": report["tokens"],
        "seconds": round(time.monotonic() - started, 1),
        "outcomes": report["outcomes"],
        "script": found["script"] if found else (last["script"] if last else None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", required=True, help="reasoning-gym generators, a,b,c")
    parser.add_argument("--per-generator", type=int, default=3)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--out", type=Path, help="also write each task's record here (jsonl)")
    args = parser.parse_args(argv)
    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    suite = suite_from_spec(
        {
            "suite": "reasoning-gym",
            "generators": generators,
            "train": args.per_generator * len(generators),
            "test": len(generators),
            "seed": args.seed,
        }
    )
    ctx, res = Context(), Resources()
    records: list[dict[str, Any]] = []
    out = args.out.open("w", encoding="utf-8") if args.out else None
    for task in suite.tasks("train"):
        record = probe(task, ctx, res)
        records.append(record)
        print(
            f"{record['task_id']}: {record['found_by'] or 'none'} after {record['tries']} "
            f"({'; '.join(record['outcomes'])}) {record['tokens']} tokens {record['seconds']} s",
            flush=True,
        )
        if out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
    if out:
        out.close()
    found = sum(1 for r in records if r["found_by"])
    low, high = wilson(found, len(records))
    print(f"\nprograms found: {found}/{len(records)} (95% CI {low:.2f}-{high:.2f})")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["group"]].append(r)
    for name, rs in sorted(groups.items()):
        print(f"  {name}: {sum(1 for r in rs if r['found_by'])}/{len(rs)}")
    notes = Counter(
        line.split("(", 1)[1].rstrip(")") for r in records for line in r["outcomes"] if "(" in line
    )
    n = max(1, len(records))
    print(
        f"per task: {sum(r['tries'] for r in records) / n:.1f} tries, "
        f"{sum(r['tokens'] for r in records) / n:,.0f} tokens, "
        f"{sum(r['seconds'] for r in records) / n:.0f} s; notes: {dict(notes) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
