"""Which skills the writes of a library touched, so a running worker reloads those, not all.

The library's generation says that something changed; this log says what. Each write appends
the names it held locks on (one line each) just before it moves the generation, so a reader
that saw the generation move finds the names already here. A reader keeps a token (the log
file's inode and how far it read) and asks for the names written since; "unknown" (None) means
it must rescan everything: it never read this log (first look, or the log was started anew
when it grew past MAX_BYTES), or a write could not say which skills it touched. A log is named
by a random id on its first line, so a reader of another log can tell; a read costs one small
file read (the log stays under MAX_BYTES) and happens only when the generation moved.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from memento_skills.stores.atomic import TMP_MARK

MAX_BYTES = 256 * 1024
"""Past this size the next write starts a new log; readers of the old one rescan once."""
UNKNOWN = "*"
"""Logged by a write that cannot name what it touched: every reader rescans."""
ABSENT = "absent"


class ChangeLog:
    """An append-only list of written skill names; appends are serialised by the caller's lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def append(self, names: Iterable[str]) -> None:
        """Record one write of `names` (none: the write is UNKNOWN). Caller holds the lock."""
        lines = "".join(f"{n}\n" for n in sorted(set(names)) or [UNKNOWN]).encode("utf-8")
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = None
        if size is not None and size + len(lines) <= MAX_BYTES:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, lines)  # one write of a few bytes: readers see whole lines or none
            finally:
                os.close(fd)
            return
        # a new log, named by its first line (an inode number may be reused): readers of
        # another one rescan once
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")
        try:
            tmp.write_bytes(f"#{uuid.uuid4().hex}\n".encode("ascii") + lines)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def since(self, token: str) -> tuple[str, set[str] | None]:
        """(the token to ask with next time, the names written since `token`, or None when
        that cannot be known and the caller must rescan everything). "" asks for a token."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:  # no write through the library yet
            return ABSENT, (set() if token == ABSENT else None)
        header = data[: data.find(b"\n") + 1]
        if not header.startswith(b"#"):  # not a log this module wrote
            return f"?:{len(data)}", None
        log_id = header[1:-1].decode("ascii", "replace")
        held, _, offset = token.partition(":")
        start = int(offset) if offset.isdigit() else -1
        if token == ABSENT:  # made since the token was given: all of it is news
            held, start = log_id, len(header)
        if held != log_id or not len(header) <= start <= len(data):
            return f"{log_id}:{len(data)}", None
        tail = data[start:]
        complete = tail[: tail.rfind(b"\n") + 1]  # a line being written is read next time
        names = set(complete.decode("utf-8", "replace").split())
        return f"{log_id}:{start + len(complete)}", (None if UNKNOWN in names else names)
