"""Lifting a solved task's values out of a program: each lifted program is run for real with
the lifted arguments and with another task's, and must print what the written-in one printed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import pytest

from memento_skills.nodes.writing.lifting import lifted


def printed(code: str, args: Sequence[str] = ()) -> str:
    done = subprocess.run(
        [sys.executable, "-I", "-c", code, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("code", "task", "args", "other_args", "other_answer"),
    [
        (
            'word = "lantern"\nprint(word[::-1])\n',
            "Write the word lantern with its letters in reverse order.",
            ["lantern"],
            ["otter"],
            "retto",
        ),
        (
            "def odd(n):\n    return n % 2 == 1\n\n"
            "print(sum(1 for n in range(15, 40 + 1) if odd(n)))\n",
            "How many odd numbers lie from 15 to 40, both included?",
            ["15", "40"],
            ["3", "7"],
            "3",
        ),
        (
            '"""Add a price and its tax."""\nfrom __future__ import annotations\n'
            "print(round(-12.5 * (1 + 0.25), 2))\n",
            "A refund of -12.5 dollars is taxed at 0.25. What is the total?",
            ["-12.5", "0.25"],
            ["10.0", "0.5"],
            "15.0",
        ),
    ],
)
def test_the_tasks_values_become_arguments_that_compute_the_same(
    code: str, task: str, args: list[str], other_args: list[str], other_answer: str
) -> None:
    lift = lifted(code, task)
    assert lift is not None
    assert lift.args == args
    assert printed(lift.code, lift.args) == printed(code)
    assert printed(lift.code, other_args) == other_answer
    for value in args:  # nothing of this task is left in the code
        assert value not in lift.code.replace("sys.argv", "")


def test_a_docstring_and_future_import_stay_first() -> None:
    code = '"""Double it."""\nfrom __future__ import annotations\nprint(2 * 21)\n'
    lift = lifted(code, "What is twice 21?")
    assert lift is not None and lift.args == ["21"]
    assert lift.code.startswith(
        '"""Double it."""\nfrom __future__ import annotations\nimport sys\n'
    )


@pytest.mark.parametrize(
    ("code", "task", "why"),
    [
        ("print(7 + 7)\n", "What is 7 plus 7?", "the same value twice: which is the task's"),
        ("print(2 * 21)\n", "Add 5 and 6.", "no value of the task in the code"),
        ('print(f"{6 * 7}")\n', "Multiply 6 by 7.", "values inside an f-string are left alone"),
        ("print(1 + 5\n", "Add 1 and 5.", "code that does not parse"),
        ("for i in range(1, 5):\n    print(i)\n", "Count from 1 to 4.", "only 1: a counter"),
    ],
)
def test_nothing_is_lifted_when_it_is_not_clear_what_the_values_are(
    code: str, task: str, why: str
) -> None:
    assert lifted(code, task) is None, why


def test_a_value_inside_a_longer_word_or_number_is_not_the_tasks() -> None:
    assert lifted('print("cat".upper())\n', "Spell concatenate in capitals.") is None
    assert lifted("print(12 * 3)\n", "What is 123 times 4?") is None
    lift = lifted('print("cat".upper())\n', "Spell cat in capitals.")
    assert lift is not None and lift.args == ["cat"]


def test_argument_names_do_not_clash_with_the_programs_own() -> None:
    code = "task_value_1 = 3\nprint(task_value_1 * 14)\n"
    lift = lifted(code, "What is 3 times 14?")
    assert lift is not None and lift.args == ["3"]  # the opening assignment's value
    assert printed(lift.code, lift.args) == "42"
    assert printed(lift.code, ["2"]) == "28"


def test_the_opening_assignments_are_the_values_and_an_examples_number_is_not() -> None:
    code = (
        "n = 84\nfactors = []\nd = 2\nwhile n > 1:\n    while n % d == 0:\n"
        "        factors.append(d)\n        n //= d\n    d += 1\n"
        'print(" x ".join(map(str, factors)))\n'
    )
    task = "Break 84 into its prime factors (for 12 you would write 2 x 2 x 3)."
    lift = lifted(code, task)
    assert lift is not None and lift.args == ["84"]  # 2 is twice in the task: an example's
    assert printed(lift.code, ["45"]) == "3 x 3 x 5"
    # a value of the opening assignments is lifted, not the same-looking one further down
    lift = lifted('text = "b a b"\nprint(text.count("b") + 3)\n', 'Count "b" in "b a b", add 3.')
    assert lift is not None and lift.args == ["b a b"]


def test_a_comment_naming_the_tasks_values_goes_with_them() -> None:
    code = (
        "# the primes from 20 to 30\nlow = 20  # from 20\nhigh = 30\n"
        "print(sum(all(n % d for d in range(2, n)) for n in range(low, high + 1)))  # count\n"
    )
    lift = lifted(code, "How many primes are there from 20 to 30?")
    assert lift is not None and lift.args == ["20", "30"]
    assert "20" not in lift.code and "30" not in lift.code and "# count" in lift.code
    assert printed(lift.code, lift.args) == "2"


def test_a_functions_own_numbers_are_not_the_tasks_values() -> None:
    code = (
        "def odd_factors(n):\n    return [d for d in range(3, n + 1, 2) if n % d == 0]\n\n"
        "print(odd_factors(45))\n"
    )
    lift = lifted(code, "List the odd factors of 45 bigger than 1 (for 9: 3, 9).")
    assert lift is not None and lift.args == ["45"]  # 3 is the function's, and an example's
    assert printed(lift.code, ["21"]) == "[3, 7, 21]"
