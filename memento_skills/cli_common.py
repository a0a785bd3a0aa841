"""What every `memento` command shares: the consoles, the --dir and --json options, the library
at --dir (or the shared store's, when MEMENTO_STORE_URL is set and --dir is not), JSON output
and the bad-input error."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from memento_skills.cli_errors import BadInputError
from memento_skills.stores.skill_store import SkillStore

if TYPE_CHECKING:
    from memento_skills.stores.cases import Cases
    from memento_skills.stores.shared_store import SharedLibrary

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Skill library folder (default: the shared store $MEMENTO_STORE_URL names, else "
        "$MEMENTO_SKILLS_DIR or ~/.memento/skills).",
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


def shared_library(path: Path | None, *, seed: bool = True) -> SharedLibrary | None:
    """The shared store's library when MEMENTO_STORE_URL is set and no --dir is given (a new
    one seeded, as a new library folder is, unless `seed` is False).

    A URL that cannot be right is a bad input (exit 2), a database that does not answer is
    unreachable (exit 3): one line each, naming the variable and the fix.
    """
    from memento_skills.stores.settings import store_library_env, store_url_env

    url = store_url_env().strip()
    if path is not None or not url:
        return None
    from memento_skills.stores.shared_store import open_shared

    return open_shared(url, store_library_env().strip(), seed=seed)


def library_at(path: Path | None) -> SkillStore:
    """The library at --dir (which must exist), else the shared store's (MEMENTO_STORE_URL),
    else the default folder (created on first use)."""
    from memento_skills.stores.settings import open_library

    shared = shared_library(path)
    if shared is not None:
        return shared.skills
    return open_library(existing_library_dir(path) if path is not None else None)


def cases_at(path: Path | None, library: SkillStore) -> Cases:
    """The regression cases of the library `library_at(path)` gave."""
    from memento_skills.stores.cases import CaseStore

    shared = shared_library(path)
    return shared.cases if shared is not None else CaseStore(library.root)


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
