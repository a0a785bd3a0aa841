"""Checks a writer's proposal must pass before it is written: code a skill's tools can run, and
an answer pattern that fits the kind of answer its task asks for.

A small writer model writes code in the wrong language and numbers-only patterns for tasks whose
answers are words; the gate's replay may not catch either (the model ignores the code, the
pattern falls back to the raw answer), so they are refused here by rule, for any task family
(docs/decisions.md#proposal-checks).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import regex
from markdown_it import MarkdownIt

from memento_skills.nodes.execution.policies import ANSWER_PATTERN_TIMEOUT_S

PYTHON_LANGS = frozenset({"python", "py", "python3", "py3", "pycon", "pyrepl"})
SHELL_LANGS = frozenset({"sh", "bash", "shell"})
DATA_LANGS = frozenset(
    {
        "", "text", "txt", "plain", "plaintext", "output", "console-output", "json", "yaml",
        "yml", "toml", "ini", "csv", "tsv", "xml", "markdown", "md", "diff", "regex", "log",
    }
)  # fmt: skip
"""Info strings of blocks that are data or prose: shown, never run."""
PYTHON_TOOLS = frozenset({"python", "run_skill_script"})
SHELL_TOOLS = frozenset({"shell"})
_DOCTEST_PROMPT = re.compile(r"^\s*(>>>|\.\.\.)( |$)")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block of a skill body: its language (info string's first word), its text, and
    the line its fence opens on (1-based)."""

    lang: str
    text: str
    line: int


def code_blocks(body: str) -> Iterator[CodeBlock]:
    """The fenced code blocks of a markdown `body`, as CommonMark reads them."""
    for token in MarkdownIt("commonmark").parse(body):
        if token.type != "fence":
            continue
        words = token.info.strip().split()
        lang = words[0].strip("{}.").lower() if words else ""
        yield CodeBlock(lang, token.content, (token.map[0] + 1) if token.map else 0)


def code_refusal(body: str, tools: Iterable[str], old_body: str = "") -> str | None:
    """Why `body` may not go live for a skill offering `tools`, or None if it may.

    Every fenced block must be one the tools can run and must parse: python (`python` or
    `run_skill_script`) compiles, sh/bash (`shell`) passes `bash -n`; a block in any other
    language is refused, a data block (json, text, ...) is prose. An unlabelled block is python
    when it compiles, else prose. Blocks already in `old_body` are not judged again: a change
    is refused for what it adds.
    """
    offered = set(tools)
    seen = {(b.lang, b.text) for b in code_blocks(old_body)} if old_body else set()
    for block in code_blocks(body):
        if (block.lang, block.text) in seen:
            continue
        where = f"the code block at line {block.line}"
        if block.lang == "":
            is_python = python_error(block.text) is None and _looks_like_code(block.text)
            if is_python and not offered & PYTHON_TOOLS:
                return f"{where} is python, which none of the skill's tools runs"
            continue
        if block.lang in DATA_LANGS:
            continue
        if block.lang in PYTHON_LANGS:
            if not offered & PYTHON_TOOLS:
                return f"{where} is python, which none of the skill's tools runs"
            error = python_error(block.text)
            if error is not None:
                return f"{where} (python) does not compile: {error}"
            continue
        if block.lang in SHELL_LANGS:
            if not offered & SHELL_TOOLS:
                return f"{where} is {block.lang}, which none of the skill's tools runs"
            error = shell_error(block.text)
            if error is not None:
                return f"{where} ({block.lang}) does not parse: {error}"
            continue
        runnable = sorted(
            {"python" for t in offered if t in PYTHON_TOOLS}
            | {"sh/bash" for t in offered if t in SHELL_TOOLS}
        )
        return (
            f"{where} is {block.lang}, which the skill's tools cannot run "
            f"(they run {', '.join(runnable) or 'no code'})"
        )
    return None


def python_error(src: str) -> str | None:
    """Why python `src` does not compile (one line), or None. A doctest/REPL block
    (`>>> ` lines) is judged by its input lines; its output lines are not code."""
    if any(line.lstrip().startswith(">>>") for line in src.splitlines()):
        src = "\n".join(
            _DOCTEST_PROMPT.sub("", line, count=1)
            for line in src.splitlines()
            if _DOCTEST_PROMPT.match(line)
        )
    try:
        compile(src, "<skill block>", "exec")
    except SyntaxError as e:
        return f"{e.msg} (line {e.lineno})"
    except ValueError as e:  # a NUL byte
        return str(e)
    return None


def shell_error(src: str) -> str | None:
    """Why shell `src` does not parse under `bash -n` (one line), or None; None too when bash is
    not there to ask."""
    bash = shutil.which("bash")
    if bash is None:
        return None
    try:
        done = subprocess.run(
            [bash, "-n"], input=src, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    first = re.sub(r"^.*?bash: ", "", lines[0]) if lines else f"bash -n exited {done.returncode}"
    return first[:200]


def _looks_like_code(src: str) -> bool:
    """A block that compiles as python but is one bare word or number is prose, not code."""
    return bool(re.search(r"[=()\[\]:]|\bimport\b|\bprint\b", src))


_COUNTING = re.compile(
    r"\b(?:how many|how much|how long|count|number of|sum|total|average|mean|length)\b", re.I
)
_RADIX = r"(?:hex(?:adecimal)?|(?:base|radix)[- ]?(?:1[1-9]|[23]\d))"
ANSWER_KINDS: dict[str, tuple[re.Pattern[str], tuple[str, ...]]] = {
    # kind: (the task asks for it, sample answers of that kind a fitting pattern extracts whole)
    "hex": (
        # asked in that radix, not converted from it ("the hex number ff in decimal")
        re.compile(
            r"\b" + _RADIX + r"\b(?!.*\b(?:to|in|into|as)\s+(?:a\s+)?(?:decimal|base[- ]?10)\b)",
            re.I | re.S,
        ),
        ("ff3a", "1F"),
    ),
    "word": (
        re.compile(
            r"\b(?:reverse[ds]?|spell(?:ed)?|(?:which|what) (?:word|name|letter|string)|"
            r"the (?:word|string|name|letters?)|as (?:a )?(?:word|string|text|letters))\b",
            re.I,
        ),
        ("olleh", "Paris"),
    ),
    "list": (
        # asked for as a list, not given one ("Given the list [3, 1], what is the largest?")
        re.compile(
            r"(?:^|[.?!:;]\s+)list\b|\b(?:as|give|return|output|answer with|provide)\s+"
            r"(?:a|the)\s+(?:comma[- ]separated\s+)?list\b|\bcomma[- ]separated\b|"
            r"\bseparated by\b",
            re.I,
        ),
        ("3, 5, 7", "a, b, c", "[3, 5, 7]"),
    ),
}
_NUMERIC = re.compile(r"\b(?:digits?|numbers?|integers?)\b", re.I)
_CONTEXTS = ("{}", "Answer: {}", "The answer is {}.")
_LIST = re.compile(r"\[?\s*[\w.+-]+(?:\s*[,;]\s*[\w.+-]+)+\s*\]?")


def extract(pattern: str, text: str) -> str | None:
    """What the answer contract makes of `text` (the last match, its first group if it has
    one; nodes/execution/policies.py), or None when the pattern matches nothing (or runs past
    the contract's time bound)."""
    try:
        matches = list(regex.finditer(pattern, text[:4000], timeout=ANSWER_PATTERN_TIMEOUT_S))
    except (TimeoutError, regex.error):
        return None
    if not matches:
        return None
    last = matches[-1]
    value = last.group(1) if last.re.groups and last.group(1) is not None else last.group(0)
    return value.strip() or None


def asked_kinds(task: str) -> list[str]:
    """The kinds of answer (hex, word, list) `task` asks for, by its wording; none for a task
    that asks to count."""
    kinds = [kind for kind, (asks, _) in ANSWER_KINDS.items() if asks.search(task)]
    if _COUNTING.search(task):
        kinds = [k for k in kinds if k == "hex"]  # "how many ... in hex" still wants hex digits
    if "word" in kinds and _NUMERIC.search(task):
        kinds.remove("word")  # "reverse the digits of 1234" wants a number
    return kinds


def answer_refusal(pattern: str, answer: str, what: str = "the known answer") -> str | None:
    """Why answer `pattern` does not keep a known `answer` (a gold, or an answer that passed),
    or None: a bare answer (one token, or a list) must come out whole, one with letters and no
    digit must keep a letter. The reason names `what`, never the answer itself."""
    known = answer.strip()
    if not known:
        return None
    got = extract(pattern, known)
    if got is None:
        return f"the answer pattern {pattern!r} matches nothing in {what}"
    bare = " " not in known or _LIST.fullmatch(known) is not None
    if bare and _alnum(got) != _alnum(known):
        return f"the answer pattern {pattern!r} does not keep {what} whole"
    wordy = re.search(r"[^\W\d_]", known) and not re.search(r"\d", known)
    if wordy and not re.search(r"[^\W\d_]", got):
        return f"the answer pattern {pattern!r} drops the letters of {what}"
    return None


def kind_refusal(pattern: str, task: str) -> str | None:
    """Why answer `pattern` cannot give the kind of answer `task` asks for (hex digits, a word,
    a list), or None: it must extract a sample answer of that kind whole."""
    for kind in asked_kinds(task):
        samples = ANSWER_KINDS[kind][1]
        if not any(extract(pattern, c.format(s)) == s for s in samples for c in _CONTEXTS):
            return (
                f"the answer pattern {pattern!r} cannot extract a {kind} answer, "
                "which the task asks for"
            )
    return None


def _alnum(text: str) -> str:
    """`text`'s digits, letters, signs and points: what an answer pattern must not drop."""
    return re.sub(r"[^\w.-]|_", "", text).strip(".").lower()


MAX_SCRIPT_BYTES = 64 * 1024
"""The largest script a proposal may carry: a distilled procedure is a page of code, not a
library (the library's own cap on a skill file is far larger)."""
SCRIPTS_DIR = "scripts"


def file_refusal(files: Mapping[str, str]) -> str | None:
    """Why a proposal's `files` (skill-relative path -> text) may not be written, or None.

    Checked before anything is written: each path is relative and inside `scripts/`, each text
    at most MAX_SCRIPT_BYTES, free of NUL bytes, and a `.py` file compiles
    (docs/decisions.md#script-skills)."""
    for rel, text in files.items():
        path = PurePosixPath(rel)
        if (
            path.is_absolute()
            or "\\" in rel
            or ".." in path.parts
            or len(path.parts) < 2
            or path.parts[0] != SCRIPTS_DIR
        ):
            return f"the file {rel!r} is not a relative path under {SCRIPTS_DIR}/"
        size = len(text.encode("utf-8"))
        if size > MAX_SCRIPT_BYTES:
            return f"the file {rel!r} is {size} bytes, the limit is {MAX_SCRIPT_BYTES}"
        if "\x00" in text:
            return f"the file {rel!r} holds NUL bytes"
        if path.suffix == ".py":
            error = python_error(text)
            if error is not None:
                return f"the script {rel!r} is not python that compiles: {error}"
    return None


_SKILL_FILE_RE = re.compile(r"(?<![\w/.-])(?:scripts|references|assets)/[\w.-]+(?:/[\w.-]+)*")


def missing_file_refusal(body: str, files: Iterable[str]) -> str | None:
    """Why a new skill's `body` may not be written because it sends the executor to a file of
    the skill that the proposal does not hold (`files`), or None: a model that cannot find the
    procedure writes "read scripts/x.py" for a script it never wrote."""
    held = {PurePosixPath(f).as_posix() for f in files}
    missing = sorted({m.rstrip(".") for m in _SKILL_FILE_RE.findall(body)} - held)
    if missing:
        return (
            f"the body names {', '.join(missing[:3])}, which the skill does not have: write the "
            "file with it or take the mention out"
        )
    return None


def description_fit(index: Any, task: str, document: str) -> float:
    """How well a skill `document` ("name: description") matches `task`: the cosine similarity
    of their embeddings under `index`'s embedder, the dense score the router ranks skills by."""
    return cosine(index.embed_query(task), index.embed_query(document))


def cosine(a: Any, b: Any) -> float:
    """The cosine similarity of two embedding vectors (0 when either is zero)."""
    norm = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0 else 0.0
