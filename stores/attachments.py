"""Where a task's attached files are on disk: the `attachments` folder of the run's workspace base,
as the evals lay it out; read once per task into the state's typed `attachments`."""

from __future__ import annotations

from pathlib import Path

ATTACHMENTS_DIR = "attachments"
"""Files in `<Context.workspace_dir>/attachments/` are the task's: how an eval hands a task its
attached files (GAIA's spreadsheets, PDFs, audio), copied into every attempt's workspace."""


def task_files(workspace_dir: str | Path | None) -> dict[str, Path]:
    """The files a task was given, by their path inside its attachments folder (only a set
    workspace_dir can have one: the shared temp dir would hand one run's files to another)."""
    if not workspace_dir:
        return {}
    inbox = Path(workspace_dir) / ATTACHMENTS_DIR
    if not inbox.is_dir():
        return {}
    return {p.relative_to(inbox).as_posix(): p for p in sorted(inbox.rglob("*")) if p.is_file()}
