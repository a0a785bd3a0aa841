"""Skill packs: importing Agent Skills folders or zips from outside, exporting the library as a zip.

Everything in a pack is untrusted input: member names are checked before anything touches the disk
(no absolute paths, no `..`, no symlinks, bounded sizes), every skill is validated on its own, and
imported skills are marked untrusted so their scripts never run without approval.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from memento_skills.stores.library import MAX_AUX_FILE_BYTES, SkillLibrary, _list_files
from memento_skills.stores.paths import resolve_inside, safe_relative
from memento_skills.stores.skill import (
    SKILL_FILE,
    Problem,
    Skill,
    SkillError,
    SkillValidationError,
    UnsafePathError,
    Utility,
    parse_skill,
)
from memento_skills.stores.trust import script_files

MAX_PACK_BYTES = 100 * 1024 * 1024
MAX_PACK_FILES = 10_000


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

    def to_dict(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "replaced": self.replaced,
            "skipped": self.skipped,
            "untrusted_scripts": self.untrusted_scripts,
            "claimed_counts": self.claimed_counts,
            "errors": [e.to_dict() for e in self.errors],
        }


def import_pack(
    library: SkillLibrary,
    source: Path,
    *,
    provenance: str = "imported",
    trusted: bool | None = None,
    replace: bool = False,
) -> ImportReport:
    """Import a skill folder, a folder of skill folders, or a zip of either into `library`."""
    source = Path(source)
    if not source.exists():
        raise SkillError(
            f"{source} does not exist: give a skill folder, a folder of skills or a .zip"
        )
    trusted = provenance != "imported" if trusted is None else trusted
    label = f"{provenance}:{source.name}"
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise SkillError(f"{source} is neither a folder nor a zip archive")
        with tempfile.TemporaryDirectory(prefix="memento-import-") as tmp:
            _safe_extract(source, Path(tmp))
            return _import_tree(library, Path(tmp), label, provenance, trusted, replace)
    return _import_tree(library, source, label, provenance, trusted, replace)


def _import_tree(
    library: SkillLibrary, tree: Path, label: str, provenance: str, trusted: bool, replace: bool
) -> ImportReport:
    report = ImportReport()
    if (tree / SKILL_FILE).is_file():
        folders = [tree]
    else:
        folders = sorted(
            p for p in tree.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))
        )
        # a zip often wraps everything in one top folder
        if len(folders) == 1 and not (folders[0] / SKILL_FILE).exists():
            folders = sorted(
                p for p in folders[0].iterdir() if p.is_dir() and not p.name.startswith((".", "__"))
            )
    for folder in folders:
        try:
            skill, files = _read_folder(folder)
        except SkillValidationError as e:
            report.errors.append(e)
            continue
        claimed = skill.utility
        skill = skill.with_changes(
            provenance=provenance,
            source=label,
            trusted=trusted,
            trust_by="",  # a pack cannot vouch for itself
            trust_at="",
            trust_digest="",
            utility=Utility(),
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
                metadata=skill.metadata,
                provenance=provenance,
                source=label,
                trusted=trusted,
                trust_by="",
                trust_at="",
                trust_digest="",
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
    return report


def _read_folder(folder: Path) -> tuple[Skill, dict[str, bytes]]:
    skill_md = folder / SKILL_FILE
    if folder.is_symlink() or skill_md.is_symlink():
        raise SkillValidationError(folder, [Problem("folder", "is a symlink", "pack real files")])
    if not skill_md.is_file():
        raise SkillValidationError(skill_md, [Problem("file", "SKILL.md is missing", "add one")])
    skill = parse_skill(skill_md.read_bytes(), skill_md, folder_name=folder.name)
    files: dict[str, bytes] = {}
    for p in folder.rglob("*"):
        if p.is_symlink():
            raise SkillValidationError(
                p, [Problem("file", "is a symlink", "replace symlinks with the files themselves")]
            )
    for rel in _list_files(folder):
        data = resolve_inside(folder, rel).read_bytes()
        if len(data) > MAX_AUX_FILE_BYTES:
            raise SkillValidationError(
                folder / rel,
                [Problem("file", f"{len(data)} bytes, limit {MAX_AUX_FILE_BYTES}", "leave it out")],
            )
        files[rel] = data
    return skill, files


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip only after every member is checked: names, symlinks, total size."""
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > MAX_PACK_FILES:
            raise SkillError(f"{archive}: {len(members)} files, the limit is {MAX_PACK_FILES}")
        total = 0
        for m in members:
            try:
                safe_relative(m.filename.rstrip("/") or ".")
            except UnsafePathError as e:
                raise UnsafePathError(f"{archive}: member {m.filename!r} refused: {e}") from None
            mode = m.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafePathError(f"{archive}: member {m.filename!r} is a symlink; refused")
            total += m.file_size
            if total > MAX_PACK_BYTES:
                raise SkillError(f"{archive}: unpacks to more than {MAX_PACK_BYTES} bytes; refused")
        for m in members:
            target = resolve_inside(dest, m.filename.rstrip("/"))
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def export_pack(library: SkillLibrary, dest: Path, names: list[str] | None = None) -> list[str]:
    """Write the live versions of `names` (default: every valid skill) into a zip at `dest`."""
    skills = {s.name: s for s in library.skills()}
    chosen = names or sorted(skills)
    missing = [n for n in chosen if n not in skills]
    if missing:
        raise SkillError(f"cannot export {missing}: no such valid skill in {library.root}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in chosen:
            folder = library.skill_dir(name)
            zf.write(folder / SKILL_FILE, f"{name}/{SKILL_FILE}")
            for rel in _list_files(folder):
                zf.write(folder / rel, f"{name}/{rel}")
    tmp.replace(dest)
    return chosen
