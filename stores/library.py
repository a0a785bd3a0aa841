"""The skill library on disk: the agent's long-term memory and the source of truth.

Layout under the library root:

    <name>/SKILL.md (+ scripts/, references/, assets/)   the live skills
    .memento/history/<name>/<version>/                   every version ever written, for diff/rollback
    .memento/locks/<name>.lock                           cross-process write locks
    .memento/tmp/                                        staging for atomic folder creation
    .memento/trials/<name>.json (+ .lock)                a written version not yet vetted by the gate

Writes are atomic (temp file, fsync, rename) and serialised per skill by a file lock held across the
read-modify-write, so concurrent writers in different processes lose no update. A malformed skill
is reported in `errors` and skipped; it never stops the rest of the library from loading.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from memento_skills.stores.mcp_config import MCP_FILE, McpConfigError, McpServer, parse_json
from memento_skills.stores.paths import resolve_inside, safe_relative, safe_skill_dir
from memento_skills.stores.skill import (
    MAX_SKILL_FILE_BYTES,
    SKILL_FILE,
    Problem,
    Skill,
    SkillError,
    SkillExistsError,
    SkillNotFoundError,
    SkillValidationError,
    Utility,
    check_name,
    now,
    parse_skill,
)

META_DIR = ".memento"
MAX_AUX_FILE_BYTES = 5 * 1024 * 1024
_TMP_MARK = ".tmp-"


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see either the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class VersionInfo:
    version: int
    parent_version: int | None
    updated: str
    provenance: str
    source: str
    live: bool
    trusted: bool = True
    trust_by: str = ""
    trust_at: str = ""


@dataclass
class LoadReport:
    skills: list[Skill]
    errors: list[SkillValidationError]


class SkillLibrary:
    """A directory of Agent Skills folders with versioned, locked, atomic writes."""

    def __init__(self, root: Path | str, *, lock_timeout_s: float = 30.0):
        self.root = Path(root).expanduser().absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self._meta = self.root / META_DIR
        self._lock_timeout_s = lock_timeout_s
        # name -> (stat signature of SKILL.md, parsed skill or its validation error)
        self._cache: dict[str, tuple[tuple[int, ...], Skill | SkillValidationError]] = {}
        self.errors: list[SkillValidationError] = []
        self._locks: dict[str, FileLock] = {}  # one per name, so nested locking re-enters
        self.recovered = self.recover_trials()

    # ----------------------------------------------------------------- reading

    def scan(self) -> LoadReport:
        """Load every skill folder, re-parsing only SKILL.md files whose stat changed."""
        skills: list[Skill] = []
        errors: list[SkillValidationError] = []
        seen: set[str] = set()
        with os.scandir(self.root) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith(".") or entry.name.startswith("__"):
                    continue
                if entry.is_symlink():
                    errors.append(
                        SkillValidationError(
                            entry.path,
                            [Problem("folder", "is a symlink", "replace it with a real folder")],
                        )
                    )
                    continue
                if not entry.is_dir():
                    continue
                seen.add(entry.name)
                result = self._load_entry(entry.name)
                if isinstance(result, Skill):
                    skills.append(result)
                else:
                    errors.append(result)
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        self.errors = errors
        return LoadReport(skills, errors)

    def skills(self) -> list[Skill]:
        return self.scan().skills

    def names(self) -> list[str]:
        return [s.name for s in self.skills()]

    def _load_entry(self, folder: str) -> Skill | SkillValidationError:
        path = self.root / folder / SKILL_FILE
        name_problems = check_name(folder)
        if name_problems:
            return SkillValidationError(
                self.root / folder,
                [
                    Problem("folder", p.problem, "rename the folder to a valid skill name")
                    for p in name_problems
                ],
            )
        try:
            st = os.lstat(path)  # one syscall; scan() runs on every routed task
        except FileNotFoundError:
            return SkillValidationError(
                path, [Problem("file", "SKILL.md is missing", "add a SKILL.md with frontmatter")]
            )
        if not stat.S_ISREG(st.st_mode):
            return SkillValidationError(
                path, [Problem("file", "is not a regular file (symlink?)", "make it a plain file")]
            )
        sig = (st.st_ino, st.st_size, st.st_mtime_ns, *_stat_sig(self.root / folder / MCP_FILE))
        cached = self._cache.get(folder)
        if cached is not None and cached[0] == sig:
            return cached[1]
        result: Skill | SkillValidationError
        if st.st_size > MAX_SKILL_FILE_BYTES:
            result = SkillValidationError(
                path,
                [
                    Problem(
                        "file",
                        f"{st.st_size} bytes, the limit is {MAX_SKILL_FILE_BYTES}",
                        "move long material into references/",
                    )
                ],
            )
        else:
            try:
                result = parse_skill(path.read_bytes(), path, folder_name=folder)
                folder_mcp_servers(self.root / folder, result)  # a bad mcp.json: invalid skill
            except SkillValidationError as e:
                result = e
            except OSError as e:
                result = SkillValidationError(
                    path, [Problem("file", f"unreadable: {e}", "check permissions")]
                )
        self._cache[folder] = (sig, result)
        return result

    def get(self, name: str) -> Skill:
        """The live skill `name`. Raises SkillNotFoundError, or SkillValidationError if malformed."""
        folder = safe_skill_dir(self.root, name)
        if not folder.is_dir():
            raise SkillNotFoundError(f"no skill named {name!r} in {self.root}")
        result = self._load_entry(name)
        if isinstance(result, SkillValidationError):
            raise result
        return result

    def exists(self, name: str) -> bool:
        return safe_skill_dir(self.root, name).is_dir()

    def skill_dir(self, name: str) -> Path:
        return safe_skill_dir(self.root, name)

    def mcp_servers(self, skill: Skill) -> list[McpServer]:
        """The MCP servers a skill declares: its frontmatter's, then its folder's mcp.json."""
        return folder_mcp_servers(self.skill_dir(skill.name), skill)

    def list_files(self, name: str) -> list[str]:
        """Relative paths of the skill's files besides SKILL.md (scripts, references, assets)."""
        folder = self.skill_dir(name)
        return _list_files(folder)

    def read_file(self, name: str, rel: str) -> bytes:
        path = resolve_inside(self.skill_dir(name), rel)
        if not path.is_file():
            raise FileNotFoundError(f"skill {name!r} has no file {rel!r}")
        return path.read_bytes()

    # ----------------------------------------------------------------- writing

    @contextlib.contextmanager
    def lock(self, *names: str) -> Iterator[None]:
        """Hold the write locks of `names` (sorted, so two writers never deadlock)."""
        locks = []
        for name in sorted(set(names)):
            safe_skill_dir(self.root, name)
            if name not in self._locks:
                lock_path = self._meta / "locks" / f"{name}.lock"
                lock_path.parent.mkdir(parents=True, exist_ok=True)
                self._locks[name] = FileLock(lock_path, timeout=self._lock_timeout_s)
            locks.append(self._locks[name])
        with contextlib.ExitStack() as stack:
            for lk in locks:
                try:
                    stack.enter_context(lk)
                except Timeout:
                    raise SkillError(
                        f"timed out after {self._lock_timeout_s}s waiting for {lk.lock_file}: "
                        "another process is writing this skill; retry, or remove the lock file "
                        "if no memento process is running"
                    ) from None
            yield

    def create(self, skill: Skill, files: Mapping[str, bytes] | None = None) -> Skill:
        """Add a new skill (version 1 unless `skill` says otherwise). Refuses an existing name."""
        self._check_writable(skill)
        staged_files = self._check_files(files or {})
        with self.lock(skill.name):
            target = safe_skill_dir(self.root, skill.name)
            if target.exists():
                raise SkillExistsError(
                    f"skill {skill.name!r} already exists in {self.root}; update it or pick another name"
                )
            stamp = now()
            skill = skill.with_changes(created=stamp, updated=stamp, path=target / SKILL_FILE)
            staging = self._meta / "tmp" / uuid.uuid4().hex
            try:
                self._write_folder(staging, skill, staged_files)
                self._snapshot_from(staging, skill.name, skill.version)
                os.rename(staging, target)
                _fsync_dir(self.root)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return self.get(skill.name)

    def update(
        self,
        name: str,
        *,
        files: Mapping[str, bytes] | None = None,
        remove_files: tuple[str, ...] = (),
        apply: Callable[[Skill], Mapping[str, object]] | None = None,
        **changes: object,
    ) -> Skill:
        """Write a new version of `name` with `changes` (Skill fields); the old one stays in history.

        `apply(current)` returns changes computed from the live version while the lock is held,
        for read-modify-write edits (a patch to the body) that must not lose a concurrent update.
        """
        self._check_changes(name, changes)
        staged_files = self._check_files(files or {})
        with self.lock(name):
            current = self._read_live(name)
            if apply is not None:
                changes = {**changes, **apply(current)}
                self._check_changes(name, changes)
            self._ensure_snapshot(current)
            new = current.with_changes(
                **changes,
                version=self._next_version(name, current.version),
                parent_version=current.version,
                updated=now(),
            )
            self._check_writable(new)
            self._commit(new, staged_files, remove_files)
        return self.get(name)

    def record_outcome(self, name: str, success: bool) -> Skill:
        """Count one judged use of the skill. Bookkeeping only: no new version, no re-embedding."""
        with self.lock(name):
            current = self._read_live(name)
            u = current.utility
            utility = Utility(u.successes + int(success), u.failures + int(not success))
            updated = current.with_changes(utility=utility)
            atomic_write(self.skill_dir(name) / SKILL_FILE, updated.to_markdown().encode("utf-8"))
        return self.get(name)

    def delete(self, name: str) -> None:
        """Remove the live skill; its history stays, so `rollback` can bring it back."""
        with self.lock(name):
            with contextlib.suppress(SkillValidationError):
                self._ensure_snapshot(self._read_live(name))
            folder = self.skill_dir(name)
            trash = self._meta / "tmp" / f"deleted-{name}-{uuid.uuid4().hex[:8]}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(folder, trash)
            _fsync_dir(self.root)
            shutil.rmtree(trash, ignore_errors=True)
        self._cache.pop(name, None)

    def rename(self, old: str, new: str) -> Skill:
        """Rename a skill (folder, frontmatter name and history) as a new version."""
        for problem in check_name(new):
            raise SkillError(f"cannot rename to {new!r}: {problem}")
        with self.lock(old, new):
            current = self._read_live(old)
            if self.skill_dir(new).exists():
                raise SkillExistsError(f"cannot rename {old!r}: {new!r} already exists")
            self._ensure_snapshot(current)
            old_hist, new_hist = self._history_dir(old), self._history_dir(new)
            if new_hist.exists():
                raise SkillExistsError(
                    f"cannot rename to {new!r}: a deleted skill of that name still has history in "
                    f"{new_hist}; roll it back and delete it properly, or choose another name"
                )
            os.rename(self.skill_dir(old), self.skill_dir(new))
            if old_hist.exists():
                new_hist.parent.mkdir(parents=True, exist_ok=True)
                os.rename(old_hist, new_hist)
            renamed = current.with_changes(
                name=new,
                version=self._next_version(new, current.version),
                parent_version=current.version,
                updated=now(),
            )
            self._commit(renamed, {}, ())
        self._cache.pop(old, None)
        return self.get(new)

    # ----------------------------------------------------------------- history

    def history(self, name: str) -> list[VersionInfo]:
        """Every recorded version of `name`, oldest first (the live one marked)."""
        safe_skill_dir(self.root, name)
        live: Skill | None = None
        with contextlib.suppress(SkillNotFoundError, SkillValidationError):
            live = self.get(name)
        versions: dict[int, VersionInfo] = {}
        hist = self._history_dir(name)
        if hist.is_dir():
            for entry in hist.iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    s = self.read_version(name, int(entry.name))
                except SkillError:
                    continue
                versions[s.version] = _version_info(s, live=False)
        if live is not None:
            versions[live.version] = _version_info(live, live=True)
        if not versions:
            raise SkillNotFoundError(f"no skill or history named {name!r} in {self.root}")
        return [versions[v] for v in sorted(versions)]

    def read_version(self, name: str, version: int) -> Skill:
        folder = self._history_dir(name) / str(version)
        path = folder / SKILL_FILE
        if not path.is_file():
            live = None
            with contextlib.suppress(SkillError):
                live = self.get(name)
            if live is not None and live.version == version:
                return live
            raise SkillNotFoundError(f"skill {name!r} has no version {version} in its history")
        return parse_skill(path.read_bytes(), path)

    def diff(self, name: str, a: int, b: int) -> str:
        """Unified diff of SKILL.md and the skill's files between versions `a` and `b`."""
        fa, fb = self._version_files(name, a), self._version_files(name, b)
        out: list[str] = []
        for rel in sorted(set(fa) | set(fb)):
            left, right = fa.get(rel), fb.get(rel)
            if left == right:
                continue
            if _is_binary(left) or _is_binary(right):
                out.append(f"Binary file {rel} differs between v{a} and v{b}\n")
                continue
            out.extend(
                difflib.unified_diff(
                    (left or b"").decode("utf-8").splitlines(keepends=True),
                    (right or b"").decode("utf-8").splitlines(keepends=True),
                    fromfile=f"{name}@v{a}/{rel}" if left is not None else "/dev/null",
                    tofile=f"{name}@v{b}/{rel}" if right is not None else "/dev/null",
                )
            )
        text = "".join(out)
        return text if not text or text.endswith("\n") else text + "\n"

    def rollback(self, name: str, version: int) -> Skill:
        """Make `version`'s content live again, as a new version (so the rollback is undoable)."""
        with self.lock(name):
            old = self.read_version(name, version)
            old_files = {
                rel: data
                for rel, data in self._version_files(name, version).items()
                if rel != SKILL_FILE
            }
            folder = self.skill_dir(name)
            live: Skill | None = None
            if folder.exists():
                result = self._load_entry(name)
                if isinstance(result, Skill):
                    live = result
                    self._ensure_snapshot(live)
            restored = old.with_changes(
                name=name,
                version=self._next_version(name, live.version if live else version),
                parent_version=version,
                updated=now(),
                utility=live.utility if live else old.utility,
            )
            current_files = set(_list_files(folder)) if folder.exists() else set()
            self._commit(restored, old_files, tuple(sorted(current_files - set(old_files))))
        return self.get(name)

    # ----------------------------------------------------------------- trials

    @contextlib.contextmanager
    def trial(self, name: str, version: int, base_version: int | None) -> Iterator[None]:
        """Mark `version` of `name` (just written; `base_version` None for a new skill) as live
        on trial while the caller vets it, and take it back if the caller does not finish.

        The write phase makes a change live before its gate replays it, so that the replays
        run the real thing. A stop in between (Ctrl-C, an endpoint outage, a kill) had left an
        unvetted version live: seen when a benchmark run was stopped mid-gate. An exception
        undoes the change here; a killed process leaves its marker, and the next library to
        open undoes it (`recover_trials`). The marker's lock is held meanwhile, so another
        process never undoes a trial that is still running.
        """
        folder = self._meta / "trials"
        folder.mkdir(parents=True, exist_ok=True)
        safe_skill_dir(self.root, name)
        lock = FileLock(folder / f"{name}.lock", timeout=self._lock_timeout_s)
        marker = folder / f"{name}.json"
        with lock:
            record = {"skill": name, "version": version, "base_version": base_version}
            atomic_write(marker, json.dumps(record).encode("utf-8"))
            try:
                yield
            except BaseException:
                self.take_back(name, version, base_version)
                raise
            finally:
                marker.unlink(missing_ok=True)

    def recover_trials(self) -> list[str]:
        """Undo the trials of processes that died mid-trial; returns the skills taken back."""
        folder = self._meta / "trials"
        if not folder.is_dir():
            return []
        undone = []
        for marker in sorted(folder.glob("*.json")):
            lock = FileLock(marker.with_suffix(".lock"), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue  # its trial is still running in another process
            try:
                if not marker.exists():
                    continue  # it finished while we waited for the lock
                try:
                    record = json.loads(marker.read_text(encoding="utf-8"))
                    name, version = str(record["skill"]), int(record["version"])
                    base = record.get("base_version")
                except (ValueError, KeyError, TypeError):
                    marker.unlink(missing_ok=True)  # unreadable: nothing it names can be undone
                    continue
                if self.take_back(name, version, None if base is None else int(base)):
                    undone.append(name)
                marker.unlink(missing_ok=True)
            finally:
                lock.release()
        return undone

    def take_back(self, name: str, version: int, base_version: int | None) -> bool:
        """Take back `version` if it is still the live one (a later write is someone else's)."""
        with self.lock(name):
            try:
                live = self._read_live(name)
            except SkillError:
                return False
            if live.version != version:
                return False
            if base_version is None:
                self.delete(name)
            else:
                self.rollback(name, base_version)
        return True

    # ----------------------------------------------------------------- internals

    def _read_live(self, name: str) -> Skill:
        folder = safe_skill_dir(self.root, name)
        path = folder / SKILL_FILE
        if not folder.is_dir():
            raise SkillNotFoundError(f"no skill named {name!r} in {self.root}")
        try:
            return parse_skill(path.read_bytes(), path, folder_name=name)
        except FileNotFoundError:
            raise SkillValidationError(
                path, [Problem("file", "SKILL.md is missing", "restore it")]
            ) from None

    @staticmethod
    def _check_changes(name: str, changes: Mapping[str, object]) -> None:
        if "name" in changes and changes["name"] != name:
            raise SkillError("use rename() to change a skill's name")
        managed = {"version", "parent_version", "created", "updated", "path", "utility"}
        forbidden = managed & set(changes)
        if forbidden:
            raise SkillError(f"{sorted(forbidden)} are managed by the library and cannot be set")

    def _check_writable(self, skill: Skill) -> None:
        """Validate what would be written by parsing it back, so the library never stores junk."""
        text = skill.to_markdown()
        parse_skill(text, f"<new {skill.name}/SKILL.md>", folder_name=skill.name)

    def _check_files(self, files: Mapping[str, bytes]) -> dict[str, bytes]:
        checked: dict[str, bytes] = {}
        for rel, data in files.items():
            p = safe_relative(rel)
            if str(p) == SKILL_FILE:
                raise SkillError("SKILL.md is written from the skill's fields; pass it as changes")
            if len(data) > MAX_AUX_FILE_BYTES:
                raise SkillError(f"{rel}: {len(data)} bytes, the limit is {MAX_AUX_FILE_BYTES}")
            checked[str(p)] = bytes(data)
        return checked

    def _write_folder(self, folder: Path, skill: Skill, files: Mapping[str, bytes]) -> None:
        folder.mkdir(parents=True, exist_ok=False)
        for rel, data in files.items():
            atomic_write(resolve_inside(folder, rel), data)
        atomic_write(folder / SKILL_FILE, skill.to_markdown().encode("utf-8"))

    def _commit(self, skill: Skill, files: Mapping[str, bytes], remove: tuple[str, ...]) -> None:
        """Write a new live version: history snapshot first, auxiliary files, SKILL.md last.

        A crash at any point leaves a SKILL.md that parses (old or new) and the previous
        version complete in history.
        """
        folder = self.skill_dir(skill.name)
        for rel in remove:
            target = resolve_inside(folder, rel)
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
        for rel, data in files.items():
            atomic_write(resolve_inside(folder, rel), data)
        skill_md = skill.to_markdown().encode("utf-8")
        staging = self._meta / "tmp" / uuid.uuid4().hex
        try:
            staging.mkdir(parents=True)
            for rel in _list_files(folder):
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / rel, dest)
            (staging / SKILL_FILE).write_bytes(skill_md)
            self._snapshot_from(staging, skill.name, skill.version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        atomic_write(folder / SKILL_FILE, skill_md)
        self._clean_temp(folder)

    def _history_dir(self, name: str) -> Path:
        safe_skill_dir(self.root, name)
        return self._meta / "history" / name

    def _next_version(self, name: str, current: int) -> int:
        hist = self._history_dir(name)
        recorded = (
            [int(p.name) for p in hist.iterdir() if p.name.isdigit()] if hist.is_dir() else []
        )
        return max([current, *recorded]) + 1

    def _ensure_snapshot(self, skill: Skill) -> None:
        """Keep the live version in history before it is replaced (seed or hand-copied skills)."""
        if not (self._history_dir(skill.name) / str(skill.version) / SKILL_FILE).exists():
            self._snapshot_from(self.skill_dir(skill.name), skill.name, skill.version)

    def _snapshot_from(self, source: Path, name: str, version: int) -> None:
        dest = self._history_dir(name) / str(version)
        if dest.exists():
            shutil.rmtree(dest)
        staging = self._meta / "tmp" / f"snap-{uuid.uuid4().hex}"
        staging.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, staging, symlinks=True, ignore=_ignore_temp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, dest)

    def _version_files(self, name: str, version: int) -> dict[str, bytes]:
        folder = self._history_dir(name) / str(version)
        if not folder.is_dir():
            live = self.get(name)
            if live.version != version:
                raise SkillNotFoundError(f"skill {name!r} has no version {version} in its history")
            folder = self.skill_dir(name)
        files = {rel: (folder / rel).read_bytes() for rel in _list_files(folder)}
        files[SKILL_FILE] = (folder / SKILL_FILE).read_bytes()
        return files

    @staticmethod
    def _clean_temp(folder: Path) -> None:
        for p in folder.rglob(f"*{_TMP_MARK}*"):
            with contextlib.suppress(OSError):
                p.unlink()


def _version_info(skill: Skill, *, live: bool) -> VersionInfo:
    return VersionInfo(
        skill.version,
        skill.parent_version,
        skill.updated,
        skill.provenance,
        skill.source,
        live,
        skill.trusted,
        skill.trust_by,
        skill.trust_at,
    )


def _list_files(folder: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if fn.startswith(".") or (dirpath == str(folder) and fn == SKILL_FILE):
                continue
            full = Path(dirpath) / fn
            if full.is_symlink():
                continue
            out.append(full.relative_to(folder).as_posix())
    return out


def _ignore_temp(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if _TMP_MARK in n]


def _is_binary(data: bytes | None) -> bool:
    if data is None:
        return False
    if b"\x00" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _stat_sig(path: Path) -> tuple[int, int, int]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def folder_mcp_servers(folder: Path, skill: Skill) -> list[McpServer]:
    """`skill`'s MCP servers with its folder's mcp.json; SkillValidationError if that is bad."""
    path = folder / MCP_FILE
    if not path.is_file() or path.is_symlink():
        return list(skill.mcp_servers)
    try:
        extra = parse_json(path.read_bytes(), where="", owner="skill")
    except McpConfigError as e:
        where = f"{e.where}: " if e.where else ""
        raise SkillValidationError(path, [Problem(MCP_FILE, where + e.problem, e.fix)]) from None
    except OSError as e:
        raise SkillValidationError(
            path, [Problem(MCP_FILE, f"unreadable: {e}", "check it")]
        ) from None
    declared = {s.name for s in skill.mcp_servers}
    twice = sorted(declared & {s.name for s in extra})
    if twice:
        raise SkillValidationError(
            path,
            [
                Problem(
                    MCP_FILE,
                    f"server(s) {', '.join(twice)} also declared in the frontmatter",
                    "declare each server in one place",
                )
            ],
        )
    return [*skill.mcp_servers, *extra]
