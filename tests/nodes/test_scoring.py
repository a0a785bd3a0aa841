"""The GAIA-style exact scorer and the gold-leak detector, table-driven."""

from __future__ import annotations

import pytest

from memento_skills.nodes.scoring import classify, contains_gold, exact_match, parse_number


@pytest.mark.parametrize(
    ("gold", "kind"),
    [
        ("41", "number"),
        ("-3.5", "number"),
        ("1,234", "number"),  # thousands separators: a number, not a two-item list
        ("1,234,567.89", "number"),
        ("$12", "number"),
        ("45%", "number"),
        ("1e3", "number"),
        ("1,2", "list"),
        ("1, 234", "list"),
        ("apple; banana", "list"),
        ("a, b, c", "list"),
        ("Paris", "string"),
        ("41 km", "string"),
        ("nan", "string"),
        ("inf", "string"),
        ("1_000", "string"),
        ("", "string"),
    ],
)
def test_classify(gold: str, kind: str) -> None:
    assert classify(gold) == kind


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        # numbers: $, % and , are dropped from the answer, then compared as floats
        ("41", "41", True),
        ("41.0", "41", True),
        ("3.0", "3", True),
        ("3", "3.0", True),
        ("$1,234", "1234", True),
        ("1234", "1,234", True),
        ("1,234.50", "1234.5", True),
        (" 17 ", "17", True),
        ("45%", "45", True),
        ("45", "45%", True),
        ("$ 12", "12", True),
        ("1e3", "1000", True),
        ("-2", "-2", True),
        ("0.45", "45", False),
        ("42", "41", False),
        ("41 km", "41", False),
        ("about 41", "41", False),
        ("forty-one", "41", False),
        ("41.37", "41.4", False),
        ("", "41", False),
        ("nan", "41", False),
        # lists: split on , and ;, same length, numbers as numbers, text without whitespace/case
        ("a, b, c", "a,b,c", True),
        ("A; B; C", "a, b, c", True),
        ("a;b,c", "a, b; c", True),
        ("1, 2.0, $3", "1,2,3", True),
        ("3, 2, 1", "1,2,3", False),
        ("a, b", "a, b, c", False),
        ("a, b, c, d", "a, b, c", False),
        ("New York, Los Angeles", "new york, los angeles", True),
        ("a.b, c", "ab, c", False),  # punctuation is kept inside list items, as GAIA does
        ("apple, pear", "apple, banana", False),
        # strings: case, whitespace and punctuation ignored
        ("Paris", "paris", True),
        ("  PARIS. ", "Paris", True),
        ("Hello, World!", "hello world", True),
        ("St. Petersburg", "St Petersburg", True),
        ("Sankt-Peterburg", "St Petersburg", False),
        ("The answer is Paris", "Paris", False),
        ("Lyon", "Paris", False),
        ("Ｐａｒｉｓ", "Paris", True),  # full-width letters: NFKC
        ("Paris…", "Paris", True),  # Unicode punctuation
    ],
)
def test_exact_match(answer: str, gold: str, expected: bool) -> None:
    assert exact_match(answer, gold) is expected


@pytest.mark.parametrize(
    ("text", "value"),
    [("41", 41.0), ("$1,234.5", 1234.5), ("12%", 12.0), ("x", None), ("inf", None), ("", None)],
)
def test_parse_number(text: str, value: float | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("text", "gold", "expected"),
    [
        # numbers match by value, at token boundaries, whatever the formatting
        ("The answer 1234 is wrong.", "1,234", True),
        ("It costs $1,234.00.", "1234", True),
        ("The 41st entry", "41", True),
        ("value: -41", "41", True),
        ("about 41.0 metres", "41", True),
        ("1e5 is large", "100000", True),
        ("in the year 1410", "41", False),
        ("version 4.1", "41", False),
        ("41.5 units", "41", False),
        ("12,345", "234", False),
        # trivial golds (one character) are never reported
        ("7 apples and 3 pears", "7", False),
        ("it is 7.0", "7.0", False),
        ("a b c", "a", False),
        # strings: case, accents and punctuation ignored, whole tokens only
        ("I think New-York is it", "new york", True),
        ("Try CAFÉ next", "cafe", True),
        ("the cafeteria", "cafe", False),
        ("catalogue", "cat", False),
        ("the Tower of London, I believe", "Tower of London", True),
        ("the tower in london", "Tower of London", False),
        ("", "Paris", False),
        ("Paris", "", False),
        # lists: the whole list, or every item, counts as the gold
        ("apple, banana and cherry", "apple, banana, cherry", True),
        ("cherry then apple then banana", "apple, banana, cherry", True),
        ("only a banana", "apple, banana, cherry", False),
        ("pages 10 and 20", "10, 20", True),
    ],
)
def test_contains_gold(text: str, gold: str, expected: bool) -> None:
    assert contains_gold(text, gold) is expected


def test_contains_gold_partial_finds_any_list_item() -> None:
    gold = "apple, banana, cherry"
    assert contains_gold("only a banana", gold, partial=True)
    assert not contains_gold("only a melon", gold, partial=True)
    # items that are single characters stay ignored even in partial mode
    assert not contains_gold("x is 3", "3, 4, 10", partial=True)
    assert contains_gold("x is 10", "3, 4, 10", partial=True)


def test_exact_match_agrees_with_contains_gold_on_numbers() -> None:
    """Anything exact_match accepts as a number is found by contains_gold as the same number."""
    for answer in ["1234", "$1,234", "1,234.0", "1234%"]:
        assert exact_match(answer, "1,234")
        assert contains_gold(f"answer: {answer}", "1,234")
