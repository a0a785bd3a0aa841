"""The skill library on disk: the agent's long-term memory and the source of truth.

Layout under the library root:

    <name>/SKILL.md (+ scripts/, references/, assets/)   the live skills, one folder per live version
    .memento/history/<name>/<version>/                   every version replaced or deleted (diff/rollback)
    .memento/journal/<name>.json                         a folder switch in progress (update, rename, ...)
    .memento/locks/<name>.lock                           cross-process write locks
    .memento/tmp/                                        staging: a new version's folder is built here
    .memento/trials/<name>.json (+ .lock)                a written version not yet vetted by the gate
                                                         (or the keyed change about to be written)
    .memento/generation                                  a counter every write bumps (`generation`)
    .memento/changes                                     the skills each write touched (`changes_since`)

A version appears whole or not at all: it is built complete in `.memento/tmp/`, then switched in by
renaming the live folder into history and the new folder into place, under a journal written
before and removed after; opening the library (or the next write of that skill) finishes a switch
a killed process left half done. A journal rather than a symlink swap, because a live skill must
stay a real folder (symlinked skill folders are refused as unsafe and other tools read it as is);
on Linux the switch is one renameat2(RENAME_EXCHANGE), so readers never miss the folder.
Every SKILL.md written is bytes that were parsed back first (`serialise`), so a write never leaves
a file the next read refuses. Writes are serialised per skill by a file lock held across the
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
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from memento_skills.stores.atomic import (
    TMP_MARK,
    atomic_write,
    exchange_folders,
    fsync_dir,
    fsync_path,
    write_journal,
    write_staged,
)
from memento_skills.stores.change_log import ChangeLog
from memento_skills.stores.mcp_config import MCP_FILE, McpServer
from memento_skills.stores.paths import (
    RefusedFileError,
    read_regular_file,
    resolve_inside,
    safe_relative,
    safe_skill_dir,
)
from memento_skills.stores.skill import (
    CONTENT_FIELDS,
    LIFECYCLES,
    MAX_SKILL_FILE_BYTES,
    SKILL_FILE,
    Lifecycle,
    Lift,
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
    serialise,
)
from memento_skills.stores.skill_folder import folder_files, folder_mcp_servers

META_DIR = ".memento"
GENERATION_FILE = "generation"
CHANGES_FILE = "changes"
MAX_AUX_FILE_BYTES = 5 * 1024 * 1024
OUTCOME_KEYS = 16
"""How many of the last counted runs a skill remembers: more than can be in flight on it."""


class SkillLockedError(SkillError):
    """Another process holds the write lock of a skill for longer than we may wait."""


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
    lifecycle: str = "active"
    lift: str = ""
    """The lift recorded with that version (its text form), "" when none."""


@dataclass
class LoadReport:
    skills: list[Skill]
    errors: list[SkillValidationError]


class SkillLibrary:
    """A directory of Agent Skills folders with versioned, locked, atomic writes."""

    def __init__(self, root: Path | str, *, lock_timeout_s: float = 30.0):
        self.root = Path(root).expanduser().absolute()
        self._root_str = str(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._meta = self.root / META_DIR
        self._lock_timeout_s = lock_timeout_s
        # name -> (stat signature of SKILL.md, parsed skill or its validation error)
        self._cache: dict[str, tuple[tuple[int, ...], Skill | SkillValidationError]] = {}
        self.errors: list[SkillValidationError] = []
        self._locks: dict[str, FileLock] = {}  # one per name, so nested locking re-enters
        self._tmp = self._meta / "tmp"
        self._journal = self._meta / "journal"
        self._generation = os.path.join(self._meta, GENERATION_FILE)
        # not a skill name (those never start with "."), so no skill's lock can be this one
        self._generation_lock = FileLock(
            self._meta / "locks" / ".generation.lock", timeout=self._lock_timeout_s
        )
        self._changes = ChangeLog(self._meta / CHANGES_FILE)
        self._writing = threading.local()  # the names this thread holds write locks on
        self.recovered_switches: list[str] = []
        self.recover_switches()
        self.recovered = self.recover_trials()

    # ----------------------------------------------------------------- reading

    def generation(self) -> str:
        """A value that moves whenever a write through any SkillLibrary on this folder lands:
        one small file read. A hand edit of a skill folder does not move it."""
        try:
            with open(self._generation, "rb") as f:
                return f.read(32).decode("ascii", "replace").strip() or "0"
        except FileNotFoundError:
            return "0"

    def _bump_generation(self) -> None:
        """Count one landed write (after it landed, so a reader that sees the new value sees
        the write); under a library-wide lock, so concurrent writers never count once."""
        (self._meta / "locks").mkdir(parents=True, exist_ok=True)
        try:
            with self._generation_lock:
                # what the write touched, logged before the counter moves: a reader that sees
                # the new value finds the names already there
                self._changes.append(getattr(self._writing, "names", ()))
                current = self.generation()
                count = int(current) if current.isdigit() else 0
                atomic_write(Path(self._generation), f"{count + 1}\n".encode("ascii"))
        except Timeout:
            raise SkillLockedError(
                f"timed out after {self._lock_timeout_s}s waiting for "
                f"{self._generation_lock.lock_file}: remove it if no memento process is running"
            ) from None

    def changes_since(self, token: str) -> tuple[str, set[str] | None]:
        """The skills written (through the library, by any process) since `token`: (the next
        token, their names), or None for the names when only a full scan can tell; "" asks for
        a first token. Read it before a scan, and reload just those names while the generation
        moves (stores/change_log.py)."""
        return self._changes.since(token)

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
        # string paths on the hit path: scan() runs on every routed task, a stat or two per skill
        base = os.path.join(self._root_str, folder)
        skill_md = os.path.join(base, SKILL_FILE)
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
            st = os.lstat(skill_md)
        except FileNotFoundError:
            path = Path(skill_md)
            return SkillValidationError(
                path, [Problem("file", "SKILL.md is missing", "add a SKILL.md with frontmatter")]
            )
        sig = (st.st_ino, st.st_size, st.st_mtime_ns, *_stat_sig(os.path.join(base, MCP_FILE)))
        cached = self._cache.get(folder)
        if cached is not None and cached[0] == sig:
            return cached[1]
        path = Path(skill_md)
        if not stat.S_ISREG(st.st_mode):
            return SkillValidationError(
                path, [Problem("file", "is not a regular file (symlink?)", "make it a plain file")]
            )
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
                result = parse_skill(
                    read_regular_file(path, MAX_SKILL_FILE_BYTES), path, folder_name=folder
                )
                folder_mcp_servers(self.root / folder, result)  # a bad mcp.json: invalid skill
            except SkillValidationError as e:
                result = e
            except RefusedFileError as e:
                result = SkillValidationError(path, [Problem("file", e.problem, e.fix)])
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
        return folder_files(folder)

    def read_file(self, name: str, rel: str) -> bytes:
        path = resolve_inside(self.skill_dir(name), rel)
        if not path.is_file():
            raise FileNotFoundError(f"skill {name!r} has no file {rel!r}")
        return read_regular_file(path, MAX_AUX_FILE_BYTES)

    # ----------------------------------------------------------------- writing

    @contextlib.contextmanager
    def lock(self, *names: str, timeout: float | None = None) -> Iterator[None]:
        """Hold the write locks of `names` (sorted, so two writers never deadlock)."""
        locks = []
        for name in sorted(set(names)):
            safe_skill_dir(self.root, name)
            if name not in self._locks:
                lock_path = self._meta / "locks" / f"{name}.lock"
                lock_path.parent.mkdir(parents=True, exist_ok=True)
                self._locks[name] = FileLock(lock_path, timeout=self._lock_timeout_s)
            locks.append(self._locks[name])
        held = getattr(self._writing, "names", ())
        self._writing.names = (*held, *names)  # logged by the generation bump of this write
        with contextlib.ExitStack() as stack:
            stack.callback(setattr, self._writing, "names", held)
            for lk in locks:
                wait = self._lock_timeout_s if timeout is None else timeout
                try:
                    stack.enter_context(lk.acquire(timeout=wait))
                except Timeout:
                    raise SkillLockedError(
                        f"timed out after {wait}s waiting for {lk.lock_file}: "
                        "another process is writing this skill; retry, or remove the lock file "
                        "if no memento process is running"
                    ) from None
            yield

    def create(self, skill: Skill, files: Mapping[str, bytes] | None = None) -> Skill:
        """Add a new skill (version 1 unless `skill` says otherwise). Refuses an existing name.

        A name whose deleted skill still has history continues its numbering, so no version
        number ever means two contents.
        """
        serialise(skill)
        staged_files = self._check_files(files or {})
        with self.lock(skill.name):
            self._recover_switch(skill.name)
            target = safe_skill_dir(self.root, skill.name)
            if target.exists():
                raise SkillExistsError(
                    f"skill {skill.name!r} already exists in {self.root}; update it or pick another name"
                )
            recorded = self._recorded_versions(skill.name)
            version = max([skill.version - 1, *recorded]) + 1
            stamp = now()
            skill = skill.with_changes(
                version=version, created=stamp, updated=stamp, path=target / SKILL_FILE
            )
            data = serialise(skill)
            staging = self._staging(skill.name)
            try:
                self._build(staging, None, data, staged_files, ())
                os.rename(staging, target)  # one rename: the skill appears whole or not at all
                fsync_dir(self.root)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            self._bump_generation()
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
        """Write a new version of `name` with `changes` (Skill fields); the old one goes to history.

        `apply(current)` returns changes computed from the live version while the lock is held,
        for read-modify-write edits (a patch to the body) that must not lose a concurrent update.
        """
        self._check_changes(name, changes)
        staged_files = self._check_files(files or {})
        with self.lock(name):
            self._recover_switch(name)
            current = self._read_live(name)
            if apply is not None:
                changes = {**changes, **apply(current)}
                self._check_changes(name, changes)
            new = current.with_changes(
                **{"change": "", **changes},  # a change key names the version it made only
                version=self._next_version(name, current.version),
                parent_version=current.version,
                updated=now(),
            )
            if "lift" not in changes and (
                staged_files or remove_files or content_changed(current, new)
            ):
                new = new.with_changes(lift=None)  # it measured what is no longer there
            data = serialise(new)
            staging = self._staging(name)
            self._build(staging, self.skill_dir(name), data, staged_files, remove_files)
            self._switch(name, staging, archive=current.version)
        return self.get(name)

    def record_outcome(self, name: str, success: bool, *, key: str = "") -> Skill:
        """Count one judged use of the skill. Bookkeeping only: no new version, no re-embedding.

        With a `key` (one per judged run) the count is made once: a run replayed after a crash
        finds its key among the skill's last counted ones, written with the count itself.
        """
        with self.lock(name):
            self._recover_switch(name)
            current = self._read_live(name)
            if key and key in current.outcomes:
                return self.get(name)
            u = current.utility
            utility = Utility(u.successes + int(success), u.failures + int(not success))
            outcomes = (*current.outcomes, key)[-OUTCOME_KEYS:] if key else current.outcomes
            data = serialise(current.with_changes(utility=utility, outcomes=outcomes))
            atomic_write(self.skill_dir(name) / SKILL_FILE, data)
            self._bump_generation()
        return self.get(name)

    def set_lifecycle(self, name: str, state: Lifecycle, *, reason: str = "") -> Skill:
        """Move `name` to lifecycle `state` (docs/decisions.md#lifecycle-and-lift) as a new
        version, so `rollback` takes it back; the live skill unchanged when it is there already."""
        if state not in LIFECYCLES:
            raise SkillError(f"unknown lifecycle {state!r}; use one of {', '.join(LIFECYCLES)}")
        with self.lock(name):
            self._recover_switch(name)
            if self._read_live(name).lifecycle == state:
                return self.get(name)
            return self.update(name, lifecycle=state, lifecycle_reason=reason[:300])

    def record_gate(self, name: str, version: int, state: Lifecycle, *, reason: str = "") -> Skill:
        """The gate's verdict on `version`, the change it just vetted: that version's lifecycle,
        written in place (as `record_outcome` counts), so the version stays the one its change
        key names. A later move is `set_lifecycle`'s, versioned. Refused when `version` is no
        longer live."""
        if state not in LIFECYCLES:
            raise SkillError(f"unknown lifecycle {state!r}; use one of {', '.join(LIFECYCLES)}")
        with self.lock(name):
            self._recover_switch(name)
            current = self._read_live(name)
            if current.version != version:
                raise SkillError(f"{name!r} is at v{current.version}, not the vetted v{version}")
            if current.lifecycle != state:
                marked = current.with_changes(lifecycle=state, lifecycle_reason=reason[:300])
                atomic_write(self.skill_dir(name) / SKILL_FILE, serialise(marked))
                self._bump_generation()
        return self.get(name)

    def record_lift(self, name: str, lift: Lift) -> Skill:
        """Keep `lift`, measured on `lift.version` of `name`, with the skill as a new version
        (history keeps the one before); unchanged when the same lift is there already.

        Refused when the skill's content changed since that version: the measurement describes
        a skill that is no longer live.
        """
        with self.lock(name):
            self._recover_switch(name)
            current = self._read_live(name)
            if current.lift == lift:
                return self.get(name)
            if lift.version > current.version:
                raise SkillError(
                    f"lift of {name!r} v{lift.version} measured on a version after the live "
                    f"v{current.version}; measure the live skill"
                )
            if lift.version != current.version and self._changed_since(name, lift.version):
                raise SkillError(
                    f"{name!r} changed since v{lift.version} was measured (live: "
                    f"v{current.version}); measure its lift again"
                )
            return self.update(name, lift=lift)

    def _changed_since(self, name: str, version: int) -> bool:
        """Whether the live skill does something else than its `version` did (lock held)."""
        try:
            old = self._version_files(name, version)
        except (SkillError, OSError):
            return True
        live = self._version_files(name, self._read_live(name).version)
        was = parse_skill(old.pop(SKILL_FILE), f"<{name} v{version}>")
        now_ = parse_skill(live.pop(SKILL_FILE), f"<{name} live>")
        return old != live or content_changed(was, now_)

    def delete(self, name: str) -> None:
        """Remove the live skill; its last version goes to history, so `rollback` brings it back."""
        with self.lock(name):
            self._recover_switch(name)
            folder = self.skill_dir(name)
            if not folder.is_dir():
                raise SkillNotFoundError(f"no skill named {name!r} in {self.root}")
            archive: int | None = None
            with contextlib.suppress(SkillValidationError):
                archive = self._read_live(name).version
            self._retire(name, folder, archive)
            fsync_dir(self.root)
            self._clear_leftovers(name)
            self._bump_generation()
        self._cache.pop(name, None)

    def rename(self, old: str, new: str) -> Skill:
        """Rename a skill (folder, frontmatter name and history) as a new version."""
        for problem in check_name(new):
            raise SkillError(f"cannot rename to {new!r}: {problem}")
        with self.lock(old, new):
            self._recover_switch(old)
            self._recover_switch(new)
            current = self._read_live(old)
            if self.skill_dir(new).exists():
                raise SkillExistsError(f"cannot rename {old!r}: {new!r} already exists")
            new_hist = self._history_dir(new)
            if new_hist.exists():
                raise SkillExistsError(
                    f"cannot rename to {new!r}: a deleted skill of that name still has history in "
                    f"{new_hist}; roll it back and delete it properly, or choose another name"
                )
            renamed = current.with_changes(
                name=new,
                version=self._next_version(old, current.version),
                parent_version=current.version,
                updated=now(),
            )
            data = serialise(renamed)
            staging = self._staging(old)
            self._build(staging, self.skill_dir(old), data, {}, ())
            self._switch(old, staging, archive=current.version, to=new)
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
                versions[s.version] = version_info(s, live=False)
        if live is not None:
            versions[live.version] = version_info(live, live=True)
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
        return parse_skill(read_regular_file(path, MAX_SKILL_FILE_BYTES), path)

    def diff(self, name: str, a: int, b: int) -> str:
        """Unified diff of SKILL.md and the skill's files between versions `a` and `b`."""
        return render_diff(name, a, b, self._version_files(name, a), self._version_files(name, b))

    def rollback(self, name: str, version: int) -> Skill:
        """Make `version`'s content live again, as a new version (so the rollback is undoable)."""
        with self.lock(name):
            self._recover_switch(name)
            self._restore(name, version, floor=version, keep_live=True)
        return self.get(name)

    def _restore(self, name: str, version: int, *, floor: int, keep_live: bool) -> None:
        """Switch `version`'s files back in as a new version above `floor`; the live folder goes
        to history (`keep_live`) or is discarded (a taken-back change, or one that is unreadable)."""
        old = self.read_version(name, version)
        source = self._history_dir(name) / str(version)
        if not source.is_dir():
            source = self.skill_dir(name)  # `version` is the live one
        live: Skill | None = None
        if self.skill_dir(name).is_dir():
            result = self._load_entry(name)
            if isinstance(result, Skill):
                live = result
        restored = old.with_changes(
            name=name,
            version=self._next_version(name, max(floor, live.version if live else 0)),
            parent_version=version,
            updated=now(),
            utility=live.utility if live else old.utility,
            outcomes=live.outcomes if live else old.outcomes,
            change="",
        )
        data = serialise(restored)
        staging = self._staging(name)
        self._build(staging, source, data, {}, ())
        archive = live.version if live is not None and keep_live else None
        self._switch(name, staging, archive=archive)

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
        record = {"skill": name, "version": version, "base_version": base_version}
        with self._trial_marker(name, record):
            try:
                yield
            except BaseException:
                self.take_back(name, version, base_version)
                raise

    @contextlib.contextmanager
    def _trial_marker(self, name: str, record: Mapping[str, object]) -> Iterator[None]:
        """Hold `name`'s trial lock with `record` on disk until the block ends (a killed
        process leaves the record for `recover_trials`)."""
        folder = self._meta / "trials"
        folder.mkdir(parents=True, exist_ok=True)
        safe_skill_dir(self.root, name)
        lock = FileLock(folder / f"{name}.lock", timeout=self._lock_timeout_s)
        marker = folder / f"{name}.json"
        with lock:
            atomic_write(marker, json.dumps(record).encode("utf-8"))
            try:
                yield
            finally:
                marker.unlink(missing_ok=True)

    def find_change(self, name: str, change: str) -> tuple[int, bool] | None:
        """The version of `name` that the change keyed `change` wrote, and whether it is live;
        None when it was never written (or was discarded by `recover_trials`)."""
        if not change:
            return None
        live: Skill | None = None
        with contextlib.suppress(SkillError):
            live = self.get(name)
        if live is not None and live.change == change:
            return live.version, True
        hist = self._history_dir(name)
        if hist.is_dir():
            for entry in sorted(hist.iterdir(), key=lambda p: p.name):
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(SkillError, OSError):
                    if self.read_version(name, int(entry.name)).change == change:
                        return int(entry.name), False
        return None

    @contextlib.contextmanager
    def change_on_trial(self, name: str, base_version: int | None, change: str) -> Iterator[None]:
        """Hold a trial for the change keyed `change` to `name` from before it is written until
        it is vetted: the caller writes it (carrying `change`) and gates it inside.

        An exception takes the change back as `trial` does. A killed process leaves the marker,
        and the next library to open discards the change: the unvetted version leaves no trace,
        not even in history, because the task that made it writes it again when resumed (and
        finds it with `find_change` if it got further), so each change is recorded once.
        """
        record = {"skill": name, "base_version": base_version, "change": change}
        with self._trial_marker(name, record):
            try:
                yield
            except BaseException:
                found = self.find_change(name, change)
                if found is not None and found[1]:
                    self.take_back(name, found[0], base_version)
                raise

    def discard_change(self, name: str, change: str, base_version: int | None) -> bool:
        """Undo the unvetted live version that the change keyed `change` wrote, as if it had
        never been made: `base_version` is live again under its own number and the discarded
        version leaves no copy, history included (its task writes it again when resumed);
        False when the live version is not that change's."""
        with self.lock(name):
            self._recover_switch(name)
            try:
                live = self._read_live(name)
            except SkillError:
                return False
            if not change or live.change != change:
                return False
            if base_version is None:
                return self.take_back(name, live.version, None)
            old = self.read_version(name, base_version)
            restored = old.with_changes(
                name=name, utility=live.utility, outcomes=live.outcomes, updated=now()
            )
            staging = self._staging(name)
            source = self._history_dir(name) / str(base_version)
            self._build(staging, source, serialise(restored), {}, ())
            self._switch(name, staging, archive=None)
            self._scrub(name, base_version)  # live again: history keeps replaced versions only
            self._scrub(name, live.version)
            self._clear_leftovers(name)
            self._bump_generation()  # history changed after the switch counted
        self._cache.pop(name, None)
        return True

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
                    name, change = str(record["skill"]), str(record.get("change") or "")
                    version = None if change else int(record["version"])
                    base = record.get("base_version")
                    base = None if base is None else int(base)
                except (ValueError, KeyError, TypeError):
                    marker.unlink(missing_ok=True)  # unreadable: nothing it names can be undone
                    continue
                if change:
                    if self.discard_change(name, change, base):
                        undone.append(name)
                elif version is not None and self.take_back(name, version, base):
                    undone.append(name)
                marker.unlink(missing_ok=True)
            finally:
                lock.release()
        return undone

    def take_back(self, name: str, version: int, base_version: int | None) -> bool:
        """Take back `version` (a change refused or never vetted) and restore `base_version`
        (None: the change created the skill, so remove it); False if a later valid write is live.

        Works whatever state the live folder is in (missing, binary, unparseable: none of these
        is a later write, since the library writes only what it can read back), and leaves no
        copy of the taken-back version anywhere in the library, history included: a refused
        proposal (one that leaks a gold answer, say) must not come back through rollback or diff.
        """
        with self.lock(name):
            self._recover_switch(name)
            folder = self.skill_dir(name)
            live: Skill | None = None
            if folder.is_dir():
                result = self._load_entry(name)
                live = result if isinstance(result, Skill) else None
            self._scrub(name, version)
            if live is not None and live.version != version:
                self._clear_leftovers(name)
                self._bump_generation()  # its history changed
                return False
            if base_version is None:
                if folder.is_dir():
                    self._retire(name, folder, None)
                    fsync_dir(self.root)
                with contextlib.suppress(OSError):
                    self._history_dir(name).rmdir()  # only if empty: a refused create leaves none
            else:
                self._restore(name, base_version, floor=version, keep_live=False)
            self._clear_leftovers(name)
            self._bump_generation()
        self._cache.pop(name, None)
        return True

    # ----------------------------------------------------------------- internals

    def _read_live(self, name: str) -> Skill:
        folder = safe_skill_dir(self.root, name)
        path = folder / SKILL_FILE
        if not folder.is_dir():
            raise SkillNotFoundError(f"no skill named {name!r} in {self.root}")
        try:
            return parse_skill(
                read_regular_file(path, MAX_SKILL_FILE_BYTES), path, folder_name=name
            )
        except RefusedFileError as e:
            if not os.path.lexists(path):
                raise SkillValidationError(
                    path, [Problem("file", "SKILL.md is missing", "restore it")]
                ) from None
            raise SkillValidationError(path, [Problem("file", e.problem, e.fix)]) from None
        except FileNotFoundError:
            raise SkillValidationError(
                path, [Problem("file", "SKILL.md is missing", "restore it")]
            ) from None

    @staticmethod
    def _check_changes(name: str, changes: Mapping[str, object]) -> None:
        check_changes(name, changes)

    def _check_files(self, files: Mapping[str, bytes]) -> dict[str, bytes]:
        return check_files(files)

    def _staging(self, name: str) -> Path:
        """A fresh path in .memento/tmp for a new folder of `name` (caller holds its lock)."""
        self._clear_leftovers(name)
        return self._tmp / f"{name}.new-{uuid.uuid4().hex[:12]}"

    def _clear_leftovers(self, name: str) -> None:
        """Remove staging and retired folders of `name` left by a killed writer (lock held)."""
        try:
            entries = os.listdir(self._tmp)
        except FileNotFoundError:
            return
        pending = self._pending_staging(name)
        for entry in entries:
            if entry.startswith(f"{name}.") and entry != pending:
                shutil.rmtree(self._tmp / entry, ignore_errors=True)

    def _build(
        self,
        staging: Path,
        source: Path | None,
        skill_md: bytes,
        files: Mapping[str, bytes],
        remove: tuple[str, ...],
    ) -> None:
        """Build a complete version folder at `staging`: `source`'s files, changed, then synced."""
        staging.parent.mkdir(parents=True, exist_ok=True)
        try:
            if source is not None and source.is_dir():
                shutil.copytree(
                    source,
                    staging,
                    symlinks=True,
                    ignore=_ignore_temp,
                    copy_function=_copy_checked,
                )
            else:
                staging.mkdir()
            for rel in remove:
                with contextlib.suppress(FileNotFoundError):
                    resolve_inside(staging, rel).unlink()
            for rel, data in files.items():
                write_staged(resolve_inside(staging, rel), data)
            write_staged(staging / SKILL_FILE, skill_md)
            for dirpath, _dirs, filenames in os.walk(staging):
                for fn in filenames:
                    full = os.path.join(dirpath, fn)
                    if not os.path.islink(full):
                        fsync_path(full, os.O_RDONLY)
                fsync_path(dirpath, os.O_RDONLY)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # nothing half-built stays behind
            raise

    def _switch(
        self, name: str, staging: Path, *, archive: int | None, to: str | None = None
    ) -> None:
        """Make the complete folder `staging` the live `to` (default `name`); the live folder
        goes to history as version `archive` (None: discarded). Journalled, so a kill at any
        step is finished by the next open or write."""
        record = {
            "skill": name,
            "to": to or name,
            "staging": staging.name,
            "inode": os.lstat(staging).st_ino,  # tells the new folder from the old after a swap
            "aside": f"{name}.old-{uuid.uuid4().hex[:12]}",  # where the old goes without a swap
            "archive": archive,
        }
        journal = self._journal / f"{name}.json"
        for _ in range(5):  # another writer may remove the empty journal folder meanwhile
            try:
                self._journal.mkdir(parents=True, exist_ok=True)
                write_journal(journal, json.dumps(record).encode("utf-8"))
                break
            except FileNotFoundError:
                continue
        else:
            shutil.rmtree(staging, ignore_errors=True)
            raise SkillError(f"could not write the journal {journal}; nothing was changed")
        self._roll_forward(record)
        self._end_journal(journal)

    def _roll_forward(self, record: Mapping[str, object]) -> None:
        """Finish the switch `record` describes; every step checks first, so it may be repeated."""
        name, to = str(record["skill"]), str(record["to"])
        archive = record.get("archive")
        keep = int(archive) if isinstance(archive, int) else None
        inode = record.get("inode")
        staging = self._tmp / str(record["staging"])
        live, target = self.skill_dir(name), self.skill_dir(to)

        def is_new(path: Path) -> bool:
            try:
                return os.lstat(path).st_ino == inode
            except FileNotFoundError:
                return False

        if to != name:  # rename: history first, then the new name appears, then the old goes
            old_hist, new_hist = self._history_dir(name), self._history_dir(to)
            if old_hist.is_dir() and not new_hist.exists():
                new_hist.parent.mkdir(parents=True, exist_ok=True)
                os.rename(old_hist, new_hist)
            if staging.is_dir() and not target.exists():
                os.rename(staging, target)
            if target.is_dir() and live.is_dir():
                self._retire(to, live, keep)
        else:
            aside = self._tmp / str(record.get("aside") or f"{name}.old-{uuid.uuid4().hex[:12]}")
            if staging.is_dir() and not is_new(live):
                if not live.is_dir():
                    os.rename(staging, live)
                elif not exchange_folders(staging, live):
                    os.rename(live, aside)  # two renames back to back: the shortest gap
                    os.rename(staging, live)
            if staging.is_dir() and not is_new(staging):  # the old version, swapped out
                self._retire(name, staging, keep)
            if aside.is_dir():
                self._retire(name, aside, keep)
        fsync_dir(self.root)
        self._cache.pop(name, None)
        self._cache.pop(to, None)
        self._bump_generation()

    def _retire(self, name: str, folder: Path, archive: int | None) -> None:
        """Move a live folder out: into history as version `archive`, or away to be deleted."""
        dest = self._history_dir(name) / str(archive) if archive is not None else None
        if dest is not None and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(folder, dest)
            self._clean_temp(dest)
            return
        trash = self._tmp / f"{name}.old-{uuid.uuid4().hex[:12]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _scrub(self, name: str, version: int) -> None:
        """Remove every copy of `version` from history (a taken-back change)."""
        dest = self._history_dir(name) / str(version)
        if dest.exists():
            trash = self._tmp / f"{name}.old-{uuid.uuid4().hex[:12]}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(dest, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def _end_journal(self, journal: Path) -> None:
        journal.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            journal.parent.rmdir()  # absent when empty: opening the library costs one failed read

    def _pending_staging(self, name: str) -> str | None:
        journal = self._journal / f"{name}.json"
        try:
            record = json.loads(journal.read_bytes())
            return str(record["staging"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _recover_switch(self, name: str, timeout: float | None = None) -> None:
        """Finish a switch of `name` a killed writer left (caller holds the lock); one stat."""
        journal = self._journal / f"{name}.json"
        if not journal.exists():
            return
        try:
            record = json.loads(journal.read_bytes())
            names = {str(record["skill"]), str(record["to"])}
        except (OSError, ValueError, KeyError, TypeError):
            self._end_journal(journal)  # written atomically, so unreadable means not ours
            return
        with self.lock(*names, timeout=timeout):
            if journal.exists():
                self._roll_forward(record)
                self._end_journal(journal)
                self.recovered_switches.append(name)

    def recover_switches(self) -> list[str]:
        """Finish the folder switches of processes killed mid-switch; returns the skills."""
        try:
            entries = os.listdir(self._journal)
        except FileNotFoundError:
            return []  # the common case: nothing to recover
        for entry in sorted(entries):
            if not entry.endswith(".json") or entry.startswith("."):
                if TMP_MARK in entry:
                    with contextlib.suppress(OSError):
                        (self._journal / entry).unlink()
                continue
            name = entry[: -len(".json")]
            if check_name(name):
                continue
            try:
                with self.lock(name, timeout=0):
                    self._recover_switch(name, timeout=0)
            except SkillLockedError:
                continue  # its writer is still at work
        return self.recovered_switches

    def _history_dir(self, name: str) -> Path:
        safe_skill_dir(self.root, name)
        return self._meta / "history" / name

    def _next_version(self, name: str, current: int) -> int:
        return max([current, *self._recorded_versions(name)]) + 1

    def _recorded_versions(self, name: str) -> list[int]:
        hist = self._history_dir(name)
        return [int(p.name) for p in hist.iterdir() if p.name.isdigit()] if hist.is_dir() else []

    def _version_files(self, name: str, version: int) -> dict[str, bytes]:
        folder = self._history_dir(name) / str(version)
        if not folder.is_dir():
            live = self.get(name)
            if live.version != version:
                raise SkillNotFoundError(f"skill {name!r} has no version {version} in its history")
            folder = self.skill_dir(name)
        files = {
            rel: read_regular_file(resolve_inside(folder, rel), MAX_AUX_FILE_BYTES)
            for rel in folder_files(folder)
        }
        files[SKILL_FILE] = read_regular_file(folder / SKILL_FILE, MAX_SKILL_FILE_BYTES)
        return files

    @staticmethod
    def _clean_temp(folder: Path) -> None:
        for p in folder.rglob(f"*{TMP_MARK}*"):
            with contextlib.suppress(OSError):
                p.unlink()


def content_changed(a: Skill, b: Skill) -> bool:
    """Whether `b` does something else than `a` when routed (CONTENT_FIELDS)."""
    return any(getattr(a, f) != getattr(b, f) for f in CONTENT_FIELDS)


def check_changes(name: str, changes: Mapping[str, object]) -> None:
    """Refuse changes a caller may not make: the name (rename() does) and the bookkeeping."""
    if "name" in changes and changes["name"] != name:
        raise SkillError("use rename() to change a skill's name")
    managed = {"version", "parent_version", "created", "updated", "path", "utility", "outcomes"}
    forbidden = managed & set(changes)
    if forbidden:
        raise SkillError(f"{sorted(forbidden)} are managed by the library and cannot be set")


def check_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """A skill's files to write, by safe relative path; SKILL.md and oversized files refused."""
    checked: dict[str, bytes] = {}
    for rel, data in files.items():
        p = safe_relative(rel)
        if str(p) == SKILL_FILE:
            raise SkillError("SKILL.md is written from the skill's fields; pass it as changes")
        if len(data) > MAX_AUX_FILE_BYTES:
            raise SkillError(f"{rel}: {len(data)} bytes, the limit is {MAX_AUX_FILE_BYTES}")
        checked[str(p)] = bytes(data)
    return checked


def render_diff(name: str, a: int, b: int, fa: Mapping[str, bytes], fb: Mapping[str, bytes]) -> str:
    """The unified diff between two versions' files (SKILL.md included), binary ones named."""
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


def version_info(skill: Skill, *, live: bool) -> VersionInfo:
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
        skill.lifecycle,
        skill.lift.to_text() if skill.lift is not None else "",
    )


def _copy_checked(src: str, dst: str) -> None:
    """Copy one file of a live skill into a new version through the checked reader (a FIFO or
    an oversized file is refused, never read), keeping its mode (scripts stay executable)."""
    Path(dst).write_bytes(read_regular_file(src, MAX_AUX_FILE_BYTES))
    shutil.copymode(src, dst)


def _ignore_temp(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if TMP_MARK in n]


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


def _stat_sig(path: Path | str) -> tuple[int, int, int]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)
