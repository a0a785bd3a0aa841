"""The `memento` command line: skills management, benchmarks (and, later, running and learning).

Output is for people by default (rich tables, colour on a terminal); `--json` prints one JSON
document for scripts. Library errors become a one-line message and exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import SkillError

app = typer.Typer(
    name="memento",
    help="A self-improving agent that learns by writing its own skills.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
skills_app = typer.Typer(help="Manage the skill library.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print measured figures.", no_args_is_help=True)
app.add_typer(skills_app, name="skills")
app.add_typer(bench_app, name="bench")

out = Console()
err = Console(stderr=True)

DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Skill library folder (default: $MEMENTO_SKILLS_DIR or ~/.memento/skills)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]


def _library(path: Path | None) -> SkillLibrary:
    from memento_skills.stores.settings import open_library

    return open_library(path)


def _emit_json(data: Any) -> None:
    def default(o: Any) -> Any:
        if is_dataclass(o) and not isinstance(o, type):
            return asdict(o)
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    sys.stdout.write(json.dumps(data, indent=2, default=default) + "\n")


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _skill_dict(skill: Any) -> dict[str, Any]:
    return {
        "name": skill.name,
        "description": skill.description,
        "version": skill.version,
        "parent_version": skill.parent_version,
        "provenance": skill.provenance,
        "source": skill.source,
        "trusted": skill.trusted,
        "successes": skill.utility.successes,
        "failures": skill.utility.failures,
        "allowed_tools": list(skill.allowed_tools),
        "license": skill.license,
        "compatibility": skill.compatibility,
        "metadata": skill.metadata,
        "created": skill.created,
        "updated": skill.updated,
        "path": str(skill.path) if skill.path else None,
    }


def _report_errors(errors: list[Any]) -> None:
    for e in errors:
        err.print(f"[yellow]skipped malformed skill[/] {e}", highlight=False)


@skills_app.command("list")
def skills_list(dir: DirOpt = None, json_out: JsonOpt = False) -> None:
    """List the skills in the library (malformed ones are reported and skipped)."""
    lib = _library(dir)
    report = lib.scan()
    if json_out:
        _emit_json(
            {
                "dir": str(lib.root),
                "skills": [_skill_dict(s) for s in report.skills],
                "errors": [e.to_dict() for e in report.errors],
            }
        )
        return
    table = Table(title=f"{len(report.skills)} skills in {lib.root}", title_justify="left")
    for col in ("name", "ver", "provenance", "ok/fail", "description"):
        table.add_column(col, overflow="fold" if col == "description" else "ellipsis")
    for s in report.skills:
        prov = s.provenance if s.trusted else f"{s.provenance} [red](untrusted)[/]"
        desc = s.description if len(s.description) <= 90 else s.description[:87] + "..."
        table.add_row(
            f"[bold]{s.name}[/]",
            str(s.version),
            prov,
            f"{s.utility.successes}/{s.utility.failures}",
            desc,
        )
    out.print(table)
    _report_errors(report.errors)


@skills_app.command("show")
def skills_show(name: str, dir: DirOpt = None, json_out: JsonOpt = False) -> None:
    """Show one skill: its SKILL.md and its other files."""
    lib = _library(dir)
    skill = lib.get(name)
    files = lib.list_files(name)
    if json_out:
        _emit_json({**_skill_dict(skill), "body": skill.body, "files": files})
        return
    out.print(skill.to_markdown(), markup=False, highlight=False)
    if files:
        out.print("[bold]files:[/] " + ", ".join(files))


@skills_app.command("validate")
def skills_validate(
    path: Annotated[Path | None, typer.Argument(help="A skill folder or a library folder.")] = None,
    dir: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate skills; exit code 1 when any is malformed."""
    from memento_skills.stores.skill import SKILL_FILE, SkillValidationError, parse_skill

    errors: list[SkillValidationError] = []
    valid: list[str] = []
    target = path or dir
    if target is not None and (target / SKILL_FILE).is_file():
        try:
            valid.append(
                parse_skill(
                    (target / SKILL_FILE).read_bytes(), target / SKILL_FILE, folder_name=target.name
                ).name
            )
        except SkillValidationError as e:
            errors.append(e)
    else:
        lib = SkillLibrary(target) if target is not None else _library(None)
        report = lib.scan()
        valid = [s.name for s in report.skills]
        errors = report.errors
    if json_out:
        _emit_json({"valid": valid, "errors": [e.to_dict() for e in errors]})
    else:
        for name in valid:
            out.print(f"[green]ok[/]   {name}")
        for problem in errors:
            out.print(f"[red]FAIL[/] {problem}", highlight=False)
    if errors:
        raise typer.Exit(1)


@skills_app.command("history")
def skills_history(name: str, dir: DirOpt = None, json_out: JsonOpt = False) -> None:
    """List the recorded versions of a skill."""
    versions = _library(dir).history(name)
    if json_out:
        _emit_json([asdict(v) for v in versions])
        return
    table = Table(title=f"history of {name}", title_justify="left")
    for col in ("version", "parent", "updated", "provenance", "source", "live"):
        table.add_column(col)
    for v in versions:
        table.add_row(
            str(v.version),
            "" if v.parent_version is None else str(v.parent_version),
            v.updated,
            v.provenance,
            v.source,
            "[green]live[/]" if v.live else "",
        )
    out.print(table)


@skills_app.command("diff")
def skills_diff(
    name: str,
    a: Annotated[int, typer.Argument(help="Older version.")],
    b: Annotated[int | None, typer.Argument(help="Newer version (default: live).")] = None,
    dir: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Unified diff of a skill between two versions."""
    lib = _library(dir)
    b = b if b is not None else lib.get(name).version
    text = lib.diff(name, a, b)
    if json_out:
        _emit_json({"name": name, "a": a, "b": b, "diff": text})
        return
    for line in text.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        out.print(line, style=style, markup=False, highlight=False)


@skills_app.command("rollback")
def skills_rollback(name: str, version: int, dir: DirOpt = None, json_out: JsonOpt = False) -> None:
    """Make an earlier version live again (recorded as a new version)."""
    skill = _library(dir).rollback(name, version)
    if json_out:
        _emit_json(_skill_dict(skill))
    else:
        out.print(f"{name}: version {version} restored as version {skill.version}")


@skills_app.command("import")
def skills_import(
    source: Annotated[Path, typer.Argument(help="A skill folder, a folder of skills, or a .zip.")],
    replace: Annotated[bool, typer.Option(help="Replace skills that already exist.")] = False,
    dir: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import Agent Skills; imported skills are untrusted (scripts need approval)."""
    from memento_skills.stores.packs import import_pack

    report = import_pack(_library(dir), source, replace=replace)
    if json_out:
        _emit_json(report.to_dict())
    else:
        for n in report.imported:
            out.print(f"[green]imported[/] {n} (untrusted: its scripts need approval)")
        for n in report.replaced:
            out.print(f"[green]replaced[/] {n}")
        for n in report.skipped:
            out.print(f"[yellow]skipped[/] {n}: already in the library (use --replace)")
        _report_errors(report.errors)
    if report.errors:
        raise typer.Exit(1)


@skills_app.command("export")
def skills_export(
    dest: Annotated[Path, typer.Argument(help="The .zip file to write.")],
    names: Annotated[
        list[str] | None, typer.Argument(help="Skills to export (default: all).")
    ] = None,
    dir: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Export skills as a zip of Agent Skills folders."""
    from memento_skills.stores.packs import export_pack

    written = export_pack(_library(dir), dest, names or None)
    if json_out:
        _emit_json({"zip": str(dest), "skills": written})
    else:
        out.print(f"wrote {len(written)} skills to {dest}")


@skills_app.command("sync")
def skills_sync(
    dir: DirOpt = None,
    index: Annotated[
        Path | None,
        typer.Option(help="Index folder (default: $MEMENTO_INDEX_DIR or ~/.memento/index)."),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(help="Compare every record with Chroma (after other tools wrote to it)."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Bring the retrieval indexes (Chroma, BM25) in line with the skill folders."""
    from memento_skills.stores.index import SkillIndex
    from memento_skills.stores.settings import default_index_dir

    lib = _library(dir)
    idx = SkillIndex(index or default_index_dir())
    report = idx.sync(lib.skills(), verify=verify)
    if json_out:
        _emit_json(asdict(report))
    else:
        out.print(
            f"synced {lib.root}: {report.added} added, {report.updated} updated, "
            f"{report.removed} removed, {report.unchanged} unchanged; "
            f"{report.embedded} embedded in {report.seconds:.2f}s"
        )
    _report_errors(lib.errors)


@app.command("run")
def run(
    task: Annotated[str, typer.Argument(help="The task, in words.")],
    ground_truth: Annotated[
        str | None, typer.Option("--ground-truth", help="Judge against this known answer.")
    ] = None,
    dir: DirOpt = None,
    index: Annotated[Path | None, typer.Option(help="Index folder.")] = None,
    write_policy: Annotated[
        str, typer.Option(help="What the write phase may change: off, create, refine, full.")
    ] = "full",
    max_attempts: Annotated[int, typer.Option(help="Attempts per task.")] = 2,
    approve: Annotated[
        bool, typer.Option("--approve", help="Ask before any change to the library is written.")
    ] = False,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint (default: env or local model).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name for every role.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run one task: route to a skill, execute, judge, and learn from the outcome."""
    from memento_skills.graph.validation import RunRefused, check_context, check_input
    from memento_skills.runner import describe, run_task

    fields: dict[str, Any] = {
        "write_policy": write_policy,
        "max_attempts": max_attempts,
        "approval_required": approve,
        "skills_dir": str(dir) if dir else "",
        "index_dir": str(index) if index else "",
    }
    if base_url:
        fields["base_url"] = base_url
    if model:
        fields.update({f"{r}_model": model for r in ("executor", "judge", "writer")})
    try:  # the graph checks again as the run starts; here it fails before the library is seeded
        check_input({"task": task, "ground_truth": ground_truth})
        ctx = check_context(fields)
    except RunRefused as e:
        if e.field == "task":
            _fail('TASK is empty: say the task in words, e.g. memento run "What is 6 times 7?"')
        option = {"write_policy": "--write-policy", "max_attempts": "--max-attempts"}
        _fail(f"{option[e.field]}: {e}" if e.field in option else str(e))
    if not json_out:
        _library(dir)  # seeds a new library before the first run, visibly

    def on_event(event: dict[str, Any]) -> None:
        line = describe(event)
        if line and not json_out:
            err.print(line, highlight=False, markup=False)

    def approver(payload: dict[str, Any]) -> Any:
        if json_out or not sys.stdin.isatty():
            err.print("approval needed but no terminal to ask: change rejected")
            return "reject"
        out.print(payload.get("question", "Apply this change?"))
        for line in str(payload.get("diff", "")).splitlines():
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            out.print(line, style=style, markup=False, highlight=False)
        return "accept" if typer.confirm("Accept?", default=False) else "reject"

    result = run_task(
        task, context=ctx, ground_truth=ground_truth, on_event=on_event, approver=approver
    )
    if json_out:
        _emit_json(result.to_dict())
        return
    for w in result.writes:
        if w.get("action") not in ("utility", "none"):
            state = "accepted" if w.get("accepted") else "not applied"
            err.print(
                f"change: {w.get('action')} {w.get('skill')} ({state}): {w.get('reason')}",
                markup=False,
            )
    out.print(
        result.answer if result.answer else f"(no answer: {result.error or 'see above'})",
        markup=False,
    )


def _print_figures(title: str, result: dict[str, Any]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in result.items():
        if isinstance(v, list | dict):
            continue
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    out.print(table)


@bench_app.command("store")
def bench_store(
    n: Annotated[int, typer.Option(help="Number of synthetic skills.")] = 10_000,
    json_out: JsonOpt = False,
) -> None:
    """Index build, resync and query latency on a synthetic library of N skills."""
    from memento_skills.evals.bench_store import run_store_bench

    result = run_store_bench(n)
    if json_out:
        _emit_json(result)
    else:
        _print_figures(f"store benchmark, {n} skills", result)


@bench_app.command("sandbox")
def bench_sandbox(json_out: JsonOpt = False) -> None:
    """Run the escape suite through the real tools: contained / attempted."""
    from memento_skills.evals.bench_sandbox import run_sandbox_bench

    result = run_sandbox_bench()
    if json_out:
        _emit_json(result)
        return
    table = Table(
        title=f"sandbox: {result['contained']}/{result['attempted']} contained",
        title_justify="left",
    )
    for col in ("case", "outcome", "detail"):
        table.add_column(col, overflow="fold")
    for case in result["cases"]:
        style = "green" if case["outcome"] == "contained" else "bold red"
        table.add_row(case["name"], f"[{style}]{case['outcome']}[/]", str(case.get("detail", "")))
    out.print(table)


@bench_app.command("graph")
def bench_graph(json_out: JsonOpt = False) -> None:
    """Graph overhead per task (zero-latency model) and prompt tokens at 10 and 1,000 skills."""
    from memento_skills.evals.bench_graph import run_graph_bench

    result = run_graph_bench()
    if json_out:
        _emit_json(result)
    else:
        _print_figures("graph benchmark", result)


from memento_skills.cli_evals import register  # noqa: E402

register(app)


from memento_skills.cli_router import router_app  # noqa: E402

app.add_typer(router_app, name="router")


def main() -> None:
    try:
        app()
    except SkillError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except ValueError as e:  # a run refused for its context or input (imported late: it is heavy)
        from memento_skills.graph.validation import RunRefused

        if not isinstance(e, RunRefused):
            raise
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(1)
