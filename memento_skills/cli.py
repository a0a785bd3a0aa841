"""The `memento` command line: skills management, benchmarks (and, later, running and learning).

Output is for people by default (rich tables, colour on a terminal); `--json` prints one JSON
document for scripts. Errors propagate to `main()`, which prints one line and exits with the
code cli_errors.py defines (a traceback only with --debug).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memento_skills.cli_errors import (
    EXIT_CODES_HELP,
    BadInputError,
    CommandFailed,
    ExitCode,
    report_error,
)
from memento_skills.stores.library import SkillLibrary

app = typer.Typer(
    name="memento",
    help="A self-improving agent that learns by writing its own skills.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
skills_app = typer.Typer(
    help="Manage the skill library.", epilog=EXIT_CODES_HELP, no_args_is_help=True
)
bench_app = typer.Typer(
    help="Benchmarks that print measured figures.", epilog=EXIT_CODES_HELP, no_args_is_help=True
)
app.add_typer(skills_app, name="skills")
app.add_typer(bench_app, name="bench")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_debug = {"on": False}


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar="MEMENTO_DEBUG", help="Print the traceback of an error as well."
        ),
    ] = False,
) -> None:
    """A self-improving agent that learns by writing its own skills."""
    _debug["on"] = debug


DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Skill library folder (default: $MEMENTO_SKILLS_DIR or ~/.memento/skills)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]


def _existing_library_dir(path: Path) -> Path:
    """An explicit --dir must be a library that exists: a typo must not seed a new one."""
    path = path.expanduser()
    if not path.exists():
        raise BadInputError(
            f"no skill library at {path}: check --dir, or create one with "
            f"`memento skills init {path}`"
        )
    if not path.is_dir():
        raise BadInputError(f"--dir {path} is a file, not a skill library folder")
    return path


def _library(path: Path | None) -> SkillLibrary:
    """The library at --dir (which must exist), or the default one (created on first use)."""
    from memento_skills.stores.settings import open_library

    return open_library(_existing_library_dir(path) if path is not None else None)


def _emit_json(data: Any) -> None:
    def default(o: Any) -> Any:
        if is_dataclass(o) and not isinstance(o, type):
            return asdict(o)
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    sys.stdout.write(json.dumps(data, indent=2, default=default) + "\n")


def _fail(message: str) -> None:
    raise BadInputError(message)


def _skill_dict(skill: Any) -> dict[str, Any]:
    return {
        "name": skill.name,
        "description": skill.description,
        "version": skill.version,
        "parent_version": skill.parent_version,
        "provenance": skill.provenance,
        "source": skill.source,
        "trusted": skill.trusted,
        "trust_by": skill.trust_by,
        "trust_at": skill.trust_at,
        "trust_digest": skill.trust_digest,
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
        err.print(f"[yellow]skipped malformed skill[/] {escape(str(e))}", highlight=False)


@skills_app.command("list")
def skills_list(dir: DirOpt = None, json_out: JsonOpt = False) -> None:
    """List the skills in the library (malformed ones are reported and skipped)."""
    from memento_skills.stores.trust import scripts_trusted

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
        if s.trusted and s.path is not None and not scripts_trusted(s, s.path.parent):
            prov += " [red](scripts changed since trusted)[/]"
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
def skills_show(
    name: str,
    dir: DirOpt = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", help="Print the SKILL.md file byte for byte (the default when piped)."
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show one skill: its SKILL.md and its other files (`show NAME > SKILL.md` copies the file)."""
    from memento_skills.stores.skill import SKILL_FILE

    lib = _library(dir)
    skill = lib.get(name)
    files = lib.list_files(name)
    if json_out:
        _emit_json({**_skill_dict(skill), "body": skill.body, "files": files})
        return
    if raw or not sys.stdout.isatty():
        sys.stdout.buffer.write((lib.skill_dir(name) / SKILL_FILE).read_bytes())
        sys.stdout.flush()
        return
    out.print(skill.to_markdown(), markup=False, highlight=False, soft_wrap=True)
    if files:
        out.print("[bold]files:[/] " + ", ".join(files))


@skills_app.command("validate")
def skills_validate(
    path: Annotated[
        Path | None,
        typer.Argument(help="A SKILL.md file, a skill folder or a library folder."),
    ] = None,
    dir: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate skills (nothing is created or changed); exit code 1 when any is malformed."""
    from memento_skills.stores.library import folder_mcp_servers
    from memento_skills.stores.paths import RefusedFileError, read_regular_file
    from memento_skills.stores.skill import (
        MAX_SKILL_FILE_BYTES,
        SKILL_FILE,
        Problem,
        SkillValidationError,
        parse_skill,
    )

    errors: list[SkillValidationError] = []
    valid: list[str] = []
    target = path or dir
    if target is not None:
        target = target.expanduser()
        if not target.exists():
            raise BadInputError(
                f"{target} does not exist: give a SKILL.md file, a skill folder or a library folder"
            )
        if target.is_file():
            if target.name != SKILL_FILE:
                raise BadInputError(
                    f"{target} is a file but not a {SKILL_FILE}: give a skill's "
                    f"{SKILL_FILE}, its folder or a library folder"
                )
            target = target.parent
    if target is not None and os.path.lexists(target / SKILL_FILE):
        skill_md = target / SKILL_FILE
        try:
            data = read_regular_file(skill_md, MAX_SKILL_FILE_BYTES)
            skill = parse_skill(data, skill_md, folder_name=target.name)
            folder_mcp_servers(target, skill)  # its mcp.json, if it has one
            valid.append(skill.name)
        except RefusedFileError as e:
            errors.append(SkillValidationError(skill_md, [Problem("file", e.problem, e.fix)]))
        except SkillValidationError as e:
            errors.append(e)
    else:
        lib = SkillLibrary(target) if target is not None else _library(None)
        report = lib.scan()
        valid = [s.name for s in report.skills]
        errors = report.errors
        if not valid and not errors:
            raise BadInputError(
                f"{lib.root} holds no skill (no folder with a {SKILL_FILE}): check the path"
            )
    if json_out:
        _emit_json({"valid": valid, "errors": [e.to_dict() for e in errors]})
    else:
        for name in valid:
            out.print(f"[green]ok[/]   {name}")
        for problem in errors:
            out.print(f"[red]FAIL[/] {escape(problem.one_line())}", highlight=False)
    if errors:
        raise typer.Exit(ExitCode.FAILED)


@skills_app.command("init")
def skills_init(
    path: Annotated[Path, typer.Argument(help="The folder of the new library.")],
    seed: Annotated[
        bool, typer.Option("--seed/--no-seed", help="Start with the packaged seed skills.")
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """Create a new skill library (other commands refuse a --dir that does not exist)."""
    from memento_skills.stores.settings import open_library

    path = path.expanduser()
    if path.exists() and not path.is_dir():
        raise BadInputError(f"{path} is a file: pick a folder for the new library")
    if path.is_dir() and any(not p.name.startswith(".") for p in path.iterdir()):
        raise BadInputError(f"{path} is not empty: pick a new or empty folder for the library")
    library = open_library(path, seed=seed)
    names = [s.name for s in library.skills()]
    if json_out:
        _emit_json({"dir": str(library.root), "skills": names})
    else:
        out.print(f"new library {library.root} with {_count(len(names), 'skill')}", highlight=False)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@skills_app.command("history")
def skills_history(name: str, dir: DirOpt = None, json_out: JsonOpt = False) -> None:
    """List the recorded versions of a skill."""
    versions = _library(dir).history(name)
    if json_out:
        _emit_json([asdict(v) for v in versions])
        return
    table = Table(title=f"history of {name}", title_justify="left")
    for col in ("version", "parent", "updated", "provenance", "source", "trust", "live"):
        table.add_column(col)
    for v in versions:
        trust = "trusted" if v.trusted else "[red]untrusted[/]"
        if v.trust_by:
            trust += f" by {escape(v.trust_by)} at {v.trust_at}"
        table.add_row(
            str(v.version),
            "" if v.parent_version is None else str(v.parent_version),
            v.updated,
            v.provenance,
            escape(v.source),
            trust,
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


ByOpt = Annotated[
    str | None,
    typer.Option("--by", help="Who is deciding, for the record (default: your OS user name)."),
]


def _set_trust(name: str, trusted: bool, by: str | None, dir: Path | None, json_out: bool) -> None:
    from memento_skills.stores.trust import operator_name, script_files, set_trust

    who = operator_name(by)
    lib = _library(dir)
    skill, changed = set_trust(lib, name, trusted, who)
    scripts = script_files(lib.skill_dir(name))
    if json_out:
        _emit_json({**_skill_dict(skill), "changed": changed, "scripts": scripts})
        return
    word = "trusted" if trusted else "untrusted"
    if not changed:
        since = f" (by {skill.trust_by} at {skill.trust_at})" if skill.trust_by else ""
        out.print(f"{name} is already {word}{since}; nothing changed", markup=False)
        return
    effect = "may now run" if trusted else "need approval again (`memento run --approve-scripts`)"
    scripts_note = (
        f"its scripts ({', '.join(scripts)}) {effect}" if scripts else "it has no scripts"
    )
    out.print(
        f"{name}: {word} by {who} at {skill.trust_at}, recorded as version {skill.version}; "
        + scripts_note,
        markup=False,
        highlight=False,
    )


@skills_app.command("trust")
def skills_trust(
    name: str, by: ByOpt = None, dir: DirOpt = None, json_out: JsonOpt = False
) -> None:
    """Trust a skill so its scripts may run (a new version recording who and when)."""
    _set_trust(name, True, by, dir, json_out)


@skills_app.command("untrust")
def skills_untrust(
    name: str, by: ByOpt = None, dir: DirOpt = None, json_out: JsonOpt = False
) -> None:
    """Untrust a skill: its scripts need approval again (a new version recording who and when)."""
    _set_trust(name, False, by, dir, json_out)


@skills_app.command("import")
def skills_import(
    source: Annotated[Path, typer.Argument(help="A skill folder, a folder of skills, or a .zip.")],
    replace: Annotated[bool, typer.Option(help="Replace skills that already exist.")] = False,
    lenient: Annotated[
        bool,
        typer.Option(
            help="Import skills that break the spec in a way that can be fixed (e.g. a description"
            " over 1,024 characters is cut at a sentence end); every change is printed."
        ),
    ] = False,
    dir: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import Agent Skills (a skill, a folder or repository of skills, or a zip): they are untrusted
    (scripts need approval), start with no counts, and Claude Code tool names are mapped to ours."""
    from memento_skills.stores.packs import import_pack

    report = import_pack(_library(dir), source, replace=replace, lenient=lenient)
    if json_out:
        _emit_json(report.to_dict())
    else:
        for verb, names in (("imported", report.imported), ("replaced", report.replaced)):
            for n in names:
                scripts = report.untrusted_scripts.get(n)
                note = (
                    f" (untrusted scripts: {', '.join(scripts)}; they run only after "
                    f"`memento skills trust {n}` or approval in `memento run --approve-scripts`)"
                    if scripts
                    else ""
                )
                out.print(f"[green]{verb}[/] {n}{escape(note)}", highlight=False)
                claimed = report.claimed_counts.get(n)
                if claimed:
                    start = "it starts at 0/0" if verb == "imported" else "its counts here stay"
                    out.print(
                        f"  {n}: the pack's claimed counts ({claimed['successes']} successes, "
                        f"{claimed['failures']} failures) were not kept; {start}: counts are "
                        "earned in this library only",
                        markup=False,
                        highlight=False,
                    )
        for n in report.skipped:
            out.print(f"[yellow]skipped[/] {n}: already in the library (use --replace)")
        for n, changes in report.adapted.items():
            for change in changes:
                err.print(f"[cyan]adapted[/] {n}: {escape(change)}", highlight=False)
        for w in report.warnings:
            err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
        for e in report.errors:
            err.print(f"[red]refused[/] {escape(e.one_line())}", highlight=False)
        out.print(
            f"{len(report.imported)} imported, {len(report.replaced)} replaced, "
            f"{len(report.skipped)} skipped, {len(report.errors)} refused"
        )
    if report.errors:
        raise typer.Exit(ExitCode.FAILED)


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

    if dest.suffix.lower() != ".zip":
        raise BadInputError(f"export writes a zip: name the file {dest.with_suffix('.zip')}")
    written = export_pack(_library(dir), dest, names or None)
    if json_out:
        _emit_json({"zip": str(dest), "skills": written})
    else:
        out.print(f"wrote {_count(len(written), 'skill')} to {dest}", highlight=False)


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
    idx = SkillIndex(index or default_index_dir(), library=lib.root)
    report = idx.sync(lib.skills(), verify=verify)
    where = idx.chroma_url or str(idx.index_dir / "chroma")
    if json_out:
        _emit_json({**asdict(report), "collection": idx.collection_name, "chroma": where})
    else:
        out.print(
            f"synced {lib.root} into {idx.collection_name} at {where}: "
            f"{report.added} added, {report.updated} updated, "
            f"{report.removed} removed, {report.unchanged} unchanged; "
            f"{report.embedded} embedded in {report.seconds:.2f}s"
        )
    _report_errors(lib.errors)


@app.command("run")
def run(
    task: Annotated[
        str | None,
        typer.Argument(help="The task, in words (leave out to resume the --thread's task)."),
    ] = None,
    ground_truth: Annotated[
        str | None, typer.Option("--ground-truth", help="Judge against this known answer.")
    ] = None,
    dir: DirOpt = None,
    index: Annotated[Path | None, typer.Option(help="Index folder.")] = None,
    write_policy: Annotated[
        str | None,
        typer.Option(
            help="What the write phase may change: off, create, refine, full "
            "(default full; off on the offline smoke model)."
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(help="Attempts per task (default 2; 1 on the offline smoke model)."),
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="Ask before any change to the library is written.")
    ] = False,
    approve_scripts: Annotated[
        bool,
        typer.Option(
            "--approve-scripts",
            help="Show each script of an untrusted skill the agent wants to run and ask y/N "
            "(without a terminal they are refused).",
        ),
    ] = False,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint (default: env or local model).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name for every role.")] = None,
    json_out: JsonOpt = False,
    thread: Annotated[
        str | None,
        typer.Option(
            "--thread",
            help="Run on this durable thread (checkpointed in $MEMENTO_HOME/checkpoints.sqlite); "
            "a task killed mid-run resumes with `memento run --thread ID`.",
        ),
    ] = None,
) -> None:
    """Run one task: route to a skill, execute, judge, and learn from the outcome.

    Exit code 0 when the answer passed (or was not judged), 1 when the verdict is FAIL or the
    executor failed, 2 for a bad option, 3 when the model endpoint cannot be reached (checked
    before the run).
    """
    from memento_skills.graph.models import resolve_settings
    from memento_skills.graph.validation import RunRefused, check_context, check_input
    from memento_skills.runner import NoTaskToResume, UnfinishedTask, describe, run_task
    from memento_skills.smoke_run import SMOKE_MODEL_ENV, SMOKE_NOTICE, is_smoke_model, smoke_fields

    given: dict[str, Any] = {
        "approval_required": approve,
        "skills_dir": str(dir) if dir else "",
        "index_dir": str(index) if index else "",
    }
    if write_policy is not None:
        given["write_policy"] = write_policy
    if max_attempts is not None:
        given["max_attempts"] = max_attempts
    if base_url:
        given["base_url"] = base_url
    if model:
        given.update({f"{r}_model": model for r in ("executor", "judge", "writer")})
    settings = resolve_settings("executor", base_url=base_url, model=model)
    fields = smoke_fields(settings, given)
    if thread is not None and not thread.strip():
        _fail("--thread: the thread id is empty; give a name, e.g. --thread my-task")
    try:  # the graph checks again as the run starts; here it fails before the library is seeded
        if task is not None or thread is None:
            check_input({"task": task, "ground_truth": ground_truth})
        ctx = check_context(fields)
    except RunRefused as e:
        if e.field == "task":
            _fail('TASK is empty: say the task in words, e.g. memento run "What is 6 times 7?"')
        option = {"write_policy": "--write-policy", "max_attempts": "--max-attempts"}
        _fail(f"{option[e.field]}: {e}" if e.field in option else str(e))
    if ctx is not None and ctx.mcp_config:
        from memento_skills.stores.mcp_config import McpConfigError, load_file

        try:
            load_file(ctx.mcp_config, owner="operator")
        except McpConfigError as e:
            _fail(f"MEMENTO_MCP_CONFIG: {e}")
    if dir is not None:
        _existing_library_dir(dir)
    endpoint = _check_endpoint(base_url, model)
    from memento_skills.cli_evals import announce_sandbox

    announce_sandbox()
    if not json_out:
        _library(dir)  # seeds a new library before the first run, visibly
    if is_smoke_model(settings):
        err.print(SMOKE_NOTICE, markup=False, highlight=False)
        for name, value in SMOKE_MODEL_ENV.items():
            os.environ.setdefault(name, value)  # read when the graph builds each role's model

    terminal = threading.Lock()  # one speaker at a time: progress lines or the script prompt

    def on_event(event: dict[str, Any]) -> None:
        line = describe(event)
        if line and not json_out:
            with terminal:
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

    resources = None
    if approve_scripts:
        from memento_skills.graph.resources import Resources
        from memento_skills.script_approval import TerminalScriptApprover

        resources = Resources(
            approve_script=TerminalScriptApprover(
                _library(dir).root, err, _confirm_on_stderr, lock=terminal
            )
        )
    with contextlib.ExitStack() as stack:
        checkpointer = stack.enter_context(_durable_checkpointer()) if thread else None
        try:
            result = run_task(
                task,
                context=ctx,
                ground_truth=ground_truth,
                on_event=on_event,
                approver=approver,
                resources=resources,
                checkpointer=checkpointer,
                thread_id=thread,
            )
        except (UnfinishedTask, NoTaskToResume) as e:
            _fail(str(e))
    failure = _run_failure(result, endpoint)
    if json_out:
        _emit_json(result.to_dict())
        if failure is not None:
            raise failure
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
    if failure is not None:
        raise failure


@contextlib.contextmanager
def _durable_checkpointer() -> Iterator[Any]:
    """The SQLite checkpointer `memento run --thread` keeps its threads in."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    from memento_skills.stores.settings import memento_home

    path = memento_home() / CHECKPOINTS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cm = SqliteSaver.from_conn_string(str(path))
        saver = cm.__enter__()
    except (OSError, sqlite3.Error) as e:
        raise BadInputError(
            f"cannot open the checkpoint database {path}: {e}; check MEMENTO_HOME"
        ) from None
    try:
        yield saver
    finally:
        cm.__exit__(None, None, None)


CHECKPOINTS_FILE = "checkpoints.sqlite"


def _check_endpoint(base_url: str | None, model: str | None) -> str:
    """Before a run: an endpoint that does not answer at all is reported as unreachable (exit
    3) at once, instead of after every role's retries as a failed task. Returns its URL."""
    from memento_skills.graph.models import OPENAI_BASE_URL, probe_endpoint, resolve_settings

    settings = resolve_settings("executor", base_url=base_url, model=model)
    if settings.offline_default:
        return "the offline model server"  # started (and checked) by the run itself
    url = settings.base_url or OPENAI_BASE_URL
    probe_endpoint(url, settings.api_key)
    return url


_UNREACHABLE = ("APIConnectionError", "OpenAIConnectionError", "APITimeoutError", "LocalLLMError")


def _run_failure(result: Any, endpoint: str) -> CommandFailed | None:
    """Why `memento run` must not exit 0: the endpoint went away, the executor failed, or FAIL."""
    if result.answer is None and result.error:
        if any(name in result.error for name in _UNREACHABLE):
            return CommandFailed(
                f"the model endpoint {endpoint} stopped answering during the run "
                f"({result.error}); check the server, or point --base-url / MEMENTO_BASE_URL "
                "at one that runs",
                ExitCode.UNREACHABLE,
            )
        return CommandFailed(f"the task failed: {result.error}")
    verdict = result.verdict or {}
    if verdict and not verdict.get("passed"):
        critique = str(verdict.get("critique") or "").strip()
        return CommandFailed(
            f"the task failed: verdict FAIL ({verdict.get('method')})"
            + (f": {critique}" if critique else "")
        )
    return None


def _confirm_on_stderr(question: str) -> bool:
    """y/N on the terminal, asked on stderr (stdout keeps the answer); Ctrl-D or Ctrl-C: no."""
    try:
        return bool(typer.confirm(question, default=False, err=True))
    except typer.Abort:
        return False


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
    from memento_skills.cli_evals import announce_sandbox
    from memento_skills.evals.bench_sandbox import run_sandbox_bench
    from memento_skills.nodes.execution.sandbox import SandboxError

    announce_sandbox()
    try:
        result = run_sandbox_bench()
    except SandboxError as e:
        _fail(str(e))
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
    """The `memento` entry point: every error that reaches here is one line and an exit code.

    Usage errors (exit 2) and Ctrl-C (exit 130) are handled by typer itself.
    """
    try:
        app()
    except Exception as e:
        sys.exit(report_error(e, debug=_debug["on"], console=err))
