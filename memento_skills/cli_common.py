"""What every `memento` command shares: the consoles, the --dir and --json options, the library
at --dir, JSON output and the bad-input error."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from memento_skills.cli_errors import BadInputError
from memento_skills.stores.library import SkillLibrary

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Skill library folder (default: $MEMENTO_SKILLS_DIR or ~/.memento/skills)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
SearchTriesOpt = Annotated[
    int | None,
    typer.Option(
        "--search-tries",
        help="Candidates the learning-time search may judge on a failed task with a known "
        "answer (default 6; 0: no search).",
    ),
]
SearchTokensOpt = Annotated[
    int | None,
    typer.Option("--search-tokens", help="Tokens the search may spend per task (default 30000)."),
]
SearchSecondsOpt = Annotated[
    float | None,
    typer.Option("--search-seconds", help="Seconds the search may take per task (default 600)."),
]
SEARCH_OPTIONS = {
    "search_tries": "--search-tries",
    "search_tokens": "--search-tokens",
    "search_seconds": "--search-seconds",
}
"""The search budget's Context fields and their options, to name an option in an error."""


def search_budget(tries: int | None, tokens: int | None, seconds: float | None) -> dict[str, Any]:
    """The search budget options given, as Context fields, refused when out of range."""
    given = {"search_tries": tries, "search_tokens": tokens, "search_seconds": seconds}
    for name, value in given.items():
        least = 0 if name == "search_tries" else 1
        if value is not None and value < least:
            hint = "0 turns the search off" if name == "search_tries" else "give a positive number"
            raise BadInputError(
                f"{SEARCH_OPTIONS[name]} must be at least {least}, not {value} ({hint})"
            )
    return {k: v for k, v in given.items() if v is not None}


def existing_library_dir(path: Path) -> Path:
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


def library_at(path: Path | None) -> SkillLibrary:
    """The library at --dir (which must exist), or the default one (created on first use)."""
    from memento_skills.stores.settings import open_library

    return open_library(existing_library_dir(path) if path is not None else None)


def emit_json(data: Any) -> None:
    def default(o: Any) -> Any:
        if is_dataclass(o) and not isinstance(o, type):
            return asdict(o)
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    sys.stdout.write(json.dumps(data, indent=2, default=default) + "\n")


def fail(message: str) -> None:
    raise BadInputError(message)
