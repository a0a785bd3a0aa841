"""Folders and paths around a workspace: confinement of model-given paths, reachability, disk use."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from .limits import PathEscapeError


def others_can_run(program: str) -> bool:
    """Whether a uid of no group could execute `program` (every folder on its way included)."""
    path = Path(program).resolve()
    try:
        folders_ok = all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)
        return folders_ok and bool(path.stat().st_mode & stat.S_IXOTH)
    except OSError:
        return False


def reachable_dir(path: Path | str) -> Path:
    """`path` created as a folder others may traverse but not list (0711), missing parents too.

    The levels without a mount namespace reach a workspace through the host's tree, so every
    folder above one must be traversable by the sandbox's uid; folders the sandbox must never
    enter (a run dir, the regression cases) are 0700 instead.
    """
    folder = Path(path)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:
        with contextlib.suppress(OSError):
            created.chmod(0o711)
    return folder


def disk_usage(root: Path) -> int:
    """Bytes the folder's files take on disk (blocks, each inode once), links not followed."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def trim_to(root: Path, ceiling: int, since: float) -> list[tuple[str, int]]:
    """Delete the files changed since `since`, largest first, until the folder fits `ceiling`.

    Only files the run wrote are candidates (their ctime, which a child cannot set back), so
    what the host put there (attachments) stays. Runs after every process of the run is gone.
    """
    used = disk_usage(root)
    if used <= ceiling:
        return []
    recent: list[tuple[int, Path]] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            with contextlib.suppress(OSError):
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_ctime >= since:
                    recent.append((st.st_blocks * 512, path))
    removed = []
    for size, path in sorted(recent, key=lambda item: -item[0]):
        if used <= ceiling:
            break
        with contextlib.suppress(OSError):
            path.unlink()
            used -= size
            removed.append((str(path.relative_to(root)), size))
    return removed


def confine(base: Path, relative: str, *, what: str) -> Path:
    """`relative` resolved inside `base` (symlinks followed), or PathEscapeError saying why not."""
    if not isinstance(relative, str) or not relative.strip():
        raise PathEscapeError(f"empty path: give a path relative to {what}, e.g. 'notes.txt'")
    if "\x00" in relative:
        raise PathEscapeError("the path contains a NUL byte")
    candidate = Path(relative)
    if candidate.is_absolute() or relative.startswith("~"):
        raise PathEscapeError(
            f"{relative!r} is absolute: give a path relative to {what}, e.g. 'data/out.txt'"
        )
    root = base.resolve()
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        why = "a symlink that points" if ".." not in candidate.parts else "'..' that leads"
        raise PathEscapeError(f"{relative!r} goes outside {what} (through {why} outside)")
    return resolved
