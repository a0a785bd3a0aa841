"""`memento run --approve-scripts`: ask the operator on the terminal before an untrusted script runs.

The operator sees the skill, the script's path, its size and hash and its whole source (control
characters escaped, so a hostile file cannot hide lines with terminal escapes or bidi overrides)
and the skill's other scripts it could load, then answers y/N. Without a terminal nobody can
answer, so the script is refused. A decision holds for the rest of the run while none of the
skill's scripts changes.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from memento_skills.stores.trust import script_files, scripts_digest

MAX_SHOWN_BYTES = 200_000


def printable(text: str) -> str:
    """`text` with every control or format character (ESC, CR, U+202E...) shown as an escape."""
    return "".join(c if c.isprintable() or c in "\t\n" else repr(c)[1:-1] for c in text)


class TerminalScriptApprover:
    """An `approve_script` callback that asks y/N on the terminal, or refuses without one."""

    def __init__(
        self,
        library_root: Path,
        console: Console,
        ask: Callable[[str], bool],
        is_terminal: Callable[[], bool] = lambda: sys.stdin.isatty(),
        lock: threading.Lock | None = None,
    ):
        self.library_root = Path(library_root).resolve()
        self.console = console
        self.ask = ask
        self.is_terminal = is_terminal
        self.lock = lock or threading.Lock()
        """Held while asking; the caller's progress printer takes it too."""
        self.decisions: dict[tuple[str, str], bool] = {}

    def _say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, emoji=False)

    def __call__(self, path: str) -> bool:
        script = Path(path)
        try:
            rel = script.resolve().relative_to(self.library_root)
        except ValueError:
            self._say(f"refused {path}: not inside the library {self.library_root}")
            return False
        skill, shown = rel.parts[0], Path(*rel.parts[1:]).as_posix()
        data = script.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        folder = self.library_root / skill
        others = [r for r in script_files(folder) if r != shown]
        key = (str(rel), scripts_digest(folder))  # any script changed: ask again
        if key in self.decisions:
            return self.decisions[key]
        if not self.is_terminal():
            self._say(
                f"script approval needed: skill {skill!r} is untrusted and wants to run "
                f"{shown}, but stdin is not a terminal, so it was refused (trust the skill with "
                f"`memento skills trust {skill}`, or run from a terminal)"
            )
            self.decisions[key] = False
            return False
        lines = [
            f"\nThe agent wants to run {shown} of the untrusted skill {skill!r} "
            f"({len(data)} bytes, sha256 {digest[:16]}):",
            f"----- {shown} -----",
        ]
        if b"\x00" in data[:8192]:
            lines.append("(binary file: not shown)")
        else:
            text = data[:MAX_SHOWN_BYTES].decode("utf-8", errors="replace")
            lines.append(printable(text).rstrip("\n"))
            if len(data) > MAX_SHOWN_BYTES:
                lines.append(
                    f"[{len(data) - MAX_SHOWN_BYTES} more bytes not shown: read {script} "
                    "before approving]"
                )
        lines.append(f"----- end of {shown} -----")
        if others:
            sizes = ", ".join(f"{r} ({(folder / r).stat().st_size} bytes)" for r in others)
            lines.append(
                f"It runs with the whole skill folder readable, so it can also load the skill's "
                f"other scripts, not shown here: {sizes} (in {folder}). Read them before "
                "approving, or review the skill and `memento skills trust` it."
            )
        with self.lock:  # progress lines wait, so they never land inside the script or prompt
            self._say("\n".join(lines))
            approved = self.ask(f"Run {shown} of {skill}?")
        self.decisions[key] = approved
        return approved
