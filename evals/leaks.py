"""Leak check: did any gold answer of the suite end up in the skill library?

The writer never sees a gold, so a gold in a skill means a leak somewhere in the pipeline (or a
skill that memorised answers instead of learning a method): either way the run's numbers cannot
be trusted, and the run fails loudly. Every file in every skill folder is read — SKILL.md,
scripts, references, assets — but not the library's own `.memento/` bookkeeping, where the
regression cases keep their golds on purpose for the gate.

In SKILL.md the library's own bookkeeping under `metadata` (`memento-` keys: version, counts,
timestamps, source) is machine-written, not learned content, and is skipped: a timestamp's "24"
is not the gold "24". Matching is `scorers.contains_gold`: whole tokens or phrases, number formatting aside, golds of
one character ignored. A gold already present in the same file of the packaged seed skills
(written before any task was seen) is not a leak.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from memento_skills.evals.scorers import _tokens, contains_gold
from memento_skills.evals.suites import Task

MAX_FILE_BYTES = 2_000_000
BOOKKEEPING_PREFIX = "memento-"


@dataclass(frozen=True)
class Leak:
    file: str
    """Path relative to the library root, e.g. `multiply-numbers/SKILL.md`."""
    task_id: str
    line: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"the gold answer of task {self.task_id} appears in {where}"


def skill_files(library_root: Path) -> Iterator[Path]:
    """Every file inside a skill folder; the library's dot-folders (.memento) are not skills."""
    for folder in sorted(p for p in library_root.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(library_root)
            if path.is_file() and not any(part.startswith(".memento") for part in rel.parts):
                yield path


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
        meta["metadata"] = {
            k: v for k, v in inner.items() if not str(k).startswith(BOOKKEEPING_PREFIX)
        }
    return "\n".join(f"{k}: {v}" for k, v in meta.items()) + "\n" + doc.body


def _authored_lines(text: str) -> list[str]:
    return ["" if ln.strip().startswith(BOOKKEEPING_PREFIX) else ln for ln in text.splitlines()]


def find_leaks(
    library_root: Path | str, tasks: Iterable[Task], *, baseline_root: Path | str | None = None
) -> list[Leak]:
    """Golds of `tasks` found in the library's skill files, minus those already in the baseline."""
    root = Path(library_root)
    base = Path(baseline_root) if baseline_root is not None else None
    by_gold: dict[str, list[str]] = {}
    for task in tasks:
        by_gold.setdefault(task.answer, []).append(task.id)
    # contains_gold tokenises the whole text per call; thousands of golds (HLE) times every file
    # would take minutes. A gold can only be found where one of its tokens is, so a set lookup
    # leaves contains_gold to decide for the few golds that share a token with the file.
    gold_tokens = {gold: set(_tokens(gold)) for gold in by_gold}
    leaks: list[Leak] = []
    for path in skill_files(root):
        rel = path.relative_to(root)
        raw = _read(path)
        text = _content(path, raw)
        if not text.strip():
            continue
        before_path = base / rel if base is not None else None
        before = (
            _content(before_path, _read(before_path))
            if before_path is not None and before_path.is_file()
            else ""
        )
        present = set(_tokens(text))
        for gold, task_ids in by_gold.items():
            if gold_tokens[gold].isdisjoint(present):
                continue
            if not contains_gold(text, gold) or (before and contains_gold(before, gold)):
                continue
            line = next(
                (n for n, ln in enumerate(_authored_lines(raw), 1) if contains_gold(ln, gold)),
                None,
            )
            leaks.extend(Leak(str(rel), task_id, line) for task_id in task_ids)
    return leaks
