"""Regression cases of a library kept in Postgres: every worker gates changes on the same cases.

The folder's contract (stores/cases.py) on shared tables: a case is added once (same task, gold
and files), one of the same task with other files is replaced, a skill keeps its newest
MAX_CASES_PER_SKILL, and the files a case was given are kept by content (one row per sha256 in
the library, deleted when no case refers to it any more). Every add is one transaction under a
per-library advisory lock, which orders it against the deletion of unreferenced files, as the
folder's store-wide lock does.

The gate replays a case in a workspace built from real files, so `files_of` writes the case's
files into the worker's local copy of the library, under `.memento/cases/files/<sha256>/<name>`:
0600 in 0700 folders, out of the sandbox's reach, as the folder keeps them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from memento_skills.stores import pg_schema
from memento_skills.stores.cases import (
    MAX_CASES_PER_SKILL,
    Case,
    MissingCaseFiles,
    describe_files,
    same_task_key,
    seal,
)
from memento_skills.stores.paths import safe_skill_dir
from memento_skills.stores.store_url import connection

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS memento_cases (
        library text NOT NULL,
        skill text NOT NULL,
        seq bigserial,
        record text NOT NULL,
        shas text[] NOT NULL,
        PRIMARY KEY (library, skill, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS memento_case_files (
        library text NOT NULL,
        sha256 text NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (library, sha256)
    )""",
)


class PgCaseStore:
    """The regression cases of library `library` in the database of `pool`; their files are
    materialised under `library_root` (the worker's local copy of the library) for replays."""

    def __init__(self, pool: Any, library: str, library_root: Path | str):
        self.pool = pool
        self.library = library
        self.library_root = Path(library_root)
        self.root = self.library_root / ".memento" / "cases"
        self.files_dir = self.root / "files"
        pg_schema.ensure(pool, "cases", SCHEMA)

    def _check(self, skill: str) -> None:
        safe_skill_dir(self.root, skill)  # the folder's name rules, for the same refusals

    def add(self, skill: str, case: Case, files: Mapping[str, Path] | None = None) -> bool:
        """Record a solved task for `skill` with the files it was given (name → file); False when
        it is already recorded. See CaseStore.add: the same rules, and the same CaseNotRecorded
        for files over MAX_CASE_FILES_BYTES."""
        self._check(skill)
        files = dict(files or {})
        case = replace(case, attachments=describe_files(files))
        with connection(self.pool) as conn, conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('memento_cases'), hashtext(%s))",
                (self.library,),
            )
            rows = conn.execute(
                "SELECT seq, record FROM memento_cases WHERE library = %s AND skill = %s "
                "ORDER BY seq",
                (self.library, skill),
            ).fetchall()
            cases = [(int(seq), c) for seq, line in rows if (c := _parse(line)) is not None]
            same_task = [(s, c) for s, c in cases if same_task_key(c) == same_task_key(case)]
            if any(c.attachments == case.attachments for _, c in same_task):
                return False
            for attachment in case.attachments:
                conn.execute(
                    "INSERT INTO memento_case_files (library, sha256, data) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (self.library, attachment.sha256, files[attachment.name].read_bytes()),
                )
            dropped = [s for s, _ in same_task]
            conn.execute(
                "DELETE FROM memento_cases WHERE library = %s AND skill = %s AND seq = ANY(%s)",
                (self.library, skill, dropped),
            )
            conn.execute(
                "INSERT INTO memento_cases (library, skill, record, shas) VALUES (%s, %s, %s, %s)",
                (
                    self.library,
                    skill,
                    json.dumps(asdict(case)),
                    [a.sha256 for a in case.attachments],
                ),
            )
            conn.execute(
                "DELETE FROM memento_cases WHERE library = %s AND skill = %s AND seq NOT IN "
                "(SELECT seq FROM memento_cases WHERE library = %s AND skill = %s "
                "ORDER BY seq DESC LIMIT %s)",
                (self.library, skill, self.library, skill, MAX_CASES_PER_SKILL),
            )
            conn.execute(
                "DELETE FROM memento_case_files f WHERE f.library = %s AND NOT EXISTS "
                "(SELECT 1 FROM memento_cases c WHERE c.library = f.library "
                "AND f.sha256 = ANY(c.shas))",
                (self.library,),
            )
        return True

    def load(self, skill: str) -> list[Case]:
        self._check(skill)
        with connection(self.pool) as conn:
            rows = conn.execute(
                "SELECT record FROM memento_cases WHERE library = %s AND skill = %s ORDER BY seq",
                (self.library, skill),
            ).fetchall()
        return [c for (line,) in rows if (c := _parse(line)) is not None]

    def skills(self) -> list[str]:
        """The skills that have regression cases (for a dump of the library)."""
        with connection(self.pool) as conn:
            rows = conn.execute(
                "SELECT DISTINCT skill FROM memento_cases WHERE library = %s ORDER BY skill",
                (self.library,),
            ).fetchall()
        return [str(skill) for (skill,) in rows]

    def files_of(self, case: Case) -> dict[str, Path]:
        """Where the case's attachments are, by name, written from the store when not yet here.

        Raises MissingCaseFiles naming those the store no longer holds.
        """
        found = {a.name: self.files_dir / a.sha256 / a.name for a in case.attachments}
        wanted = {a.sha256 for a in case.attachments if not found[a.name].is_file()}
        if not wanted:
            return found
        with connection(self.pool) as conn:
            rows = conn.execute(
                "SELECT sha256, data FROM memento_case_files "
                "WHERE library = %s AND sha256 = ANY(%s)",
                (self.library, sorted(wanted)),
            ).fetchall()
        blobs = {str(sha): bytes(data) for sha, data in rows}
        missing = [a.name for a in case.attachments if a.sha256 in wanted and a.sha256 not in blobs]
        if missing:
            raise MissingCaseFiles(
                f"its attached file(s) {', '.join(missing)} are missing from the store "
                f"(library {self.library!r})"
            )
        seal(self.root)
        for attachment in case.attachments:
            if attachment.sha256 in wanted:
                _write_once(found[attachment.name], blobs[attachment.sha256])
        return found

    def rename(self, old: str, new: str) -> None:
        self._check(old)
        self._check(new)
        with connection(self.pool) as conn, conn.transaction():
            exists = conn.execute(
                "SELECT 1 FROM memento_cases WHERE library = %s AND skill = %s LIMIT 1",
                (self.library, old),
            ).fetchone()
            if exists is None:
                return  # as the folder: a skill without cases leaves the new name's alone
            conn.execute(  # the new name's cases are replaced, as the folder's file is
                "DELETE FROM memento_cases WHERE library = %s AND skill = %s", (self.library, new)
            )
            conn.execute(
                "UPDATE memento_cases SET skill = %s WHERE library = %s AND skill = %s",
                (new, self.library, old),
            )


def _parse(line: str) -> Case | None:
    try:
        return Case.from_record(json.loads(line))
    except (ValueError, TypeError, AttributeError):
        return None  # a hand-edited row is skipped, as a torn line in the folder's file


def _write_once(target: Path, data: bytes) -> None:
    """Write `target` 0600 whole (a unique temp file renamed: two workers may race on it)."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
