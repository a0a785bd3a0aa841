"""Crash-safe writes: atomic file replace, fsync, the renameat2 folder exchange, journal records."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import uuid
from collections.abc import Callable
from pathlib import Path

TMP_MARK = ".tmp-"
"""In the name of every temporary file these writes make (a leftover of a killed one is cleaned)."""


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see either the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")
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
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Sync a folder, so the names created, renamed or removed in it survive a crash."""
    fsync_path(path, os.O_RDONLY)


def fsync_path(path: Path | str, flags: int) -> None:
    """Sync one file or folder, opened with `flags`."""
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _load_renameat2() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 (macOS, musl, ...)
        return None


_renameat2 = _load_renameat2()


def exchange_folders(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux renameat2 RENAME_EXCHANGE), so a reader of either
    path sees the old or the new, never nothing. False where the system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # this filesystem or kernel has no exchange: two renames, journalled
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def write_journal(path: Path, data: bytes) -> None:
    """Write an intent record and sync it (one fsync: a torn record names no started switch,
    since nothing is moved before it is complete, so recovery drops it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_staged(path: Path, data: bytes) -> None:
    """Write a file of a folder being staged (synced with the whole folder before it goes live)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a copied file may be read-only; the copy is ours to replace
    with open(path, "wb") as f:
        f.write(data)
