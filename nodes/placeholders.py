"""The task's own numbers as placeholders N1, N2, ...: written out of skill text when a skill is
made from one task, and the next task's numbers written back in when the skill is used.

A skill is for the kind of task, not its values (docs/decisions.md#generalise-numbers); a small
executor copies a worked call's `N1` literally, so the prompt shows its own task's numbers there.
"""

from __future__ import annotations

import re

_TASK_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")
_NUM = r"(\d+(?:[.,]\d+)*)"
_CONSTANT_RES = (
    # a comparison: "> 10", ">= 10", "greater than 10", "at least 10", "no more than 10"
    re.compile(
        r"(?:[<>≤≥]=?|=>|=<|!=|==|\b(?:greater|more|less|fewer|larger|smaller|bigger|higher|"
        r"lower|longer|shorter|older|younger)\s+than(?:\s+or\s+equal\s+to)?|\bat\s+(?:least|"
        r"most)|\b(?:over|under|above|below|exceeds?|exceeding|up\s+to|divisible\s+by|"
        r"multiples?\s+of)|\bequal\s+to)\s*" + _NUM,
        re.I,
    ),
    # a base, radix or modulus: "base-16", "base 16", "radix 8", "mod 97", "modulo 97"
    re.compile(r"\b(?:base|radix|mod|modulo|modulus)[- ]?" + _NUM, re.I),
    re.compile(r"\b" + _NUM + r"(?:st|nd|rd|th)?[- ]?(?:ary|adic)\b", re.I),
    # a unit of the answer's form: "2 decimal places", "32-bit", "24-hour", "8 digits"
    re.compile(
        r"\b" + _NUM + r"[- ]?(?:decimal\s+places?|decimals|significant\s+(?:figures|digits)|"
        r"sig\s+figs|bits?|bytes?|hour\s+(?:clock|format|time)|digits?|characters?|letters?)\b",
        re.I,
    ),
)


def problem_constants(task: str) -> set[str]:
    """The numbers of `task` that state the problem, not its instance: a comparison's bound,
    a base, radix or modulus, a unit of the answer's form (docs/decisions.md#generalise-numbers).
    """
    return {m.group(1) for r in _CONSTANT_RES for m in r.finditer(task)}


def generalise(text: str, task: str) -> str:
    """`text` with the task's own numbers (two digits or more) replaced by N1, N2, ...; the
    constants of its problem statement ("> 10", "base-16") stay.

    A skill is for the kind of task, not for its values: one that keeps them fits one task, and
    its numbers collide with other tasks' golds (docs/decisions.md#generalise-numbers).
    """
    names = {n: f"N{i}" for i, n in enumerate(instance_numbers(task), start=1)}
    for number in sorted(names, key=len, reverse=True):  # 1234 before 123: never half-replaced
        text = re.sub(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", names[number], text)
    return text


def instance_numbers(task: str) -> list[str]:
    """The numbers `generalise` replaces, in its order: distinct, first seen first, two digits
    or more, not a constant of the problem statement."""
    constants = problem_constants(task)
    found = [
        n
        for n in _TASK_NUMBER_RE.findall(task)
        if sum(c.isdigit() for c in n) >= 2 and n not in constants
    ]
    return list(dict.fromkeys(found))


_PLACEHOLDER_RE = re.compile(r"(?<![\w.])N([1-9]\d?)(?![\w])")


def instantiate(text: str, task: str) -> tuple[str, int]:
    """`text` with each placeholder N<i> replaced by the i-th of `task`'s instance numbers, and
    how many were filled; a placeholder the task has no number for stays as it is."""
    numbers = instance_numbers(task)
    filled = 0

    def fill(m: re.Match[str]) -> str:
        nonlocal filled
        i = int(m.group(1))
        if i > len(numbers):
            return m.group(0)
        filled += 1
        return numbers[i - 1]

    return _PLACEHOLDER_RE.sub(fill, text), filled
