"""A Postgres store's local copy: the live skills as real folders, for the code that reads files.

The execute node, the sandbox (skill scripts run from a folder) and the index read a skill's
files where the folder library keeps them, `<root>/<name>/`; a worker on the Postgres store
keeps such a folder of the live versions, brought in line whenever the store's generation moves
and only for the skills whose row moved. Each folder is built complete beside the copy and
switched in (one renameat2 exchange), so a reader sees a version whole. A stamp per skill
(`.memento/stamps/<name>`: its live version and the generation of its last write) lets a worker
restarting on its copy, or two processes sharing one, keep the folders that are current.

It is a cache of the store, so its files are written without fsync; after a reboot (a power
loss may have lost writes) its stamps are forgotten and every folder is rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from memento_skills.stores.atomic import atomic_write, exchange_folders
from memento_skills.stores.library import META_DIR
from memento_skills.stores.library_id import ID_FILE
from memento_skills.stores.paths import resolve_inside
from memento_skills.stores.skill import (
    SKILL_FILE,
    Skill,
    SkillValidationError,
    Utility,
    check_name,
    parse_skill,
    serialise,
)
from memento_skills.stores.skill_folder import folder_mcp_servers

Fetch = Callable[[Mapping[str, int]], Mapping[str, Mapping[str, tuple[int, bytes]]]]
"""Given name -> version, each version's files as rel -> (mode, bytes), from the store."""


@dataclass(frozen=True)
class LiveRow:
    """A skill's live row: its live version (None: deleted), its counts, its last write's stamp."""

    version: int | None
    successes: int
    failures: int
    outcomes: tuple[str, ...]
    stamp: int

    @property
    def utility(self) -> Utility:
        return Utility(self.successes, self.failures)


def _boot_id() -> str:
    """This boot of the machine (Linux); "" where the system does not say."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _replace(path: Path, data: bytes) -> None:
    """Replace a file of the local copy whole (readers see the old or the new), without the
    fsync a source of truth needs: the copy is rebuilt from the store after a reboot."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class LocalCopy:
    """The live skills of one store library as folders under `root` (see the module doc)."""

    def __init__(self, root: Path, library_id: str):
        self.root = root
        self._meta = root / META_DIR
        self._stamps = self._meta / "stamps"
        self._tmp = self._meta / "tmp"
        for folder in (self._stamps, self._tmp, self._meta / "locks"):
            folder.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(self._meta / "locks" / ".materialise.lock")
        """Held while the copy changes: processes sharing one copy take turns."""
        self.rows: dict[str, LiveRow] = {}  # live skills only
        self.parsed: dict[str, Skill | SkillValidationError] = {}
        self.errors: list[SkillValidationError] = []
        self._text_current: set[str] = set()  # skills whose version text has their counts
        self._write_library_id(library_id)
        self._check_boot()
        self._clear_leftovers()

    def _write_library_id(self, library_id: str) -> None:
        """Record the store's library id in the copy, so `library_id(root)` (the Chroma
        collection's name) is the same in every worker."""
        path = self._meta / ID_FILE
        real = os.path.realpath(self.root)
        st = os.stat(real)
        record = {"id": library_id, "path": real, "inode": [st.st_dev, st.st_ino]}
        try:
            if json.loads(path.read_text("utf-8")) == record:
                return
        except (OSError, ValueError):
            pass
        atomic_write(path, (json.dumps(record, indent=1) + "\n").encode())

    def _check_boot(self) -> None:
        """Forget the copy's stamps after a reboot, so every folder is rebuilt: its files are
        written without fsync (it is a cache), and a power loss may have lost some."""
        path = self._meta / "boot_id"
        here = _boot_id()
        with contextlib.suppress(OSError):
            if path.read_text().strip() == here:
                return
        with self.lock:
            shutil.rmtree(self._stamps, ignore_errors=True)
            self._stamps.mkdir(parents=True, exist_ok=True)
            atomic_write(path, f"{here}\n".encode())

    def _clear_leftovers(self) -> None:
        """Remove the half-built folders of a process killed while it updated the copy."""
        with self.lock:
            for entry in os.listdir(self._tmp):
                shutil.rmtree(self._tmp / entry, ignore_errors=True)

    def apply(self, rows: Mapping[str, LiveRow], texts: Mapping[str, bytes], fetch: Fetch) -> None:
        """Bring the copy in line with the moved `rows` (their live versions' SKILL.md in
        `texts`): a folder whose version moved is rebuilt from the files `fetch` returns, one
        whose counts only moved gets its SKILL.md rewritten, a deleted one goes."""
        with self.lock:
            rebuild = self._bring_in_line(rows, texts)
            if rebuild:
                contents = fetch(rebuild)
                for name in rebuild:
                    self._materialise(name, rows[name], texts[name], contents.get(name, {}))
        self.errors = [e for e in self.parsed.values() if isinstance(e, SkillValidationError)]

    def _bring_in_line(
        self, rows: Mapping[str, LiveRow], texts: Mapping[str, bytes]
    ) -> dict[str, int]:
        """Apply the moved rows; returns the skills whose folder must be rebuilt (their files
        fetched), name -> version. Caller holds the lock."""
        rebuild: dict[str, int] = {}
        for name, row in rows.items():
            folder = self.root / name
            if row.version is None or name not in texts:
                self.rows.pop(name, None)
                self.parsed.pop(name, None)
                self._remove_folder(name)
                continue
            self.rows[name] = row
            self.parsed[name] = self._parse_live(name, row, texts[name])
            on_disk = self._read_stamp(name)
            if on_disk == (row.version, row.stamp) and folder.is_dir():
                self._check_mcp(name)
                continue  # another process sharing this copy wrote it already
            if on_disk is not None and on_disk[0] == row.version and folder.is_dir():
                self._write_skill_md(name, texts[name])  # only its counts moved
                self._write_stamp(name, row)
                self._check_mcp(name)
                continue
            rebuild[name] = row.version
        return rebuild

    def _parse_live(self, name: str, row: LiveRow, text: bytes) -> Skill | SkillValidationError:
        path = self.root / name / SKILL_FILE
        try:
            skill = parse_skill(text, path, folder_name=name)
        except SkillValidationError as e:
            return e
        if (skill.utility, skill.outcomes) == (row.utility, row.outcomes):
            self._text_current.add(name)
        else:
            self._text_current.discard(name)
        return skill.with_changes(utility=row.utility, outcomes=row.outcomes, path=path)

    def _check_mcp(self, name: str) -> None:
        skill = self.parsed.get(name)
        if isinstance(skill, Skill):
            try:
                folder_mcp_servers(self.root / name, skill)
            except SkillValidationError as e:
                self.parsed[name] = e

    def _live_bytes(self, name: str, text: bytes) -> bytes:
        """The SKILL.md the copy shows: the version's, with the live counts (serialised
        again only when a count moved since the version was written)."""
        skill = self.parsed.get(name)
        if name in self._text_current or not isinstance(skill, Skill):
            return text
        return serialise(skill)

    def _write_skill_md(self, name: str, text: bytes) -> None:
        _replace(self.root / name / SKILL_FILE, self._live_bytes(name, text))

    def _materialise(
        self, name: str, row: LiveRow, text: bytes, files: Mapping[str, tuple[int, bytes]]
    ) -> None:
        """Build the live folder of `name` complete beside the copy, then switch it in."""
        staging = self._tmp / f"{name}.new-{uuid.uuid4().hex[:12]}"
        try:
            staging.mkdir(parents=True)
            for rel, (mode, data) in files.items():
                path = resolve_inside(staging, rel)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                os.chmod(path, stat.S_IMODE(mode))
            (staging / SKILL_FILE).write_bytes(self._live_bytes(name, text))
            target = self.root / name
            if not target.is_dir():
                os.rename(staging, target)
            elif not exchange_folders(staging, target):
                aside = self._tmp / f"{name}.old-{uuid.uuid4().hex[:12]}"
                os.rename(target, aside)
                os.rename(staging, target)
                shutil.rmtree(aside, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # the old folder, after an exchange
        self._write_stamp(name, row)
        self._check_mcp(name)

    def _remove_folder(self, name: str) -> None:
        folder = self.root / name
        (self._stamps / name).unlink(missing_ok=True)
        if folder.is_dir():
            trash = self._tmp / f"{name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def drop_strays(self) -> None:
        """Remove the folders of skills the store no longer has (the first look of a copy)."""
        with self.lock:
            for entry in os.listdir(self.root):
                if entry.startswith(".") or entry in self.rows or check_name(entry):
                    continue
                self._remove_folder(entry)

    def _read_stamp(self, name: str) -> tuple[int, int] | None:
        try:
            version, stamp = (self._stamps / name).read_text().split()
            return int(version), int(stamp)
        except (OSError, ValueError):
            return None

    def _write_stamp(self, name: str, row: LiveRow) -> None:
        _replace(self._stamps / name, f"{row.version} {row.stamp}\n".encode())
