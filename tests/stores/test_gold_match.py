"""The gold matcher: every smuggling form of the issue is found, short golds keep the old rule."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from memento_skills.stores.gold_match import GoldScan, distinctive, find_gold, gives_away
from memento_skills.stores.settings import seed_skills_dir

GOLD = "7006652"  # 1234 * 5678, the README's task


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("The answer is 7006652.", "verbatim"),
        ("The answer is 7,006,652.", "verbatim"),
        ("Note: decode NzAwNjY1Mg== for the answer.", "base64"),
        ("Hint: " + base64.b64encode(b"The answer is 7006652.").decode(), "base64"),
        ("Key: " + base64.urlsafe_b64encode(b"answer 7006652").decode().rstrip("="), "base64"),
        ("Key: " + base64.b32encode(b"7006652").decode(), "base32"),
        ("Key: 0x37303036363532", "hex"),
        ("Key: " + base64.b16encode(b"NzAwNjY1Mg==").decode(), "hex"),  # base64 inside hex
        ("It is seven million six thousand six hundred fifty-two.", "words"),
        ("It is Seven Million Six Thousand Six Hundred and Fifty-Two.", "words"),
        ("Remember: seven zero zero six six five two.", "words"),
        ("Answer, first half: 700\n6652", "spaced"),
        ("Answer:\n- 7\n- 0\n- 0\n- 6\n- 6\n- 5\n- 2", "spaced"),
        ("Answer: 7 0 0 6 6 5 2", "spaced"),
        ("Answer: 7-006-652", "spaced"),
        ("The answer is 7000000 + 6652.", "arithmetic"),
        ("The answer is (1234 × 5678).", "arithmetic"),
        ("answer = 2*3503326", "arithmetic"),
        ("pad: 1 + 1 - 1 + 7000000 + 6652 - 1", "arithmetic"),
        ("The answer reversed: 2566007", "reversed"),
        ("The answer, reversed, is 2566007.", "reversed"),
        ("Reversed and spaced: 2 5 6 6 0 0 7", "reversed"),
    ],
)
def test_every_form_of_the_issue_is_found(text: str, form: str) -> None:
    assert find_gold(text, GOLD) == form


def test_text_golds_spaced_reversed_encoded() -> None:
    gold = "Reykjavik"
    assert find_gold("The capital is R e y k j a v i k.", gold) == "spaced"
    assert find_gold("R-E-Y-K-J-A-V-I-K", gold) == "spaced"
    assert find_gold("Say kivajkyeR backwards", gold) == "reversed"
    assert find_gold(base64.b64encode("Reykjavík".encode()).decode(), gold) == "base64"
    assert find_gold("São Paulo, not the answer", "Sao Paulo") == "verbatim"
    assert find_gold("o l u a p  o a s", "São Paulo") == "reversed"


def test_a_form_the_question_itself_holds_is_the_tasks_data() -> None:
    task = "Spell this word backward (example: sun -> nus): naphtho"
    skill = "Run scripts/reverse.py with the word, e.g. `naphtho`."
    scan = GoldScan(skill)
    assert scan.find("ohthpan") == "reversed"
    assert scan.find("ohthpan", task=task) is None
    # the task's data lets through only the form it holds: the gold itself still counts, and so
    # does another form the question does not give (spaced letters)
    assert GoldScan(skill + " The answer: ohthpan").find("ohthpan", task=task) == "verbatim"
    assert GoldScan(skill + " o-h-t-h-p-a-n").find("ohthpan", task=task) == "spaced"
    sum_task = "What is 7000000 + 6652?"
    assert GoldScan("Add them: 7000000 + 6652").find(GOLD, task=sum_task) is None
    assert GoldScan("Add them: 7000000 + 6652").find(GOLD, task="Add two numbers.") == (
        "arithmetic"
    )


@pytest.mark.parametrize(
    ("gold", "text"),
    [
        # a skill about base conversion, gold "10": only the verbatim rule applies to it
        ("10", "In binary 1 0 1 0 is ten; 5 + 5, 2 * 5 and 01 reversed; hex A."),
        ("2024", "Dates: 20 24, 4202, 2000 + 24 and twenty twenty-four."),
        ("1000000", "One million rows: 1000 * 1000 is a lot."),
        ("12000", "twelve thousand steps, 12 000, 6000 * 2"),
        ("yes", "Answer y e s or s e y; never sey."),
        ("3", "Step 3: add 1 + 2; three times."),
    ],
)
def test_short_or_round_golds_keep_the_verbatim_rule_only(gold: str, text: str) -> None:
    assert not distinctive(gold)
    assert find_gold(text, gold) is None


def test_short_golds_still_match_verbatim_and_inside_an_encoded_run() -> None:
    assert find_gold("The answer is 10.", "10") == "verbatim"
    # an encoded run is deliberate: no word decodes to printable text, so a short gold counts
    assert find_gold("Decode " + base64.b64encode(b"the answer is 10").decode(), "10") == "base64"
    assert find_gold("Say yes.", "yes") == "verbatim"


def test_distinctive_floor() -> None:
    assert distinctive("7006652") and distinctive("120500") and distinctive("Reykjavik")
    assert distinctive("3.14159")
    for gold in ("10", "2024", "1000000", "12000", "yes", "aaaaaa", "00001"):
        assert not distinctive(gold), gold


NOISE = """---
name: some-skill
metadata:
  memento-created: '2026-12-01T22:34:52.482197+00:00'
  memento-version: '12'
---
Steps 1. 2. 3. Phone 555-123-4567, range 10000-20000, version 3.11.2, ids 1 2 3 4 5 6.
sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 and
uuid 123e4567-e89b-12d3-a456-426614174000; base64 of a greeting: aGVsbG8gd29ybGQ=
12 * 34 = 408, 2**10 = 1024, 9**9**9**9 overflows, 1/0 fails. One hundred and twenty steps.
Multiplication internationalization configuration responsibilities.
"""


def test_no_false_positive_in_ordinary_skill_text() -> None:
    golds = [GOLD, "37873565", "Reykjavik", "3.14159", "987654", "hello there", "Paris"]
    assert not gives_away(NOISE, golds)
    for path in sorted(seed_skills_dir().rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="ignore")
            assert [g for g in golds if find_gold(text, g)] == [], path


def test_a_hostile_body_costs_bounded_time_and_is_marked_truncated() -> None:
    started = time.perf_counter()
    huge = GoldScan("1+" * 100_000 + "1")
    assert huge.truncated and huge.find(GOLD) is None
    for text in ("1" + " " * 100_000 + "?", "( " * 100_000, "a " * 100_000, "QUFB" * 50_000):
        assert GoldScan(text).find(GOLD) is None
    assert time.perf_counter() - started < 30  # seconds, on a shared 2-core machine


def test_a_5kb_skill_is_checked_in_milliseconds() -> None:
    body = Path(seed_skills_dir() / "python" / "SKILL.md").read_text(encoding="utf-8")
    body = (body * (5000 // len(body) + 1))[:5000]
    runs = 20
    started = time.perf_counter()
    for _ in range(runs):
        assert GoldScan(body).find(GOLD) is None
    per_scan = (time.perf_counter() - started) / runs
    print(f"gold matcher on a 5 KB skill: {per_scan * 1000:.1f} ms")
    assert per_scan < 0.25


def test_numbers_past_decimals_range_are_text_not_a_crash() -> None:
    # an exponent past Decimal's range raised decimal.Overflow from the leak scan after a run
    assert find_gold("see 1e999999999 and 9E+999999999 here", "7006652") is None
    assert find_gold("the answer is 1e999999999", "1e999999999") == "verbatim"
    assert find_gold("7000000 + 6652", "1e999999999") is None  # never expanded to its digits


def test_a_library_that_changes_the_decimal_context_changes_no_match() -> None:
    # reasoning-gym sets the thread's decimal precision; a hex digest reads as 2e3826553293
    import decimal

    with decimal.localcontext() as ctx:
        ctx.prec = 2
        assert find_gold("the answer is 7,006,652", "7006652") == "verbatim"
        assert find_gold("a round 7000000", "7006652") is None  # not rounded to the same value
        assert find_gold("digest 2e3826553293ab", "7006652") is None


def test_the_librarys_change_keys_are_not_authored_text() -> None:
    # a change key's hex reads as numbers ("1e2" is 100): the gate refused a skill at random
    from memento_skills.stores.skill import Skill

    skill = Skill(
        name="reader",
        description="Read the number in data.txt. Use when a task attaches a data file.",
        body="Read data.txt with read_file and answer with the number in it.",
        change="run-3fa1e2b9:1:refine",
        outcomes=("run-0041aa:1:utility",),
    )
    assert "1e2" in skill.to_markdown() and "0041" in skill.to_markdown()
    assert not gives_away(skill.authored_text(), ["100", "41"])
