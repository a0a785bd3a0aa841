"""Skill packs: importing Agent Skills folders or zips from outside, exporting the library as a zip.

Everything in a pack is untrusted input: every zip member is checked before anything touches the
disk (names, duplicates, file/folder clashes, symlinks, encryption, compression, declared and
actual sizes), every file is read through one size-checked reader that follows no symlink and
opens no FIFO or device, skills are found at any depth (a cloned repository works), each is
validated on its own (third-party tool names adapted, see stores/adapt.py), and imported skills
are marked untrusted so their scripts never run without approval. Errors name the file as the
user knows it: the path inside the zip, never the temporary folder it was unpacked into.
"""

from __future__ import annotations

import lzma
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from memento_skills.stores.adapt import Adapted, adapt_skill
from memento_skills.stores.library import MAX_AUX_FILE_BYTES
from memento_skills.stores.paths import (
    RefusedFileError,
    read_regular_file,
    resolve_inside,
    safe_relative,
)
from memento_skills.stores.skill import (
    MAX_SKILL_FILE_BYTES,
    SKILL_FILE,
    Problem,
    SkillError,
    SkillValidationError,
    UnsafePathError,
    Utility,
)
from memento_skills.stores.skill_folder import folder_files
from memento_skills.stores.skill_store import SkillStore
from memento_skills.stores.trust import script_files

MAX_PACK_BYTES = 100 * 1024 * 1024
MAX_PACK_FILES = 10_000
MAX_PACK_DEPTH = 12
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_UNPACK_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)

Shown = Callable[[Path], str]


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already present, not replaced
    errors: list[SkillValidationError] = field(default_factory=list)
    untrusted_scripts: dict[str, list[str]] = field(default_factory=dict)
    """Per imported or replaced untrusted skill that has scripts: those scripts."""
    claimed_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Utility counts a pack claimed for a skill; not kept (an import has earned nothing)."""
    adapted: dict[str, list[str]] = field(default_factory=dict)  # skill -> what was changed
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "replaced": self.replaced,
            "skipped": self.skipped,
            "untrusted_scripts": self.untrusted_scripts,
            "claimed_counts": self.claimed_counts,
            "adapted": self.adapted,
            "warnings": self.warnings,
            "errors": [e.to_dict() for e in self.errors],
        }


def import_pack(
    library: SkillStore,
    source: Path,
    *,
    provenance: str = "imported",
    trusted: bool | None = None,
    replace: bool = False,
    lenient: bool = False,
) -> ImportReport:
    """Import a skill folder, a folder (or repository) of skills, or a zip of either."""
    source = Path(source)
    try:
        st = os.stat(source)
    except OSError:
        raise SkillError(
            f"{source} does not exist: give a skill folder, a folder of skills or a .zip"
        ) from None
    trusted = provenance != "imported" if trusted is None else trusted
    label = f"{provenance}:{source.name}"
    if stat.S_ISREG(st.st_mode):
        if not zipfile.is_zipfile(source):
            raise SkillError(f"{source} is neither a folder nor a zip archive")
        with tempfile.TemporaryDirectory(prefix="memento-import-") as tmp:
            root = Path(tmp)
            _safe_extract(source, root)

            def in_zip(p: Path) -> str:
                rel = p.relative_to(root).as_posix()
                return f"{source}:{rel}" if rel != "." else str(source)

            return _import_tree(library, root, in_zip, label, provenance, trusted, replace, lenient)
    if not stat.S_ISDIR(st.st_mode):
        raise SkillError(f"{source} is neither a folder nor a zip archive (a special file)")
    return _import_tree(library, source, str, label, provenance, trusted, replace, lenient)


def _import_tree(
    library: SkillStore,
    tree: Path,
    shown: Shown,
    label: str,
    provenance: str,
    trusted: bool,
    replace: bool,
    lenient: bool,
) -> ImportReport:
    report = ImportReport()
    folders = _find_skill_folders(tree, shown, report.errors)
    if not folders and not report.errors:
        raise SkillError(
            f"{shown(tree)}: no skill found (no folder in it holds a {SKILL_FILE}); "
            "give a skill folder, a folder or repository of skills, or a zip of one"
        )
    staged: list[tuple[Adapted, dict[str, bytes]]] = []
    where: dict[str, str] = {}
    for folder in folders:
        try:
            adapted, files = _read_folder(folder, shown, lenient)
        except SkillValidationError as e:
            report.errors.append(e)
            continue
        name = adapted.skill.name
        if name in where:
            report.errors.append(
                SkillValidationError(
                    shown(folder / SKILL_FILE),
                    [Problem("name", f"{name!r} is also the skill at {where[name]}", "rename one")],
                )
            )
            continue
        where[name] = shown(folder)
        staged.append((adapted, files))
    for adapted, files in staged:  # everything is read and valid before the library is touched
        claimed = adapted.skill.utility
        skill = adapted.skill.with_changes(
            provenance=provenance,
            source=label,
            trusted=trusted,
            trust_by="",  # a pack cannot vouch for itself
            trust_at="",
            trust_digest="",
            utility=Utility(),
            lifecycle="active",  # nor for its own evidence: lift is measured here
            lift=None,
            lifecycle_reason="",
            version=1,
            parent_version=None,
        )
        if library.exists(skill.name):
            if not replace:
                report.skipped.append(skill.name)
                continue
            library.update(
                skill.name,
                files=files,
                remove_files=tuple(sorted(set(library.list_files(skill.name)) - set(files))),
                description=skill.description,
                body=skill.body,
                license=skill.license,
                compatibility=skill.compatibility,
                allowed_tools=skill.allowed_tools,
                first_tools=skill.first_tools,
                answer_pattern=skill.answer_pattern,
                metadata=skill.metadata,
                provenance=provenance,
                source=label,
                trusted=trusted,
                trust_by="",
                trust_at="",
                trust_digest="",
                lifecycle="active",
                lift=None,
                lifecycle_reason="",
                authored_yaml=skill.authored_yaml,
            )
            report.replaced.append(skill.name)
        else:
            library.create(skill, files)
            report.imported.append(skill.name)
        if claimed.runs:
            report.claimed_counts[skill.name] = {
                "successes": claimed.successes,
                "failures": claimed.failures,
            }
        scripts = script_files(library.skill_dir(skill.name))
        if not trusted and scripts:
            report.untrusted_scripts[skill.name] = scripts
        if adapted.changes:
            report.adapted[skill.name] = adapted.changes
        report.warnings += [f"{skill.name}: {w}" for w in adapted.warnings]
    return report


def _find_skill_folders(tree: Path, shown: Shown, errors: list[SkillValidationError]) -> list[Path]:
    """Every folder holding a SKILL.md, at any depth; a skill's own sub-folders are not searched."""
    if os.path.lexists(tree / SKILL_FILE):
        return [tree]
    found: list[Path] = []
    visited = 0
    for dirpath, dirnames, filenames in os.walk(tree):  # never follows symlinked folders
        here = Path(dirpath)
        visited += 1
        if visited > MAX_PACK_FILES:
            raise SkillError(f"{shown(tree)}: more than {MAX_PACK_FILES} folders; refused")
        if here != tree and SKILL_FILE in filenames + dirnames:
            found.append(here)
            dirnames[:] = []
            continue
        if len(here.relative_to(tree).parts) >= MAX_PACK_DEPTH:
            dirnames[:] = []
            continue
        kept = []
        for d in sorted(dirnames):
            if d.startswith((".", "__")) or d == "node_modules":
                continue
            if (here / d).is_symlink():
                if os.path.lexists(here / d / SKILL_FILE):
                    errors.append(
                        SkillValidationError(
                            shown(here / d),
                            [Problem("folder", "is a symlink", "pack the real folder")],
                        )
                    )
                continue
            kept.append(d)
        dirnames[:] = kept
    return sorted(found)


def _refused(shown: Shown, path: Path, e: RefusedFileError) -> SkillValidationError:
    return SkillValidationError(shown(path), [Problem("file", e.problem, e.fix)])


def _read_folder(folder: Path, shown: Shown, lenient: bool) -> tuple[Adapted, dict[str, bytes]]:
    skill_md = folder / SKILL_FILE
    if folder.is_symlink():
        raise SkillValidationError(
            shown(folder), [Problem("folder", "is a symlink", "pack real files")]
        )
    try:
        text = read_regular_file(skill_md, MAX_SKILL_FILE_BYTES)
    except RefusedFileError as e:
        raise _refused(shown, skill_md, e) from None
    adapted = adapt_skill(text, shown(skill_md), folder_name=folder.name, lenient=lenient)
    for dirpath, dirnames, filenames in os.walk(folder):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            if p.is_symlink():
                raise SkillValidationError(
                    shown(p),
                    [Problem("file", "is a symlink", "replace symlinks with the files themselves")],
                )
    files: dict[str, bytes] = {}
    total = 0
    for rel in folder_files(folder):
        path = resolve_inside(folder, rel)
        try:
            files[rel] = read_regular_file(path, MAX_AUX_FILE_BYTES)
        except RefusedFileError as e:
            raise _refused(shown, path, e) from None
        total += len(files[rel])
        if total > MAX_PACK_BYTES:
            raise SkillValidationError(
                shown(folder),
                [Problem("folder", f"more than {MAX_PACK_BYTES} bytes", "leave large files out")],
            )
    return adapted, files


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip only after every member is checked; nothing is written if one is refused."""
    try:
        zf = zipfile.ZipFile(archive)
    except _UNPACK_ERRORS as e:
        raise SkillError(f"{archive}: not a readable zip archive ({e})") from None
    with zf:
        members = zf.infolist()
        if len(members) > MAX_PACK_FILES:
            raise SkillError(f"{archive}: {len(members)} files, the limit is {MAX_PACK_FILES}")
        names: dict[str, zipfile.ZipInfo] = {}
        files: set[str] = set()
        folders: set[str] = set()
        total = 0
        for m in members:
            where = f"{archive}:{m.filename}"
            try:
                rel = safe_relative(m.filename.rstrip("/") or ".")
            except UnsafePathError as e:
                raise UnsafePathError(f"{where}: refused: {e}") from None
            name = rel.as_posix()
            if name in names:
                raise SkillError(
                    f"{where}: the zip holds this name twice (one would silently replace the "
                    "other); refused — fix: re-create the zip"
                )
            names[name] = m
            if stat.S_ISLNK(m.external_attr >> 16):
                raise UnsafePathError(f"{where}: is a symlink; refused")
            if m.flag_bits & 0x1:
                raise SkillError(f"{where}: is encrypted; refused — fix: pack skills unencrypted")
            if not m.is_dir() and m.compress_type not in _ZIP_METHODS:
                raise SkillError(
                    f"{where}: compression method {m.compress_type} is not supported; refused "
                    "— fix: re-create the zip with deflate"
                )
            (folders if m.is_dir() else files).add(name)
            folders.update(p.as_posix() for p in PurePosixPath(name).parents if str(p) != ".")
            total += m.file_size
            if total > MAX_PACK_BYTES:
                raise SkillError(f"{archive}: unpacks to more than {MAX_PACK_BYTES} bytes; refused")
        clash = sorted(files & folders)
        if clash:
            raise SkillError(
                f"{archive}:{clash[0]}: is both a file and a folder in the zip; refused"
            )
        for name, m in names.items():
            target = resolve_inside(dest, name)
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                _unpack(zf, m, target)
            except _UNPACK_ERRORS as e:
                raise SkillError(
                    f"{archive}:{m.filename}: cannot be unpacked ({e}); the zip is damaged or "
                    "its sizes lie — fix: re-create the zip"
                ) from None


def _unpack(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> None:
    """Copy one member, never more bytes than it declares (zipfile checks the CRC at the end)."""
    written = 0
    with zf.open(member) as src, open(target, "xb") as out:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > member.file_size:
                raise zipfile.BadZipFile(f"more than its declared {member.file_size} bytes")
            out.write(chunk)
    if written != member.file_size:
        raise zipfile.BadZipFile(f"{written} bytes, it declares {member.file_size}")


def export_pack(library: SkillStore, dest: Path, names: list[str] | None = None) -> list[str]:
    """Write the live versions of `names` (default: every valid skill) into a zip at `dest`."""
    skills = {s.name: s for s in library.skills()}
    chosen = names or sorted(skills)
    missing = [n for n in chosen if n not in skills]
    if missing:
        raise SkillError(f"cannot export {missing}: no such valid skill in {library.root}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in chosen:
                folder = library.skill_dir(name)
                _add(zf, folder / SKILL_FILE, f"{name}/{SKILL_FILE}", MAX_SKILL_FILE_BYTES)
                for rel in folder_files(folder):
                    _add(zf, resolve_inside(folder, rel), f"{name}/{rel}", MAX_AUX_FILE_BYTES)
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return chosen


def _add(zf: zipfile.ZipFile, path: Path, arcname: str, limit: int) -> None:
    """Add one library file through the checked reader (a FIFO or device is refused, not read)."""
    data = read_regular_file(path, limit)
    st = os.lstat(path)
    info = zipfile.ZipInfo.from_file(path, arcname)
    info.external_attr = (stat.S_IFREG | stat.S_IMODE(st.st_mode)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)
