"""`memento router`: train the learned router from run logs, evaluate it, replay a bandit stream.

Heavy imports (numpy, Chroma, the embedder) happen inside the commands, so `memento --help`
stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from memento_skills.cli_common import DirOpt, JsonOpt, emit_json, fail, out, shared_library
from memento_skills.cli_errors import EXIT_CODES_HELP

router_app = typer.Typer(
    help="The learned skill router: train, evaluate, replay.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)

SeedOpt = Annotated[int, typer.Option(help="Seed: the same seed and data give the same router.")]


@router_app.command("train")
def train(
    from_: Annotated[
        list[Path] | None,
        typer.Option("--from", help="Run log(s) to train on (default: $MEMENTO_HOME/runs.jsonl)."),
    ] = None,
    dir: DirOpt = None,
    index: Annotated[
        Path | None,
        typer.Option(help="Index folder (default: $MEMENTO_INDEX_DIR or ~/.memento/index)."),
    ] = None,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Retrain the router from scratch on every judged run in the run log(s); saves a new version."""
    from memento_skills.nodes.routing.model import Sample
    from memento_skills.nodes.routing.service import LearnedRouter
    from memento_skills.stores.index import SkillIndex
    from memento_skills.stores.router_weights import weights_dir
    from memento_skills.stores.run_log import RunLog
    from memento_skills.stores.settings import default_index_dir, memento_home, open_library

    if dir is not None and not dir.expanduser().is_dir():
        fail(f"no skill library at {dir}: check --dir, or create one with `memento skills init`")
    shared = shared_library(dir)  # the shared store's library and run log, when one is set
    logs: list[Any] = []
    if shared is not None and not from_:
        logs, where = [shared.run_log], f"the run log of the {shared.where}"
    else:
        paths = from_ or [memento_home() / "runs.jsonl"]
        for path in paths:
            if not path.exists():
                fail(
                    f"no run log at {path}: run some tasks first (`memento run ...`) or pass --from"
                )
            logs.append(RunLog(path))
        where = ", ".join(map(str, paths))
    samples = []
    for log in logs:
        for record in log:
            task, skill = record.get("task"), record.get("skill")
            if not isinstance(task, str) or not isinstance(skill, str) or not task or not skill:
                continue
            version = record.get("skill_version")
            samples.append(
                Sample(
                    task,
                    skill,
                    float(record.get("reward") or 0.0),
                    version if isinstance(version, int) else None,
                )
            )
    if not samples:
        fail(f"no judged runs with a skill in {where}: nothing to learn from")
    library = shared.skills if shared is not None else open_library(dir)
    idx = SkillIndex(index or default_index_dir(), library=library.root)
    try:
        skills = {s.name: s for s in library.skills()}
        idx.sync(skills.values())
        router = LearnedRouter(seed=seed, autosave=False)
        router.bind(library.root)
        report = router.fit(samples, index=idx, skills=skills)
        saved = router.save()
    finally:
        idx.close()
    assert saved is not None
    result = {
        "samples": report.samples,
        "successes": report.successes,
        "failures": report.failures,
        "classes": report.classes,
        "embedded": report.embedded,
        "crossfit": report.crossfit,
        "seconds": round(report.seconds, 2),
        "version": saved.version,
        "weights": str(saved.path),
        "weights_dir": str(weights_dir(library.root)),
    }
    if json_out:
        emit_json(result)
        return
    fused = "fitted by cross-fit" if report.crossfit else "fixed rule (too little data to fit)"
    out.print(
        f"trained on {report.samples} runs ({report.successes} successes, {report.failures} "
        f"failures, {report.classes} skills with evidence) in {report.seconds:.1f}s; "
        f"fusion: {fused}; saved version {saved.version} to {saved.path}",
        highlight=False,
    )
    if report.crossfit:
        cf = report.crossfit
        out.print(
            f"cross-fit Recall@1: skills with data {cf['seen_r1']:.3f} "
            f"(untrained {cf['untrained_seen_r1']:.3f}), held-out skills {cf['unseen_r1']:.3f} "
            f"(untrained {cf['untrained_unseen_r1']:.3f})",
            highlight=False,
        )


@router_app.command("eval")
def eval_(
    skills: Annotated[Path, typer.Option(help='JSONL of {"name", "description"}.')],
    train: Annotated[Path, typer.Option(help='JSONL of {"query", "skill"}: successful runs.')],
    test: Annotated[Path, typer.Option(help='JSONL of {"query", "skill"} to evaluate on.')],
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Train from scratch on TRAIN in a temporary library of SKILLS; report quality on TEST."""
    from memento_skills.evals.router_eval import run_eval

    result = run_eval(skills, train, test, seed=seed)
    if json_out:
        emit_json(
            {
                k: result[k]
                for k in (
                    "recall_at_1",
                    "recall_at_5",
                    "mrr",
                    "p50_ms",
                    "p95_ms",
                    "n_test",
                    "seen",
                    "unseen",
                )
            }
        )
        return
    table = Table(title=f"router eval: {result['n_test']} test tasks", title_justify="left")
    for col in ("subset", "n", "Recall@1", "Recall@5", "MRR@10"):
        table.add_column(col, justify="right" if col != "subset" else "left")
    for label, part in (
        ("all", result),
        ("seen skills", result["seen"]),
        ("unseen skills", result["unseen"]),
    ):
        n = part["n_test"]
        cells = [
            "-" if part[k] is None else f"{part[k]:.3f}"
            for k in ("recall_at_1", "recall_at_5", "mrr")
        ]
        table.add_row(label, str(n), *cells)
    out.print(table)
    out.print(
        f"routing latency (embedding included): p50 {result['p50_ms']:.1f} ms, "
        f"p95 {result['p95_ms']:.1f} ms; trained on {result['n_train']} runs in {result['train_s']:.1f}s",
        highlight=False,
    )


@router_app.command("replay")
def replay(
    skills: Annotated[Path, typer.Option(help='JSONL of {"name", "description"}.')],
    stream: Annotated[Path, typer.Option(help='JSONL of {"query", "skill"}, routed in order.')],
    block: Annotated[int, typer.Option(help="Tasks per point of the learning curve.")] = 500,
    temperature: Annotated[
        float, typer.Option(help="Softmax temperature of the pick (exploration).")
    ] = 0.05,
    limit: Annotated[int | None, typer.Option(help="Route only the first N tasks.")] = None,
    retrain_every: Annotated[
        int, typer.Option(help="Full retrain after this many observed runs (0: never).")
    ] = 1000,
    png: Annotated[Path, typer.Option(help="Where to save the learning curve.")] = Path(
        "router-replay.png"
    ),
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Bandit replay: reward 1 when the routed skill is the labelled one; prints the curve."""
    from memento_skills.evals.router_eval import run_replay

    result = run_replay(
        skills,
        stream,
        block=block,
        temperature=temperature,
        seed=seed,
        limit=limit,
        retrain_every=retrain_every,
        png=png,
    )
    if json_out:
        emit_json(result)
        return
    table = Table(
        title=f"bandit replay: {result['tasks']} tasks, temperature {temperature}",
        title_justify="left",
    )
    for col in ("tasks", "hit rate", "untrained (greedy)"):
        table.add_column(col, justify="right")
    for b in result["blocks"]:
        table.add_row(
            f"{b['start'] + 1}-{b['start'] + b['tasks']}",
            f"{b['hit_rate']:.3f}",
            f"{b['untrained_hit_rate']:.3f}",
        )
    out.print(table)
    out.print(f"learning curve saved to {result['png']}", highlight=False)
