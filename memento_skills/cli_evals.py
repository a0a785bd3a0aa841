"""CLI commands for the evals: `suites show`, `learn`, `eval`, `report`, `leaks`.

Registered on the main app by `register(app)`. Heavy imports (the graph, reasoning-gym,
matplotlib) stay inside the commands so `memento --help` stays fast.

Errors propagate to `main()` in cli.py (one line, the exit codes of cli_errors.py); the leak
check exits with ExitCode.LEAK (the run's numbers must not be trusted).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from memento_skills.cli_common import (
    JsonOpt,
    SearchSecondsOpt,
    SearchTokensOpt,
    SearchTriesOpt,
    emit_json,
    err,
    fail,
    out,
    search_budget,
)
from memento_skills.cli_errors import EXIT_CODES_HELP, ExitCode

suites_app = typer.Typer(
    help="Eval suites: GAIA, HLE, reasoning-gym, your own jsonl.", epilog=EXIT_CODES_HELP
)

SuiteOpt = Annotated[
    str | None,
    typer.Option("--suite", help="gaia, hle, reasoning-gym or jsonl."),
]
PathOpt = Annotated[
    Path | None,
    typer.Option(
        "--path", help="The suite's data: GAIA metadata.jsonl folder, HLE jsonl/parquet, a jsonl."
    ),
]
GeneratorsOpt = Annotated[
    str | None,
    typer.Option("--generators", help="reasoning-gym generators, comma-separated."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the split (and of generation).")]
TrainOpt = Annotated[
    int | None,
    typer.Option(
        "--train",
        help="Train tasks: reasoning-gym generates this many; file suites use the first N.",
    ),
]
TestOpt = Annotated[
    int | None,
    typer.Option(
        "--test", help="Test tasks: reasoning-gym generates this many; file suites use the first N."
    ),
]
FractionOpt = Annotated[
    float | None,
    typer.Option(
        "--train-fraction", help="File suites: share of tasks in train (default 100/165, GAIA's)."
    ),
]
RunDirOpt = Annotated[
    Path,
    typer.Option("--run-dir", help="The run's folder: its own library, index, results, report."),
]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", help="Tasks run at once.")]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible endpoint (default: env or local model)."),
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Model name for executor, judge and writer.")
]
WebOpt = Annotated[
    bool | None,
    typer.Option("--web-search/--no-web-search", help="Offer web search (default: GAIA only)."),
]


def announce_sandbox() -> None:
    """At start-up: say when the strong sandbox is not in force; refuse a level it cannot give."""
    from memento_skills.nodes.execution.sandbox import SandboxError, isolation_notice

    try:
        notice = isolation_notice()
    except SandboxError as e:
        fail(str(e))
    if notice:
        err.print(notice, highlight=False, markup=False)


def _suite(
    suite: str | None,
    path: Path | None,
    generators: str | None,
    seed: int,
    train: int | None,
    test: int | None,
    fraction: float | None,
    run_dir: Path | None = None,
) -> Any:
    from memento_skills.evals.suites import load_suite, suite_from_spec

    if suite is None:
        config = run_dir / "config.json" if run_dir is not None else None
        if config is None or not config.exists():
            fail("--suite is required (gaia, hle, reasoning-gym or jsonl)")
        assert config is not None
        return suite_from_spec(json.loads(config.read_text(encoding="utf-8"))["suite"])
    return load_suite(
        suite,
        path=path,
        generators=generators,
        seed=seed,
        train=train,
        test=test,
        train_fraction=fraction,
    )


def _is_file_suite(suite: Any) -> bool:
    return suite.name != "reasoning-gym"


def _settings(**kw: Any) -> Any:
    from memento_skills.evals.learning import RunSettings

    return RunSettings(**{k: v for k, v in kw.items() if v is not None})


def _finish(outcome: Any, run_dir: Path, report: bool, json_out: bool) -> None:
    summary = {
        "run_dir": str(run_dir),
        "phases": [
            {
                "phase": p.phase,
                "split": p.split,
                "round": p.round,
                "total": p.total,
                "correct": p.correct,
                "accuracy": p.accuracy,
                "ran": p.ran,
            }
            for p in outcome.phases
        ],
        "leaks": [leak.to_dict() for leak in outcome.leaks],
    }
    if report:
        from memento_skills.evals.report import write_report

        path, _ = write_report(run_dir)
        summary["report"] = str(path)
        if not json_out:
            err.print(f"report: {path}", highlight=False)
    if json_out:
        emit_json(summary)
    _exit_on_leaks(outcome.leaks, run_dir)


def _exit_on_leaks(found: list[Any], run_dir: Path) -> None:
    if not found:
        return
    err.print(
        f"[bold red]LEAK CHECK FAILED:[/] {len(found)} gold answer(s) of the suite are in the "
        f"library {run_dir / 'skills'}; these results must not be trusted:",
        highlight=False,
    )
    for leak in found[:50]:
        err.print(f"  {leak}", highlight=False, markup=False)
    raise typer.Exit(ExitCode.LEAK)


class _Interrupts:
    """The first SIGINT/SIGTERM stops a run gently: running tasks finish and are recorded.
    The second stops it at once: worker threads cannot be interrupted, and the interpreter
    would otherwise wait for them at exit; their tasks simply rerun on resume."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt
        err.print("stopped at once: the tasks that were running will rerun on resume")
        sys.stderr.flush()
        os._exit(130)


def _run(action: Any) -> Any:
    """SIGTERM (`kill`, a CI timeout, `docker stop`) stops a run as Ctrl-C does, keeping every
    finished result; other errors go on to `main()`, which prints them as one line."""
    handler = _Interrupts()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return action()
    except KeyboardInterrupt:
        err.print("interrupted: every finished task is recorded; rerun the same command to resume")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)


@suites_app.command("show")
def suites_show(
    suite: Annotated[str, typer.Argument(help="gaia, hle, reasoning-gym or jsonl.")],
    path: PathOpt = None,
    generators: GeneratorsOpt = None,
    seed: SeedOpt = 0,
    train: TrainOpt = None,
    test: TestOpt = None,
    train_fraction: FractionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Counts per split and per level/subject."""

    def show() -> None:
        s = _suite(suite, path, generators, seed, train, test, train_fraction)
        counts = s.counts()
        if json_out:
            emit_json(counts)
            return
        table = Table(title=f"{s.name}: {counts['total']} tasks", title_justify="left")
        table.add_column(counts["group_key"])
        for split in counts["splits"]:
            table.add_column(split, justify="right")
        table.add_column("total", justify="right")
        for group, n in counts["groups"].items():
            table.add_row(
                group,
                *(str(counts["split_groups"][sp].get(group, 0)) for sp in counts["splits"]),
                str(n),
            )
        table.add_row(
            "[bold]all[/]", *(str(n) for n in counts["splits"].values()), str(counts["total"])
        )
        out.print(table)
        for why, n in counts["skipped"].items():
            out.print(f"skipped {n}: {why}")

    _run(show)


def learn(
    run_dir: RunDirOpt,
    suite: SuiteOpt = None,
    path: PathOpt = None,
    generators: GeneratorsOpt = None,
    seed: SeedOpt = 0,
    train: TrainOpt = None,
    test: TestOpt = None,
    train_fraction: FractionOpt = None,
    rounds: Annotated[
        int, typer.Option("--rounds", help="Training rounds over the train split.")
    ] = 1,
    train_per_round: Annotated[
        int | None,
        typer.Option(
            "--train-per-round",
            help="Train each round on its own block of this many train tasks (disjoint "
            "rounds; --train must be at least rounds x this). Default: every round "
            "revisits the whole train split.",
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="read-only (no writes), read-write (create skills), read-write-optimize (create, refine, gate).",
        ),
    ] = "read-write-optimize",
    eval_test: Annotated[
        bool,
        typer.Option(
            "--eval-test/--no-eval-test",
            help="Evaluate the test split before and after each round.",
        ),
    ] = True,
    concurrency: ConcurrencyOpt = 1,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", help="Attempts per training task.")
    ] = 2,
    temperature: Annotated[
        float, typer.Option("--temperature", help="Router temperature while training.")
    ] = 0.1,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Tool-calling steps per attempt.")
    ] = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    web_search: WebOpt = None,
    search_tries: SearchTriesOpt = None,
    search_tokens: SearchTokensOpt = None,
    search_seconds: SearchSecondsOpt = None,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write report.md at the end.")
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """Learn over training rounds; resumable: rerun the same command after an interruption."""
    from memento_skills.evals.learning import MODES, LearningRun

    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    budget = search_budget(search_tries, search_tokens, search_seconds)
    announce_sandbox()
    from memento_skills.stores.settings import STORE_URL_ENV, store_url_env

    if store_url_env().strip() and not json_out:  # said, not silently ignored
        err.print(
            f"note: a learning run keeps its own library in {run_dir / 'skills'} ({STORE_URL_ENV} "
            f"is not used); once you accept it: memento skills load {run_dir / 'skills'}",
            highlight=False,
            markup=False,
        )

    def go() -> Any:
        s = _suite(suite, path, generators, seed, train, test, train_fraction, run_dir)
        run = LearningRun(
            s,
            run_dir,
            settings=_settings(
                concurrency=concurrency,
                max_attempts=max_attempts,
                train_temperature=temperature,
                max_steps=max_steps,
                base_url=base_url,
                model=model,
                web_search=web_search,
                **budget,
            ),
            progress=not json_out,
            log=lambda line: err.print(line, highlight=False, markup=False),
        )
        limits = (train, test) if _is_file_suite(s) else (None, None)
        return run.learn(
            rounds,
            mode=mode,
            train_limit=limits[0],
            test_limit=limits[1],
            eval_test=eval_test,
            train_per_round=train_per_round,
        )

    _finish(_run(go), run_dir, report, json_out)


def evaluate(
    run_dir: RunDirOpt,
    suite: SuiteOpt = None,
    path: PathOpt = None,
    generators: GeneratorsOpt = None,
    seed: SeedOpt = 0,
    train: TrainOpt = None,
    test: TestOpt = None,
    train_fraction: FractionOpt = None,
    split: Annotated[str, typer.Option("--split", help="The split to score.")] = "test",
    writes: Annotated[
        bool, typer.Option("--writes", help="Online learning: keep writing skills during the eval.")
    ] = False,
    mode: Annotated[
        str, typer.Option("--mode", help="With --writes: read-write or read-write-optimize.")
    ] = "read-write-optimize",
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N tasks.")] = None,
    concurrency: ConcurrencyOpt = 1,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Tool-calling steps per attempt.")
    ] = None,
    base_url: BaseUrlOpt = None,
    model: ModelOpt = None,
    web_search: WebOpt = None,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write report.md at the end.")
    ] = True,
    library_from: Annotated[
        Path | None,
        typer.Option(
            "--library-from",
            help="A new run dir starts with a copy of this run dir's library (transfer).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Score a split with the run dir's library (one attempt per task, no writes unless --writes)."""
    from memento_skills.evals.learning import MODES, LearningRun

    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if library_from is not None and not (library_from.expanduser() / "skills").is_dir():
        # refused before the new run dir is made, so a typo leaves nothing behind
        fail(f"--library-from {library_from} is not a run dir with a library (no skills/ folder)")
    announce_sandbox()

    def go() -> Any:
        s = _suite(suite, path, generators, seed, train, test, train_fraction, run_dir)
        run = LearningRun(
            s,
            run_dir,
            settings=_settings(
                concurrency=concurrency,
                max_steps=max_steps,
                base_url=base_url,
                model=model,
                web_search=web_search,
                library_from=library_from,
            ),
            progress=not json_out,
            log=lambda line: err.print(line, highlight=False, markup=False),
        )
        return run.evaluate(split, writes=writes, mode=mode, limit=limit)

    _finish(_run(go), run_dir, report, json_out)


def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run dirs made by memento learn / eval.")],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="With several run dirs: also write the comparison here."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write RUN_DIR/report.md with accuracy (95% CI), skills, growth, tokens, cost, and plots;
    with several run dirs, also print one comparison table (the ablation table)."""
    from memento_skills.evals.report import compare, write_report

    written = [_run(lambda d=d: write_report(d)) for d in run_dirs]
    table = compare(run_dirs) if len(run_dirs) > 1 else None
    if out_file is not None and table is not None:
        out_file.write_text(table, encoding="utf-8")
    if json_out:
        docs = [{"report": str(path), **data} for path, data in written]
        payload: Any = docs[0] if len(docs) == 1 else {"runs": docs, "comparison": table}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    for path, data in written:
        for f in data["final"]:
            low, high = f["ci95"]
            out.print(
                f"{f['phase']} {f['split']} round {f['round']}: {f['correct']}/{f['n']} = "
                f"{f['accuracy']:.3f} [95% CI {low:.3f}-{high:.3f}]",
                highlight=False,
            )
        out.print(f"report: {path}", highlight=False)
    if table is not None:
        sys.stdout.write("\n" + table)


def leaks(
    run_dir: Annotated[Path, typer.Argument(help="A run dir made by memento learn / eval.")],
    json_out: JsonOpt = False,
) -> None:
    """Scan the run's library for the suite's gold answers; exit code 4 if any is found."""
    from memento_skills.evals.learning import LearningRun

    def go() -> Any:
        if not (run_dir / "config.json").exists():
            fail(f"{run_dir} is not a run dir (no config.json)")
        s = _suite(None, None, None, 0, None, None, None, run_dir)
        return LearningRun(s, run_dir).check_leaks()

    found = _run(go)
    if json_out:
        emit_json({"leaks": [x.to_dict() for x in found]})
    elif not found:
        out.print(
            f"no gold answer of the suite in {run_dir / 'skills'} or its history", highlight=False
        )
    _exit_on_leaks(found, run_dir)


def register(app: typer.Typer) -> None:
    """Add the evals commands to the `memento` app."""
    app.add_typer(suites_app, name="suites")
    app.command("learn")(learn)
    app.command("eval")(evaluate)
    app.command("report")(report)
    app.command("leaks")(leaks)
