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
