"""Regression cases: tasks a skill solved before, replayed to gate every change to that skill.

Kept beside the library (under `.memento/cases/`), never inside a skill folder, so the gold
answers they hold are never exported with a skill, never embedded and never put in a prompt.
Only the judge reads a case's gold: every case file is 0600 and `.memento/` and `cases/` are
0700, owned by the host user, so the sandbox's uid can neither read nor traverse to them.

A case keeps the files its task was given (a GAIA spreadsheet, a PDF): replayed without them, a
task it solved fails whatever the change, and the gate would refuse good changes for it. They
are kept by content under `.memento/cases/files/<sha256>/<name>`, so a file many cases share is
stored once, and a file no case refers to any more is deleted.

`Cases` is what the gate and the write phase use; `CaseStore` keeps them in the library folder,
`PgCaseStore` (stores/pg_cases.py) in the shared store, with the same guarantees.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from memento_skills.stores.paths import safe_relative, safe_skill_dir

MAX_CASES_PER_SKILL = 50
MAX_CASE_FILES_BYTES = 50 * 1024 * 1024
"""The most a case's attachments may take on disk; a task with more is not recorded."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


class CaseNotRecorded(Exception):
    """A solved task that cannot become a regression case; the message says why."""


class MissingCaseFiles(Exception):
    """A case whose stored attachments are gone: it can no longer be replayed as it was solved."""


@dataclass(frozen=True)
class Attachment:
    """A file a task was given: its path inside the task's attachments folder, and its content's
    sha256, which is where the store keeps it."""

    name: str
    sha256: str

    def __post_init__(self) -> None:
        # a hand-edited line must not name a file outside the store or the replay's workspace
        safe_relative(self.name)
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"not a sha256: {self.sha256!r}")


@dataclass(frozen=True)
class Case:
    task: str
    ground_truth: str | None
    rubric: str | None = None
    task_id: str = ""
    attachments: tuple[Attachment, ...] = ()

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Case:
        """A stored line as a case; lines written before cases kept files have none."""
        files = tuple(Attachment(**a) for a in record.pop("attachments", None) or ())
        return cls(**record, attachments=files)


class Cases(Protocol):
    """Where a library's regression cases are kept, and the files they were given."""

    library_root: Path
    """The folder of the library the cases belong to (a shared store's local copy)."""

    def add(self, skill: str, case: Case, files: Mapping[str, Path] | None = None) -> bool: ...
    def load(self, skill: str) -> list[Case]: ...
    def files_of(self, case: Case) -> dict[str, Path]: ...
    def rename(self, old: str, new: str) -> None: ...


class CaseStore:
    """The regression cases of the library folder at `library_root`."""

    def __init__(self, library_root: Path):
        self.library_root = Path(library_root)
        self.root = Path(library_root) / ".memento" / "cases"
        self.files_dir = self.root / "files"

    def _path(self, skill: str) -> Path:
        safe_skill_dir(self.root, skill)
        return self.root / f"{skill}.jsonl"

    def add(self, skill: str, case: Case, files: Mapping[str, Path] | None = None) -> bool:
        """Record a solved task for `skill` with the files it was given (name → file); False when
        it is already recorded (same task, gold and files). One of the same task and gold with
        other files, or none (recorded before cases kept files), is replaced: it could not be
        replayed as the task was solved.

        Raises CaseNotRecorded when the files take more than MAX_CASE_FILES_BYTES. Recording the
        case without them would bring back the failure cases keep files to avoid (a replay that
        cannot pass, so a good change refused as a regression); keeping them would let a few
        large tasks fill the disk. Leaving the case out costs only one fewer check on the skill.
        """
        path = self._path(skill)
        files = dict(files or {})
        case = replace(case, attachments=describe_files(files))
        self._seal()
        # the store-wide lock orders every add against the deletion of files no case refers to
        with FileLock(str(self.root / "files.lock")), FileLock(str(path) + ".lock"):
            cases = self.load(skill)
            same_task = [c for c in cases if same_task_key(c) == same_task_key(case)]
            if any(c.attachments == case.attachments for c in same_task):
                return False
            for attachment in case.attachments:
                self._keep(attachment, files[attachment.name])
            kept = [*(c for c in cases if c not in same_task), case][-MAX_CASES_PER_SKILL:]
            tmp = path.with_suffix(".tmp")
            write_private(tmp, "".join(json.dumps(asdict(c)) + "\n" for c in kept).encode())
            tmp.replace(path)
            if any(c.attachments and c not in kept for c in cases):
                self._prune()
        return True

    def load(self, skill: str) -> list[Case]:
        return _read(self._path(skill))

    def files_of(self, case: Case) -> dict[str, Path]:
        """Where the case's attachments are kept, by name.

        Raises MissingCaseFiles naming those that are gone (deleted by hand, a partial copy of
        the library): the case cannot be replayed as it was solved.
        """
        found = {a.name: self.files_dir / a.sha256 / a.name for a in case.attachments}
        missing = [name for name, path in found.items() if not path.is_file()]
        if missing:
            raise MissingCaseFiles(
                f"its attached file(s) {', '.join(missing)} are missing from {self.files_dir}"
            )
        return found

    def rename(self, old: str, new: str) -> None:
        src, dst = self._path(old), self._path(new)
        if src.exists():
            src.replace(dst)

    def _seal(self) -> None:
        """Create the store's folders 0700, and close up those an older version left open."""
        seal(self.root)
        for path in self.root.glob("*.jsonl"):
            path.chmod(0o600)

    def _keep(self, attachment: Attachment, source: Path) -> None:
        target = self.files_dir / attachment.sha256 / attachment.name
        if target.is_file():
            return  # the same content under the same name is stored once
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        tmp.chmod(0o600)
        tmp.replace(target)

    def _prune(self) -> None:
        """Delete the stored files no case refers to any more (their cases were trimmed or
        replaced); without it every case dropped would leave its files behind for good."""
        used = {
            a.sha256 for p in self.root.glob("*.jsonl") for c in _read(p) for a in c.attachments
        }
        if self.files_dir.is_dir():
            for folder in self.files_dir.iterdir():
                if folder.name not in used:
                    shutil.rmtree(folder, ignore_errors=True)


def seal(cases_root: Path) -> None:
    """Create `<library>/.memento/cases` 0700 (and `.memento`), closing up ones left open."""
    for folder in (cases_root.parent, cases_root):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write `path` readable by its owner only, from its first byte."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _read(path: Path) -> list[Case]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(Case.from_record(json.loads(line)))
        except (ValueError, TypeError, AttributeError):
            continue  # a torn or hand-edited line is skipped, not fatal
    return out


def same_task_key(case: Case) -> tuple[str, str | None]:
    return case.task, case.ground_truth


def describe_files(files: Mapping[str, Path]) -> tuple[Attachment, ...]:
    total = sum(path.stat().st_size for path in files.values())
    if total > MAX_CASE_FILES_BYTES:
        raise CaseNotRecorded(
            f"its attached files take {total / 2**20:.1f} MB, over the "
            f"{MAX_CASE_FILES_BYTES / 2**20:.0f} MB a regression case may keep"
        )
    return tuple(Attachment(name, _sha256(files[name])) for name in sorted(files))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
