"""Lift the task's values out of a program that solved one task, into command-line arguments.

A small writer finds the computation for one task more often than it writes a parameterised
program (docs/decisions.md#value-lifting); once a program with the task's values written in
has passed the judge, its literals that are values of the task (a number or a word the task
text holds) become `sys.argv` arguments, with no model call, so the script serves the next task
of the kind. A value the code or the task holds more than once is ambiguous (the task's 2 and
a loop's 2 look alike; an example's 2 and the instance's) and stays written in.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import Counter
from dataclasses import dataclass
from typing import cast

NOT_LIFTED = frozenset({0, 1})
"""Numbers a program uses for its own counting; a task holding them does not make them values."""


@dataclass(frozen=True)
class Lifted:
    """A program with the task's values as its arguments, and this task's arguments."""

    code: str
    args: list[str]


@dataclass(frozen=True)
class _Literal:
    value: int | float | str
    start: tuple[int, int]
    end: tuple[int, int]
    nested: bool = False
    """Inside a function or class body: part of the computation, not what the top level gives it."""


def lifted(code: str, task: str) -> Lifted | None:
    """`code` with each literal that is a value of `task` read from the command line, in the
    order they first appear; None when nothing is lifted or the code does not parse. A value is
    lifted when it is found exactly once in the task and once among the program's literals.

    The literals looked at are those of the assignments the program opens with (`word = "..."`,
    as the program prompt asks), else those of its top level (a call `count(8, 40)`, a one-line
    `print(...)`), never a function's own (`range(3, n, 2)`). A value found
    twice stays written in: which one is the task's is unknown, and the gate's replays on
    other tasks of the kind tell whether that matters."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    every = _literals(tree)
    opening = _opening_lines(tree)
    chosen = [lit for lit in every if lit.start[0] in opening and _in_task(lit.value, task)]
    if not chosen:
        chosen = [lit for lit in every if not lit.nested and _in_task(lit.value, task)]
    counts = Counter(_key(lit.value) for lit in every)
    literals = sorted((lit for lit in chosen if counts[_key(lit.value)] == 1), key=_start)
    if not literals:
        return None
    values = [lit.value for lit in literals]
    names = _names(tree, len(values))
    replaced = _replace(code, literals, {_key(v): n for v, n in zip(values, names, strict=True)})
    header = ["import sys\n"] + [
        f"{name} = {_reader(value, i + 1)}\n"
        for i, (name, value) in enumerate(zip(names, values, strict=True))
    ]
    lines = _without_comments_naming(replaced, [str(v) for v in values]).splitlines(keepends=True)
    at = _header_line(tree)
    return Lifted(
        code="".join([*lines[:at], *header, *lines[at:]]),
        args=[str(v) for v in values],
    )


def _literals(tree: ast.AST) -> list[_Literal]:
    """The program's number and string literals (a negative number as one), outside docstrings
    and f-strings."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.add(id(body[0].value))
    nested = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)
        for inner in ast.walk(node)
        if inner is not node
    }
    found: list[_Literal] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and _number(node.operand)
        ):
            skip.add(id(node.operand))
            value = -node.operand.value  # type: ignore[attr-defined]
            found.append(_Literal(value, _pos(node), _end(node), id(node) in nested))
        elif (
            isinstance(node, ast.Constant)
            and (_number(node) or isinstance(node.value, str))
            and id(node) not in skip
        ):
            value = cast(int | float | str, node.value)
            found.append(_Literal(value, _pos(node), _end(node), id(node) in nested))
    return [lit for lit in found if lit.value not in NOT_LIFTED or isinstance(lit.value, str)]


def _number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


def _pos(node: ast.AST) -> tuple[int, int]:
    return node.lineno, node.col_offset  # type: ignore[attr-defined]


def _end(node: ast.AST) -> tuple[int, int]:
    return node.end_lineno or node.lineno, node.end_col_offset or 0  # type: ignore[attr-defined]


def _in_task(value: int | float | str, task: str) -> bool:
    """Whether the task text holds `value` exactly once as a whole token (a number not inside
    a longer number; a string with a letter or digit, not inside a longer word). A value the
    task holds twice may be its statement's (an example's, a constant's) as well as this
    instance's."""
    if isinstance(value, str):
        if not re.search(r"\w", value):
            return False
        pattern = rf"(?<!\w){re.escape(value)}(?!\w)"
    else:
        text = repr(value) if isinstance(value, float) else str(value)
        pattern = rf"(?<![\w.]){re.escape(text)}(?![\w]|\.\d)"
    return len(re.findall(pattern, task)) == 1


def _key(value: int | float | str) -> tuple[str, str]:
    return type(value).__name__, repr(value)


def _start(lit: _Literal) -> tuple[int, int]:
    return lit.start


def _opening_lines(tree: ast.Module) -> set[int]:
    """The lines of the assignments a program opens with, after its docstring and imports."""
    lines: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom) or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ):
            continue
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            break
        lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def _names(tree: ast.AST, n: int) -> list[str]:
    """Names for the arguments that the program does not already use."""
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    prefix = "task_value_"
    while any(name.startswith(prefix) for name in used):
        prefix = "_" + prefix
    return [f"{prefix}{i + 1}" for i in range(n)]


def _reader(value: int | float | str, index: int) -> str:
    arg = f"sys.argv[{index}]"
    if isinstance(value, bool | str):
        return arg
    return f"{type(value).__name__}({arg})"


def _replace(code: str, literals: list[_Literal], names: dict[tuple[str, str], str]) -> str:
    """`code` with each literal's source text replaced by its argument's name, last first so
    earlier positions stay right."""
    lines = code.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(pos: tuple[int, int]) -> int:
        line, col = pos
        return offsets[line - 1] + len(lines[line - 1].encode("utf-8")[:col].decode("utf-8"))

    text = code
    for lit in sorted(literals, key=_start, reverse=True):
        text = text[: at(lit.start)] + names[_key(lit.value)] + text[at(lit.end) :]
    return text


def _without_comments_naming(code: str, values: list[str]) -> str:
    """`code` without the comments that name one of this task's `values` (`# primes between 8553
    and 9401`): the script serves every task of the kind. A comment alone on its line goes with
    its line."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return code
    lines = code.splitlines(keepends=True)
    for token in reversed(tokens):
        if token.type != tokenize.COMMENT or not any(_in_text(v, token.string) for v in values):
            continue
        row, col = token.start
        line = lines[row - 1]
        rest = line[: len(line.encode("utf-8")[:col].decode("utf-8", "ignore"))].rstrip()
        lines[row - 1] = rest + "\n" if rest else ""
    return "".join(lines)


def _in_text(value: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None


def _header_line(tree: ast.Module) -> int:
    """The line the argument readers go before: after a module docstring and `from __future__`
    imports, which must come first."""
    at = 0
    for i, node in enumerate(tree.body):
        is_doc = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if is_doc or (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            at = node.end_lineno or node.lineno
        else:
            break
    return at
