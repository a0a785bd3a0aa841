"""A whole library written out as a folder and read back: the form users see, bring and back up.

`dump_library` writes the live version of every valid skill byte for byte (SKILL.md as the
library shows it, with its version, counts and trust; every other file with its mode), each
skill's regression cases with the files they were given (`.memento/cases/`, 0600 as the folder
keeps them), and the router's live weights (`.memento/router/`). The folder is a library: point
`--dir` or MEMENTO_SKILLS_DIR at it. It is built beside its destination and renamed into place,
so a failed dump leaves nothing half-written.

`load_library` reads such a folder (or any library folder) into a store: each skill exactly as
the folder holds it (its version number, counts and trust kept), its cases with their files, and
the router weights. The history of versions is not carried either way: a dump holds the live
versions only, and a loaded skill starts its history at the version it had (use the store's
database backups to keep history).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from memento_skills.stores.cases import Cases, CaseStore, MissingCaseFiles
from memento_skills.stores.library import MAX_AUX_FILE_BYTES, SkillLibrary
from memento_skills.stores.paths import read_regular_file, resolve_inside
from memento_skills.stores.router_weights import RouterWeightsStore, weights_dir
from memento_skills.stores.skill import MAX_SKILL_FILE_BYTES, SKILL_FILE, Skill, SkillError
from memento_skills.stores.skill_store import SkillStore

FileWithMode = tuple[int, bytes]
"""A skill file's permission bits and bytes."""


@runtime_checkable
class ExactWrites(Protocol):
    """A store that can take a skill exactly as a folder holds it (`load_library` needs it)."""

    def put_exact(
        self, name: str, skill_md: bytes, files: Mapping[str, FileWithMode], *, replace: bool
    ) -> Skill: ...


@dataclass
class TransferReport:
    """What a dump or a load carried, and what it could not."""

    skills: list[str] = field(default_factory=list)
    cases: int = 0
    router_version: int | None = None
    skipped: list[str] = field(default_factory=list)
    """Skills already in the destination (load without --replace)."""
    problems: list[str] = field(default_factory=list)
    """Malformed skills and cases whose files are gone, one line each: not carried."""


def skill_files(store: SkillStore, name: str) -> tuple[bytes, dict[str, FileWithMode]]:
    """The SKILL.md bytes and the other files (mode, bytes) of the live version of `name`."""
    folder = store.skill_dir(name)
    skill_md = read_regular_file(folder / SKILL_FILE, MAX_SKILL_FILE_BYTES)
    files = {}
    for rel in store.list_files(name):
        path = resolve_inside(folder, rel)
        data = read_regular_file(path, MAX_AUX_FILE_BYTES)
        files[rel] = (os.lstat(path).st_mode & 0o777, data)
    return skill_md, files


def dump_library(
    store: SkillStore, cases: Cases, weights: RouterWeightsStore | None, dest: Path
) -> TransferReport:
    """Write `store`'s library into the new folder `dest` (see the module docstring)."""
    dest = Path(dest).expanduser().absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # as mkdir makes a library, not mkdtemp's 0700: the sandbox
    # reads skill folders under it (its `.memento/` is closed to it on its own)
    report = TransferReport()
    try:
        scan = store.scan()
        report.problems += [e.one_line() for e in scan.errors]
        kept = CaseStore(staging)
        for skill in scan.skills:
            skill_md, files = skill_files(store, skill.name)
            _write_folder(staging / skill.name, skill_md, files)
            report.skills.append(skill.name)
            report.cases += _copy_cases(cases, kept, skill.name, report)
        if weights is not None:
            report.router_version = _copy_weights(weights, RouterWeightsStore(weights_dir(staging)))
        if dest.exists():
            dest.rmdir()  # empty (the command checks): an OSError here says why not
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def load_library(
    source: Path,
    store: SkillStore,
    cases: Cases,
    weights: RouterWeightsStore | None,
    *,
    replace: bool = False,
) -> TransferReport:
    """Read the library folder `source` into `store` (see the module docstring)."""
    if not isinstance(store, ExactWrites):
        raise SkillError(
            f"{type(store).__name__} cannot take skills exactly as a folder holds them: load "
            "into a shared store (MEMENTO_STORE_URL), or copy the folder itself"
        )
    folder = SkillLibrary(Path(source).expanduser())
    report = TransferReport()
    scan = folder.scan()
    report.problems += [e.one_line() for e in scan.errors]
    source_cases = CaseStore(folder.root)
    names = set(store.names())
    for skill in scan.skills:
        if skill.name in names and not replace:
            report.skipped.append(skill.name)
            continue
        skill_md, files = skill_files(folder, skill.name)
        store.put_exact(skill.name, skill_md, files, replace=replace)
        report.skills.append(skill.name)
        report.cases += _copy_cases(source_cases, cases, skill.name, report)
    source_weights = RouterWeightsStore(weights_dir(folder.root))
    if weights is not None and source_weights.exists():
        report.router_version = _copy_weights(source_weights, weights)
    return report


def _write_folder(target: Path, skill_md: bytes, files: Mapping[str, FileWithMode]) -> None:
    target.mkdir(parents=True)
    (target / SKILL_FILE).write_bytes(skill_md)
    for rel, (mode, data) in files.items():
        path = resolve_inside(target, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)


def _copy_cases(source: Cases, dest: Cases, skill: str, report: TransferReport) -> int:
    copied = 0
    for case in source.load(skill):
        try:
            files = source.files_of(case)
        except MissingCaseFiles as e:
            report.problems.append(f"a regression case of {skill} was left out: {e}")
            continue
        copied += bool(dest.add(skill, case, files))
    return copied


def _copy_weights(source: RouterWeightsStore, dest: RouterWeightsStore) -> int | None:
    """Save the source's live weights as the destination's next version; its number."""
    loaded = source.load()
    if loaded is None:
        return None
    arrays, header, _version = loaded
    return dest.save(arrays, header).version
