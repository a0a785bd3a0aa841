"""Deterministic answer scoring (GAIA-style normalisation) and a detector for leaked gold answers.

`exact_match` follows the rules of GAIA's published scorer so that numbers reported here mean what
GAIA numbers mean: a numeric gold is compared as a float after dropping `$`, `%` and `,` from the
answer; a gold containing `,` or `;` is a list, compared item by item (numbers as numbers, text
lowercased without whitespace) and only at equal length; any other gold is compared as text with
case, whitespace and punctuation ignored. Deliberate differences, all more lenient in ways GAIA's
own data never exercises: a gold written with thousands separators ("1,234") is a number, not a
two-item list; list items such as "$5" compare as numbers; text is case-folded and NFKC-normalised
and Unicode punctuation counts as punctuation; "nan", "inf" and "1_000" are not numbers.

`contains_gold` answers a different question — could a reader recover the gold from this text? —
and lives with the other forms of that question in `stores/gold_match.py` (re-exported here with
the answer kinds it shares with the scorer).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memento_skills.stores.gold_match import (
    AnswerKind,
    classify,
    contains_gold,
    parse_number,
    split_list,
)

__all__ = [
    "AnswerKind",
    "classify",
    "contains_gold",
    "exact_match",
    "list_item_matches",
    "normalize_text",
    "parse_number",
    "split_list",
]

_WHITESPACE = re.compile(r"\s+")


def _is_punctuation(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def normalize_text(text: str, *, keep_punctuation: bool = False) -> str:
    """Text as GAIA compares it: no whitespace at all, case-folded, punctuation removed."""
    folded = _WHITESPACE.sub("", unicodedata.normalize("NFKC", text)).casefold()
    if keep_punctuation:
        return folded
    return "".join(c for c in folded if not _is_punctuation(c))


def _item_matches(answer_item: str, gold_item: str) -> bool:
    gold_value = parse_number(gold_item)
    if gold_value is not None:
        return parse_number(answer_item) == gold_value
    # GAIA keeps punctuation inside list items: "a.b" and "ab" are different items.
    return normalize_text(answer_item, keep_punctuation=True) == normalize_text(
        gold_item, keep_punctuation=True
    )


def list_item_matches(answer: str, gold: str) -> list[bool] | None:
    """Per-item comparison of a list answer with a list gold; None when their lengths differ."""
    answer_items, gold_items = split_list(answer), split_list(gold)
    if len(answer_items) != len(gold_items):
        return None
    return [_item_matches(a, g) for a, g in zip(answer_items, gold_items, strict=True)]


def exact_match(answer: str, gold: str) -> bool:
    """True when `answer` equals `gold` under GAIA's normalisation for the gold's kind."""
    kind = classify(gold)
    if kind == "number":
        value = parse_number(answer)
        return value is not None and value == parse_number(gold)
    if kind == "list":
        matches = list_item_matches(answer, gold)
        return matches is not None and all(matches)
    return normalize_text(answer) == normalize_text(gold)


@dataclass(frozen=True)
class Score:
    """A suite's judgement of one answer; `usage` is the judge model's tokens, when one was asked."""

    correct: bool
    score: float
    method: str
    extracted: str | None = None
    usage: Mapping[str, Any] | None = None
