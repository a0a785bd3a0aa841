"""Path safety for names and relative paths that come from outside (model output, imported packs).

Everything that turns an outside string into a filesystem path goes through here, so there is one
place that refuses traversal, absolute paths and symlinks.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from memento_skills.stores.skill import UnsafePathError, check_name


def safe_skill_dir(root: Path, name: str) -> Path:
    """The folder of skill `name` inside `root`; refuses any name that is not a plain skill name."""
    problems = check_name(name)
    if problems:
        raise UnsafePathError(
            f"refused skill name {name!r}: {problems[0].problem}. "
            "Skill names are [a-z0-9] words joined by single hyphens, at most 64 characters."
        )
    path = root / name
    if path.is_symlink():
        raise UnsafePathError(
            f"refused {path}: the skill folder is a symlink. Replace it with a real folder."
        )
    return path


def safe_relative(rel: str) -> PurePosixPath:
    """Validate a relative path inside a skill or workspace: no absolute paths, no `..`."""
    if not rel or "\x00" in rel:
        raise UnsafePathError(f"refused path {rel!r}: empty or contains NUL")
    if "\\" in rel:
        raise UnsafePathError(f"refused path {rel!r}: use forward slashes")
    p = PurePosixPath(rel)
    if p.is_absolute() or rel.startswith("~"):
        raise UnsafePathError(
            f"refused path {rel!r}: absolute paths are not allowed; use a path relative to the skill folder"
        )
    if any(part == ".." for part in p.parts):
        raise UnsafePathError(f"refused path {rel!r}: `..` would leave the skill folder")
    if not p.parts or p.parts == (".",):
        raise UnsafePathError(f"refused path {rel!r}: names no file")
    return p


def resolve_inside(base: Path, rel: str) -> Path:
    """`base/rel`, refusing anything that escapes `base`, including through a symlink on the way."""
    p = safe_relative(rel)
    current = base
    for part in p.parts:
        if part == ".":
            continue
        current = current / part
        if current.is_symlink():
            raise UnsafePathError(
                f"refused path {rel!r}: {current.name} is a symlink; symlinks are not followed"
            )
    resolved = Path(os.path.realpath(current))
    if not resolved.is_relative_to(os.path.realpath(base)):
        raise UnsafePathError(f"refused path {rel!r}: it resolves outside {base}")
    return current


class RefusedFileError(UnsafePathError):
    """A file from a pack or a skill folder that is not a plain, bounded, regular file."""

    def __init__(self, path: Path | str, problem: str, fix: str):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: {problem} — fix: {fix}")


def read_regular_file(path: Path | str, limit: int) -> bytes:
    """The bytes of `path` if it is a regular file of at most `limit` bytes; never follows a
    symlink, never blocks on a FIFO or device, never reads more than `limit` bytes."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if os.path.islink(path):
            raise RefusedFileError(
                path, "is a symlink; symlinks are not followed", "replace it with the file itself"
            ) from None
        raise RefusedFileError(
            path, f"cannot be read ({e.strerror or e})", "check that it exists and is readable"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _file_kind(st.st_mode)
            raise RefusedFileError(path, f"is {kind}, not a regular file", "leave it out")
        if st.st_size > limit:
            raise RefusedFileError(
                path, f"{st.st_size} bytes, the limit is {limit}", "leave it out or make it smaller"
            )
        chunks: list[bytes] = []
        left = limit + 1  # a file that grows past the limit while being read is refused too
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise RefusedFileError(
                path, f"more than {limit} bytes, the limit", "leave it out or make it smaller"
            )
        return data
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"
