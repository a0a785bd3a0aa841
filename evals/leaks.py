"""Leak check: did any gold answer of the suite end up in the skill library?

The writer never sees a gold, so a gold in a skill means a leak somewhere in the pipeline (or a
skill that memorised answers instead of learning a method): either way the run's numbers cannot
be trusted, and the run fails loudly. Every file in every skill folder is read — SKILL.md,
scripts, references, assets — but not the library's own `.memento/` bookkeeping, where the
regression cases keep their golds on purpose for the gate.

The library's history (`.memento/history/<skill>/<version>/`) is scanned too: a gold in an old
or refused version is one `rollback`, `diff` or `--library-from` away from coming back. A history
file identical to the live file of its skill is not reported twice.

In SKILL.md the library's own bookkeeping under `metadata` (`skill.BOOKKEEPING_KEYS`: version,
counts, timestamps, source) is machine-written, not learned content, and is skipped: a timestamp's "24"
is not the gold "24". Matching is the gate's own, `stores/gold_match.py`: verbatim (whole tokens or
phrases, number formatting aside, golds of one character ignored) and smuggled (base64, base32,
hex, number words, spaced or split digits, reversed, arithmetic; each with its floor for short
golds; a transformed form the task's own question holds is its data, not a leak). A gold
already present in the same file of the packaged seed skills (written before any
task was seen) is not a leak.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memento_skills.evals.suites import Task
from memento_skills.stores.gold_match import HOW, Form, GoldScan
from memento_skills.stores.skill import BOOKKEEPING_KEYS

MAX_FILE_BYTES = 2_000_000
HISTORY = Path(".memento") / "history"
LINE_WINDOW = 8
"""A gold split across lines is located at the first of at most this many lines holding it."""


@dataclass(frozen=True)
class Leak:
    file: str
    """Path relative to the library root, e.g. `multiply-numbers/SKILL.md`."""
    task_id: str
    line: int | None
    form: Form = "verbatim"
    """How it is written: `verbatim`, or the form it was smuggled in (`base64`, `words`, ...)."""

    @property
    def in_history(self) -> bool:
        return Path(self.file).parts[:2] == HISTORY.parts

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "in_history": self.in_history}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        how = "" if self.form == "verbatim" else f" {HOW[self.form]}"
        note = " (history: rollback, diff or --library-from can bring it back)"
        return f"the gold answer of task {self.task_id} appears{how} in {where}" + (
            note if self.in_history else ""
        )


def skill_files(library_root: Path) -> Iterator[Path]:
    """Every file inside a skill folder; the library's dot-folders (.memento) are not skills."""
    for folder in sorted(p for p in library_root.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(library_root)
            if path.is_file() and not any(part.startswith(".memento") for part in rel.parts):
                yield path


def history_files(library_root: Path) -> Iterator[tuple[Path, Path]]:
    """Every file of every version in the history, with the live path it is a version of."""
    history = library_root / HISTORY
    if not history.is_dir():
        return
    for path in sorted(history.rglob("*")):
        parts = path.relative_to(history).parts
        if path.is_file() and len(parts) >= 3:
            yield path, Path(parts[0], *parts[2:])


def _read(path: Path) -> str:
    with path.open("rb") as f:
        return f.read(MAX_FILE_BYTES).decode("utf-8", errors="ignore")


def _content(path: Path, text: str) -> str:
    """What the writer authored: for SKILL.md, everything but the library's bookkeeping."""
    if path.name != "SKILL.md":
        return text
    from memento_skills.stores.skill import SkillValidationError, read_document

    try:
        doc = read_document(text, path)  # the library's one frontmatter loader: aliases bounded
    except SkillValidationError:  # a malformed SKILL.md is scanned whole
        return text
    meta = dict(doc.fields)
    inner = meta.get("metadata")
    if isinstance(inner, dict):
        meta["metadata"] = {k: v for k, v in inner.items() if str(k) not in BOOKKEEPING_KEYS}
    return "\n".join(f"{k}: {v}" for k, v in meta.items()) + "\n" + doc.body


def _authored_lines(text: str) -> list[str]:
    return ["" if ln.strip().split(":")[0] in BOOKKEEPING_KEYS else ln for ln in text.splitlines()]


def _line_of(raw: str, gold: str) -> int | None:
    """The first line that gives `gold` away alone, or that starts a few lines that do."""
    lines = _authored_lines(raw)
    for n, line in enumerate(lines):
        if line.strip() and GoldScan(line).find(gold) is not None:
            return n + 1
    for n in range(len(lines)):
        if lines[n].strip() and GoldScan("\n".join(lines[n : n + LINE_WINDOW])).find(gold):
            return n + 1
    return None


def find_leaks(
    library_root: Path | str, tasks: Iterable[Task], *, baseline_root: Path | str | None = None
) -> list[Leak]:
    """Golds of `tasks` found in the library's skill files and its history, minus those already
    in the baseline."""
    root = Path(library_root)
    base = Path(baseline_root) if baseline_root is not None else None
    golded = [task for task in tasks if task.answer and task.answer.strip()]
    files: list[tuple[Path, Path]] = [(p, p.relative_to(root)) for p in skill_files(root)]
    files += history_files(root)
    live_texts: dict[Path, str] = {}
    leaks: list[Leak] = []
    for path, live_rel in files:
        raw = _read(path)
        text = _content(path, raw)
        if path == root / live_rel:
            live_texts[live_rel] = text
        elif live_texts.get(live_rel) == text:
            continue  # the live version's copy in history: its leaks are reported once
        if not text.strip():
            continue
        before_path = base / live_rel if base is not None else None
        before = (
            GoldScan(_content(before_path, _read(before_path)))
            if before_path is not None and before_path.is_file()
            else None
        )
        scan = GoldScan(text)
        for task in golded:
            form = scan.find(task.answer, task=task.question)
            if form is None or (before is not None and before.find(task.answer) is not None):
                continue
            rel = str(path.relative_to(root))
            leaks.append(Leak(rel, task.id, _line_of(raw, task.answer), form))
    return leaks
