"""`memento skills`: list, show, validate, create, version, rename, curate, trust, import,
export, dump, load and sync the skill library."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from memento_skills.cli_common import (
    DirOpt,
    JsonOpt,
    cases_at,
    emit_json,
    err,
    existing_library_dir,
    library_at,
    out,
    shared_library,
)
from memento_skills.cli_errors import EXIT_CODES_HELP, BadInputError, ExitCode
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill_store import SkillStore

skills_app = typer.Typer(
    help="Manage the skill library.", epilog=EXIT_CODES_HELP, no_args_is_help=True
)


def _skill_dict(skill: Any) -> dict[str, Any]:
    return {
        "name": skill.name,
        "description": skill.description,
        "version": skill.version,
        "parent_version": skill.parent_version,
        "provenance": skill.provenance,
        "lifecycle": skill.lifecycle,
        "lifecycle_reason": skill.lifecycle_reason,
        "lift": _lift_dict(skill.lift),
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


def _lift_dict(lift: Any) -> dict[str, Any] | None:
    if lift is None:
        return None
    return {**asdict(lift), "value": lift.value}


def _lift_text(lift: Any) -> str:
    """A lift for a table cell: its value and the cases it rests on, `-` when never measured."""
    if lift is None:
        return "-"
    if lift.value is None:
        return "n/a (no cases)"
    return f"{lift.value:+.2f} ({lift.with_passed}/{lift.with_total} vs {lift.without_passed}/{lift.without_total})"


def _report_errors(errors: list[Any]) -> None:
    for e in errors:
        err.print(f"[yellow]skipped malformed skill[/] {escape(str(e))}", highlight=False)


@skills_app.command("list")
def skills_list(dir: DirOpt = None, json_out: JsonOpt = False) -> None:
    """List the skills in the library (malformed ones are reported and skipped)."""
    from memento_skills.stores.trust import scripts_trusted

    lib = library_at(dir)
    report = lib.scan()
    if json_out:
        emit_json(
            {
                "dir": str(lib.root),
                "skills": [_skill_dict(s) for s in report.skills],
                "errors": [e.to_dict() for e in report.errors],
            }
        )
        return
    table = Table(title=f"{len(report.skills)} skills in {lib.root}", title_justify="left")
    for col in ("name", "ver", "provenance", "lifecycle", "lift", "ok/fail", "description"):
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
            s.lifecycle,
            _lift_text(s.lift),
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

    lib = library_at(dir)
    skill = lib.get(name)
    files = lib.list_files(name)
    if json_out:
        emit_json({**_skill_dict(skill), "body": skill.body, "files": files})
        return
    if raw or not sys.stdout.isatty():
        sys.stdout.buffer.write((lib.skill_dir(name) / SKILL_FILE).read_bytes())
        sys.stdout.flush()
        return
    out.print(skill.to_markdown(), markup=False, highlight=False, soft_wrap=True)
    reason = f" ({skill.lifecycle_reason})" if skill.lifecycle_reason else ""
    measured = f", measured on v{skill.lift.version}" if skill.lift is not None else ""
    out.print(
        f"[bold]lifecycle:[/] {escape(skill.lifecycle + reason)}   "
        f"[bold]lift:[/] {escape(_lift_text(skill.lift) + measured)}",
        highlight=False,
    )
    if files:
        out.print("[bold]files:[/] " + ", ".join(files))


@skills_app.command("lift")
def skills_lift(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Skills to measure (default: every learned skill not deprecated)."),
    ] = None,
    dir: DirOpt = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint (default: from the env).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name for every role.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Measure lift: replay each skill's cases with it and without any skill, keep the result
    with the skill, and move its lifecycle on it (each a new version, undone by rollback).

    Exit code 2 for an unknown skill or no endpoint (the offline smoke model cannot measure
    lift), 3 when the endpoint does not answer (before or during the replays: nothing is kept).
    """
    from memento_skills.cli_errors import CommandFailed
    from memento_skills.graph.builder import build_gate_replay
    from memento_skills.graph.context import Context
    from memento_skills.graph.models import OPENAI_BASE_URL, probe_endpoint, resolve_settings
    from memento_skills.graph.resources import Resources
    from memento_skills.nodes.writing.lift import LiftNotMeasured, update_lift
    from memento_skills.smoke_run import is_smoke_model
    from memento_skills.stores.lift_cache import LiftCache

    lib = library_at(dir)
    settings = resolve_settings("executor", base_url=base_url, model=model)
    if is_smoke_model(settings):
        raise BadInputError(
            "lift needs a model endpoint: set MEMENTO_BASE_URL (or pass --base-url); the offline "
            "smoke model cannot tell a skill that helps from one that does not"
        )
    targets = names or [
        s.name for s in lib.skills() if s.provenance == "learned" and s.lifecycle != "deprecated"
    ]
    for name in targets:
        lib.get(name)  # an unknown or malformed skill: one line, before any replay
    probe_endpoint(settings.base_url or OPENAI_BASE_URL, settings.api_key)
    fields: dict[str, Any] = {"skills_dir": str(lib.root)}
    if base_url:
        fields["base_url"] = base_url
    if model:
        fields.update({f"{r}_model": model for r in ("executor", "judge", "writer")})
    ctx = Context(**fields)
    resources = Resources(library=lib)
    replay = build_gate_replay(resources)
    cache = LiftCache.of_library(lib.root)
    rows: list[dict[str, Any]] = []
    for name in targets:
        before = lib.get(name)
        try:
            after = update_lift(lib, replay, resources.cases(ctx), ctx, name, cache=cache)
        except LiftNotMeasured as e:
            raise CommandFailed(f"{name}: {e}", ExitCode.UNREACHABLE) from None
        rows.append(
            {
                "name": name,
                "lift": _lift_dict(after.lift),
                "was": before.lifecycle,
                "lifecycle": after.lifecycle,
                "version": after.version,
            }
        )
        if not json_out:
            moved = (
                f"{before.lifecycle} -> {after.lifecycle}"
                if after.lifecycle != before.lifecycle
                else after.lifecycle
            )
            out.print(
                f"{name}: lift {_lift_text(after.lift)}, {moved} (v{after.version})",
                markup=False,
                highlight=False,
            )
    if json_out:
        emit_json({"dir": str(lib.root), "skills": rows})
    elif not targets:
        out.print("no learned skill to measure (name one to measure any skill)")


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
    from memento_skills.stores.paths import RefusedFileError, read_regular_file
    from memento_skills.stores.skill import (
        MAX_SKILL_FILE_BYTES,
        SKILL_FILE,
        Problem,
        SkillValidationError,
        parse_skill,
    )
    from memento_skills.stores.skill_folder import folder_mcp_servers

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
        lib = SkillLibrary(target) if target is not None else library_at(None)
        report = lib.scan()
        valid = [s.name for s in report.skills]
        errors = report.errors
        if not valid and not errors:
            raise BadInputError(
                f"{lib.root} holds no skill (no folder with a {SKILL_FILE}): check the path"
            )
    if json_out:
        emit_json({"valid": valid, "errors": [e.to_dict() for e in errors]})
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
        emit_json({"dir": str(library.root), "skills": names})
    else:
        out.print(f"new library {library.root} with {_count(len(names), 'skill')}", highlight=False)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@skills_app.command("history")
def skills_history(name: str, dir: DirOpt = None, json_out: JsonOpt = False) -> None:
    """List the recorded versions of a skill."""
    versions = library_at(dir).history(name)
    if json_out:
        emit_json([asdict(v) for v in versions])
        return
    table = Table(title=f"history of {name}", title_justify="left")
    for col in (
        "version",
        "parent",
        "updated",
        "provenance",
        "lifecycle",
        "source",
        "trust",
        "live",
    ):
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
            v.lifecycle,
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
    lib = library_at(dir)
    b = b if b is not None else lib.get(name).version
    text = lib.diff(name, a, b)
    if json_out:
        emit_json({"name": name, "a": a, "b": b, "diff": text})
        return
    for line in text.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        out.print(line, style=style, markup=False, highlight=False)


@skills_app.command("rollback")
def skills_rollback(name: str, version: int, dir: DirOpt = None, json_out: JsonOpt = False) -> None:
    """Make an earlier version live again (recorded as a new version)."""
    skill = library_at(dir).rollback(name, version)
    if json_out:
        emit_json(_skill_dict(skill))
    else:
        out.print(f"{name}: version {version} restored as version {skill.version}")


ByOpt = Annotated[
    str | None,
    typer.Option("--by", help="Who is deciding, for the record (default: your OS user name)."),
]


def _set_trust(name: str, trusted: bool, by: str | None, dir: Path | None, json_out: bool) -> None:
    from memento_skills.stores.trust import operator_name, script_files, set_trust

    who = operator_name(by)
    lib = library_at(dir)
    skill, changed = set_trust(lib, name, trusted, who)
    scripts = script_files(lib.skill_dir(name))
    if json_out:
        emit_json({**_skill_dict(skill), "changed": changed, "scripts": scripts})
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

    report = import_pack(library_at(dir), source, replace=replace, lenient=lenient)
    if json_out:
        emit_json(report.to_dict())
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
    written = export_pack(library_at(dir), dest, names or None)
    if json_out:
        emit_json({"zip": str(dest), "skills": written})
    else:
        out.print(f"wrote {_count(len(written), 'skill')} to {dest}", highlight=False)


def _print_transfer(report: Any, verb: str, where: str) -> None:
    for name in report.skipped:
        out.print(f"[yellow]skipped[/] {name}: already in the store (use --replace)")
    for problem in report.problems:
        err.print(f"[yellow]left out[/] {escape(problem)}", highlight=False)
    weights = (
        "no router weights"
        if report.router_version is None
        else f"the router weights (as version {report.router_version})"
    )
    out.print(
        f"{verb} {_count(len(report.skills), 'skill')}, "
        f"{_count(report.cases, 'regression case')} and {weights} {where}",
        highlight=False,
    )


@skills_app.command("dump")
def skills_dump(
    dest: Annotated[Path, typer.Argument(help="The new (or empty) folder to write.")],
    dir: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the whole library (the shared store's, or --dir) out as a library folder: every
    skill's live version byte for byte, its regression cases with their files, and the router
    weights. History is not included. `memento skills load` reads it back."""
    from memento_skills.stores.library_transfer import dump_library
    from memento_skills.stores.router_weights import RouterWeightsStore, weights_dir

    dest = dest.expanduser()
    if dest.exists() and not dest.is_dir():
        raise BadInputError(f"{dest} is a file: name a new or empty folder to dump into")
    if dest.is_dir() and any(dest.iterdir()):
        raise BadInputError(f"{dest} is not empty: name a new or empty folder to dump into")
    lib = library_at(dir)
    weights = RouterWeightsStore(weights_dir(lib.root))
    report = dump_library(lib, cases_at(dir, lib), weights, dest)
    if json_out:
        emit_json({"dir": str(dest), **asdict(report)})
    else:
        _print_transfer(report, "wrote", f"to {dest}")


@skills_app.command("load")
def skills_load(
    source: Annotated[Path, typer.Argument(help="A library folder (e.g. from `skills dump`).")],
    replace: Annotated[
        bool, typer.Option(help="Replace skills the store already has (as a new version).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Read a library folder into the shared store MEMENTO_STORE_URL names: each skill exactly as
    the folder holds it (version, counts and trust kept), its regression cases with their files,
    and the router weights. The folder's history is not carried."""
    from memento_skills.stores.library_transfer import load_library
    from memento_skills.stores.router_weights import RouterWeightsStore, weights_dir
    from memento_skills.stores.settings import STORE_URL_ENV

    source = source.expanduser()
    if not source.is_dir():
        raise BadInputError(f"{source} is not a folder: give a library folder to load")
    shared = shared_library(None, seed=False)  # a new store holds what is loaded, no seeds
    if shared is None:
        raise BadInputError(
            f"load writes into a shared store: set {STORE_URL_ENV} "
            "(e.g. postgresql://user@127.0.0.1:5432/memento); a folder library is a copy away"
        )
    weights = RouterWeightsStore(weights_dir(shared.skills.root))
    report = load_library(source, shared.skills, shared.cases, weights, replace=replace)
    if json_out:
        emit_json({"store": shared.where, **asdict(report)})
    else:
        _print_transfer(report, "loaded", f"into {shared.where}")
    if report.problems:
        raise typer.Exit(ExitCode.FAILED)


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

    lib = library_at(dir)
    idx = SkillIndex(index or default_index_dir(), library=lib.root)
    report = idx.sync(lib.skills(), verify=verify)
    where = idx.chroma_url or str(idx.index_dir / "chroma")
    if json_out:
        emit_json({**asdict(report), "collection": idx.collection_name, "chroma": where})
    else:
        out.print(
            f"synced {lib.root} into {idx.collection_name} at {where}: "
            f"{report.added} added, {report.updated} updated, "
            f"{report.removed} removed, {report.unchanged} unchanged; "
            f"{report.embedded} embedded in {report.seconds:.2f}s"
        )
    _report_errors(lib.errors)


@skills_app.command("rename")
def skills_rename(
    old: Annotated[str, typer.Argument(help="The skill's name now.")],
    new: Annotated[str, typer.Argument(help="Its new name.")],
    dir: DirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rename a skill (a new version; its history and regression cases go with it)."""
    lib = library_at(dir)
    skill = lib.rename(old, new)
    cases_at(dir, lib).rename(old, new)
    if json_out:
        emit_json(_skill_dict(skill))
    else:
        out.print(f"{old} renamed to {new} (version {skill.version})", highlight=False)


@skills_app.command("curate")
def skills_curate(
    dir: DirOpt = None,
    index: Annotated[
        Path | None,
        typer.Option(help="Index folder (default: $MEMENTO_INDEX_DIR or ~/.memento/index)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (one line per step); write nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Apply every step without asking (needed off a terminal).")
    ] = False,
    measure: Annotated[
        bool,
        typer.Option(
            "--measure",
            help="Measure each learned skill's lift with the model first (else the stored lift "
            "is used).",
        ),
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible endpoint for --measure, replays and the writer."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name for every role.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Retire, merge, trim and rename learned skills on evidence (docs/decisions.md#curation).

    Each step is a new version: the output says how to take it back. Without --yes, each step is
    asked on the terminal; off a terminal pass --yes, or --dry-run to see the plan. A merge or a
    drop replays the skill's regression cases with the model (--base-url / --model or
    MEMENTO_BASE_URL) and is taken back on a regression; without a model it waits.
    """
    if dir is not None:
        existing_library_dir(dir)  # a bad --dir is named before anything else
    if not dry_run and not yes and (json_out or not sys.stdin.isatty()):
        raise BadInputError(
            "curate changes the library and there is no terminal to ask: pass --yes to apply "
            "the plan, or --dry-run to print it"
        )
    from memento_skills.graph.models import OPENAI_BASE_URL, probe_endpoint, resolve_settings
    from memento_skills.nodes.writing.curator import (
        CurationGate,
        apply_curation,
        library_similarities,
        plan_curation,
        script_files,
    )
    from memento_skills.smoke_run import is_smoke_model
    from memento_skills.stores.index import SkillIndex
    from memento_skills.stores.settings import default_index_dir

    lib = library_at(dir)
    settings = resolve_settings("executor", base_url=base_url, model=model)
    if measure and is_smoke_model(settings):
        raise BadInputError(
            "--measure needs a model endpoint: set MEMENTO_BASE_URL (or pass --base-url); the "
            "offline smoke model cannot tell a skill that helps from one that does not"
        )
    with_model = measure or not settings.offline_default
    if with_model:
        probe_endpoint(settings.base_url or OPENAI_BASE_URL, settings.api_key)
    resources, ctx, replay = _curation_model(lib, index, base_url, model, with_model)
    gate = CurationGate(replay, cases_at(dir, lib), ctx)
    lifts = _measure_lifts(lib, gate, record=not dry_run) if measure else {}
    skills = [s.with_changes(lift=lifts[s.name]) if s.name in lifts else s for s in lib.skills()]
    with contextlib.ExitStack() as stack:
        if dry_run:  # writes nothing anywhere: a throwaway index, not the library's
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="memento-curate-"))
            idx = stack.enter_context(SkillIndex(Path(scratch)))
        else:
            idx = stack.enter_context(SkillIndex(index or default_index_dir(), library=lib.root))
        idx.sync(skills)
        plan = plan_curation(skills, library_similarities(idx, skills), script_files(lib, skills))
    if dry_run:
        if json_out:
            emit_json({"dir": str(lib.root), "dry_run": True, "plan": [s.to_dict() for s in plan]})
            return
        if not plan:
            out.print(f"nothing to curate in {lib.root}", highlight=False)
        for step in plan:
            out.print(step.line(), markup=False, highlight=False)
        return
    writer = resources.model("writer", ctx) if resources is not None else None

    def ask(step: Any) -> bool:
        # asked on stderr and read from stdin: stdout keeps only what was done (click's
        # prompt writes a stray space to stdout)
        err.print(f"{step.line()}\napply? [y/N] ", end="", markup=False, highlight=False)
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    approve = (lambda _step: True) if yes else ask
    results = [apply_curation(s, lib, gate, writer=writer, approve=approve) for s in plan]
    if json_out:
        emit_json({"dir": str(lib.root), "results": [r.to_dict() for r in results]})
        return
    if not results:
        out.print(f"nothing to curate in {lib.root}", highlight=False)
    for r in results:
        if r.applied:
            out.print(f"{r.detail}; undo: {' && '.join(r.undo)}", markup=False, highlight=False)
        else:
            out.print(f"{r.step.line()}: {r.detail}", markup=False, highlight=False)


def _curation_model(
    lib: SkillStore, index: Path | None, base_url: str | None, model: str | None, use: bool
) -> tuple[Any, Any, Any]:
    """The resources, run configuration and replay graph curation uses (no model: no replay)."""
    from memento_skills.graph.context import Context

    fields: dict[str, Any] = {"skills_dir": str(lib.root), "web_search": False}
    if index is not None:
        fields["index_dir"] = str(index)
    if base_url:
        fields["base_url"] = base_url
    if model:
        fields.update({f"{r}_model": model for r in ("executor", "judge", "writer")})
    ctx = Context(**fields)
    if not use:
        return None, ctx, None
    from memento_skills.graph.builder import build_gate_replay
    from memento_skills.graph.resources import Resources

    resources = Resources(library=lib)
    return resources, ctx, build_gate_replay(resources)


def _measure_lifts(lib: SkillStore, gate: Any, *, record: bool) -> dict[str, Any]:
    """Each learned skill's lift measured with the model (kept with the skill when `record`;
    a dry run keeps nothing, not even the cache), saying what was found."""
    from memento_skills.cli_errors import CommandFailed
    from memento_skills.nodes.writing.curator import measure_lifts
    from memento_skills.nodes.writing.lift import LiftNotMeasured, measure_lift
    from memento_skills.stores.lift_cache import LiftCache

    cache = LiftCache.of_library(lib.root) if record else None
    replay = gate.replay
    assert replay is not None  # --measure builds it
    try:
        lifts = measure_lifts(
            lib,
            lambda name, extra: measure_lift(replay, gate.cases, gate.ctx, name, extra, cache),
            record=record,
        )
    except LiftNotMeasured as e:
        raise CommandFailed(str(e), ExitCode.UNREACHABLE) from None
    for name, lift in lifts.items():
        err.print(f"measured {name}: {lift.to_text()}", markup=False, highlight=False)
    return lifts
