"""The write phase's checks on a proposal: runnable code, problem constants kept, fitting answer
patterns (nodes/writing/checks.py, nodes/writing/heuristics.py)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.nodes.gate import pattern_refusal
from memento_skills.nodes.placeholders import generalise, instantiate
from memento_skills.nodes.writing.checks import answer_refusal, code_refusal, kind_refusal
from memento_skills.nodes.writing.heuristics import NUMBER_PATTERN, echo_removed, repeats_removed
from memento_skills.nodes.writing.prompts import SkillPatch
from memento_skills.nodes.writing.proposals import apply_patch
from memento_skills.stores.cases import Case
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.settings import open_library
from memento_skills.stores.skill import Skill, SkillError
from memento_skills.testing import ScriptedChatModel

PY = ("python", "submit_answer")
SH = ("shell", "submit_answer")
BOTH = ("python", "shell", "submit_answer")
JS_BODY = "Convert the number.\n\n```javascript\nfunction f(n, b) { return n.toString(b); }\n```\n"


def block(lang: str, code: str) -> str:
    return f"Do this:\n\n```{lang}\n{code}\n```\n"


@pytest.mark.parametrize(
    ("body", "tools", "refused"),
    [
        (JS_BODY, BOTH, "line 3 is javascript, which the skill's tools cannot run"),
        (block("js", "console.log(1)"), PY, "is js"),
        (block("ts", "let x: number = 1"), PY, "is ts"),
        (block("java", "class A {}"), BOTH, "is java"),
        (block("c++", "int main() {}"), BOTH, "is c++"),
        (block("python", "print(int('ff', 16))"), PY, None),
        (block("py", "def f(:\n    pass"), PY, "(python) does not compile: invalid syntax"),
        (block("python", "print(1)"), SH, "is python, which none of the skill's tools runs"),
        (block("python", "print(1)"), ("run_skill_script", "submit_answer"), None),
        (block("python", "def convert(n, base):\n    ..."), PY, None),  # `...` is python
        (block("python", ">>> int('ff', 16)\n255\n>>> [1,\n... 2]\n[1, 2]"), PY, None),
        (block("pycon", ">>> print(1 +)\n"), PY, "does not compile"),
        (block("sh", "printf '%d\\n' 0xff | tr -d ' '"), SH, None),
        (block("bash", "if then fi"), SH, "(bash) does not parse: line"),
        (block("bash", "ls -la"), PY, "is bash, which none of the skill's tools runs"),
        (block("", "print(int('ff', 16))"), PY, None),  # unlabelled python
        (block("", "print(int('ff', 16))"), SH, "is python, which none"),
        (block("", "The answer is the last line of output."), SH, None),  # prose
        (block("", "ls -la"), PY, None),  # not python: prose
        (block("json", '{"base": 16}'), SH, None),  # data, never run
        (block("text", "ff"), (), None),
        (block("{.python}", "x = (1"), (), "does not compile"),  # no tools listed: all offered
    ],
)
def test_a_code_block_must_be_runnable_by_the_skill_s_tools(
    body: str, tools: tuple[str, ...], refused: str | None
) -> None:
    if "bash" in body and shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    reason = code_refusal(body, tools or ("python", "shell"))
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason and "\n" not in reason


def test_a_block_already_in_the_skill_is_not_judged_again() -> None:
    old = "Old notes.\n\n```js\nx()\n```\n"
    assert code_refusal(old + "\nMore prose.", PY, old) is None
    assert code_refusal(old + block("java", "class A {}"), PY, old) is not None


@pytest.mark.parametrize(
    ("task", "text", "expected"),
    [
        # the real run: the target base and the comparison bound are the problem's constants
        (
            "Convert 255 to base-16. If the target base is > 10, use letters for digits.",
            "Convert 255 to base-16; if the target base is > 10 use letters",
            "Convert N1 to base-16; if the target base is > 10 use letters",
        ),
        ("What is 1010 in base 2 written in base 10?", "1010 in base 10", "N1 in base 10"),
        ("Write 4095 in radix 16.", "4095 in radix 16", "N1 in radix 16"),
        ("Compute 12345 mod 97.", "12345 mod 97", "N1 mod 97"),
        ("Compute 12345 modulo 97.", "12345 modulo 97", "N1 modulo 97"),
        ("Which of 15, 42, 77 are greater than 40?", "15, 42, 77 > 40", "N1, N2, N3 > 40"),
        ("Keep the words with at least 12 letters.", "at least 12 letters", "at least 12 letters"),
        ("Count items over 50 among 120 and 35", "over 50 among 120, 35", "over 50 among N1, N2"),
        ("Is 144 divisible by 12?", "144 divisible by 12", "N1 divisible by 12"),
        ("Round 3.14159 to 10 decimal places.", "round 3.14159 to 10", "round N1 to 10"),
        ("Store 70000 in a 16-bit integer.", "70000 in a 16-bit int", "N1 in a 16-bit int"),
        (
            "Ages: 34 and 51; who is older than 40?",
            "34, 51, older than 40",
            "N1, N2, older than 40",
        ),
        # instance values elsewhere are still replaced
        ("Add 17 and 25.", "17 + 25", "N1 + N2"),
        ("The list is 10, 20, 30; give the sum.", "sum of 10, 20, 30", "sum of N1, N2, N3"),
    ],
)
def test_generalise_keeps_the_constants_of_the_problem_statement(
    task: str, text: str, expected: str
) -> None:
    assert generalise(text, task) == expected


def test_a_number_both_operand_and_constant_is_kept() -> None:
    task = "Is 10 > 10? Convert 255 as well."
    assert generalise("10 and 255", task) == "10 and N1"


SPELL_TASK = "Spell this word backward (example: sun -> nus): nonretinal"
SPELL_ANALYSIS = (
    "cause: skill; failed step: None; critique: The answer 'The URL is not known' is longer "
    "than expected; tip: Reverse the word with python slicing."
)


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        # the stand-in's body on the benchmark: its prompt, and nothing of its own
        (f"{SPELL_TASK}\nWhat happened: {SPELL_ANALYSIS}", ""),
        (
            f"  {SPELL_TASK.upper()}  \n\n1. Reverse it with word[::-1].",
            "1. Reverse it with word[::-1].",
        ),
        (f"Steps:\n{SPELL_ANALYSIS}\n2. Print it.", "Steps:\n2. Print it."),
        ("What went wrong: the word was not reversed.\nUse python.", "Use python."),
        # a sentence of the task restated; a short line, a tip in other words, kept
        ("Spell this word backward (example: sun -> nus)\nReverse.", "Reverse."),
        (
            "Reverse the word with python slicing.\nSpell it.",
            "Reverse the word with python slicing.\nSpell it.",
        ),
    ],
)
def test_a_body_keeps_none_of_the_writer_s_prompt(body: str, kept: str) -> None:
    assert echo_removed(body, SPELL_TASK, SPELL_ANALYSIS) == kept


def test_a_patch_that_only_restates_its_prompt_changes_nothing() -> None:
    skill = Skill(name="spell", description="Spell words backward.", body="Use python.")
    echo = f"{SPELL_TASK}\nWhat happened: {SPELL_ANALYSIS}"
    with pytest.raises(SkillError, match="changed nothing"):
        apply_patch(skill, SkillPatch(append=echo), SPELL_ANALYSIS, None, task=SPELL_TASK)
    own = SkillPatch(append=f"{echo}\n\nReverse it with word[::-1].")
    proposal = apply_patch(skill, own, SPELL_ANALYSIS, None, task=SPELL_TASK)
    assert proposal["skill_md"].rstrip().endswith("Use python.\n\nReverse it with word[::-1].")


LOOP = "The body of concrete steps is as follows:\n1. Count.\n2. Return the count."
CODE = "```python\nx = 1\n\nprint(x)\n\nprint(x)\n```"


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        # the stand-in's prime-number-count body: one block repeated until the token limit
        (
            f"Intro.\n\n{LOOP}\n\nIt is simple.\n\n{LOOP}\n\nIt is  simple.\n\n{LOOP}\n\n1",
            f"Intro.\n\n{LOOP}\n\nIt is simple.\n\n1",
        ),
        ("One.\n\n\n\nTwo.", "One.\n\n\n\nTwo."),  # nothing repeated: the text as it was
        (f"Run it:\n\n{CODE}\n\n{CODE}", f"Run it:\n\n{CODE}\n\n{CODE}"),  # code is kept
    ],
)
def test_a_body_keeps_each_paragraph_of_prose_once(body: str, kept: str) -> None:
    assert repeats_removed(body) == kept


HEX = r"[0-9a-fA-F]+"
WORD = r"[A-Za-z]+"
LIST = r"\[?[\w]+(?:,\s*[\w]+)*\]?"


@pytest.mark.parametrize(
    ("task", "pattern", "fits"),
    [
        ("Convert 255 to hexadecimal.", NUMBER_PATTERN, False),
        ("Convert 255 to base-16. If the target base is > 10 use letters.", NUMBER_PATTERN, False),
        ("Convert 255 to hexadecimal.", HEX, True),
        ("Convert 255 to base 36.", r"[0-9a-z]+", True),
        ("Reverse the word 'hello'.", NUMBER_PATTERN, False),
        ("Reverse the word 'hello'.", WORD, True),
        ("Spell 42 as a word.", r"Answer:\s*(\w+)", True),  # a pattern with context fits too
        ("List the primes below 10, comma-separated.", NUMBER_PATTERN, False),
        ("List the primes below 10, comma-separated.", r"[\d, ]+\d", True),
        ("List the primes below 10, comma-separated.", LIST, True),
        ("What is 17 times 23?", NUMBER_PATTERN, True),  # a number: anything goes
        ("How many letters are in the word 'banana'?", NUMBER_PATTERN, True),  # a count
        ("Convert 255 to base 2.", NUMBER_PATTERN, True),  # binary digits are numbers
        # the answer's kind, not the input's: these ask for numbers
        ("Convert the hex number ff to decimal.", NUMBER_PATTERN, True),
        ("Reverse the digits of 1234.", NUMBER_PATTERN, True),
        ("Given the list [3, 1, 2], what is the largest?", NUMBER_PATTERN, True),
        ("What is the length of the string 'abc'?", NUMBER_PATTERN, True),
        ("Sort these words: pear, fig. Give the answer as a list.", NUMBER_PATTERN, False),
        ("Which word comes first alphabetically: pear or fig?", NUMBER_PATTERN, False),
    ],
)
def test_an_answer_pattern_must_fit_the_kind_of_answer_asked(
    task: str, pattern: str, fits: bool
) -> None:
    reason = kind_refusal(pattern, task)
    assert (reason is None) is fits, reason


@pytest.mark.parametrize(
    ("pattern", "answer", "fits"),
    [
        (NUMBER_PATTERN, "olleh", False),  # the real run's "0" from a reversed word
        (NUMBER_PATTERN, "ff", False),
        (NUMBER_PATTERN, "1f4", False),  # hex with digits: numbers-only keeps only part
        (NUMBER_PATTERN, "2, 3, 5, 7", False),  # a list becomes its last number
        (NUMBER_PATTERN, "42", True),
        (NUMBER_PATTERN, "-1,234.5", True),
        (NUMBER_PATTERN, "42.", True),
        (r"\d+", "-5", False),  # the sign is dropped
        (HEX, "1f4", True),
        (WORD, "olleh", True),
        (r"[\d, ]+\d", "2, 3, 5, 7", True),
        (NUMBER_PATTERN, "The LCM is 4074", True),  # words around a number: extracted
        (NUMBER_PATTERN, "It is Paris", False),  # words only: letters must survive
    ],
)
def test_an_answer_pattern_must_keep_a_known_answer(pattern: str, answer: str, fits: bool) -> None:
    reason = answer_refusal(pattern, answer)
    assert (reason is None) is fits, reason


def test_a_catastrophic_pattern_is_time_bounded_in_the_checks() -> None:
    started = time.monotonic()
    assert answer_refusal(r"(\d+)+x", "1" * 30 + "a" * 3000 + "y") is not None  # refused
    assert time.monotonic() - started < 5  # not hung


def test_the_gate_refuses_a_pattern_that_breaks_a_gold_without_showing_it() -> None:
    cases = [
        Case(task="What is 2 + 2?", ground_truth="4"),
        Case(task="Reverse 'abc'", ground_truth="cba"),
    ]
    reason = pattern_refusal(NUMBER_PATTERN, cases)
    assert reason is not None and "gold" in reason and "cba" not in reason
    assert pattern_refusal(r"\w+", cases) is None
    assert pattern_refusal(None, cases) is None


def test_a_writer_pattern_that_does_not_fit_the_task_is_not_set() -> None:
    skill = Skill(
        name="convert-base", description="Convert a number between bases.", body="Use python."
    )
    patch = SkillPatch(append="Print the digits.", answer_pattern=NUMBER_PATTERN, rationale="r")
    task = "Convert 255 to base-16."
    proposal = apply_patch(skill, patch, "a", None, evidence="ff 255", task=task)
    assert "memento-answer-pattern" not in proposal["skill_md"]
    fitting = patch.model_copy(update={"answer_pattern": HEX})
    proposal = apply_patch(skill, fitting, "a", None, evidence="ff", task=task)
    assert "memento-answer-pattern" in proposal["skill_md"]


def one_attempt(
    tmp_path: Path, library: Any, writer: ScriptedChatModel, replies: list[Any], task: Any
) -> dict[str, Any]:
    """`task` run once through the compiled graph: the executor says `replies`, the `writer`
    answers the write phase, judged against the task's gold."""
    graph = build_graph(
        chat_models={
            "executor": ScriptedChatModel(script=replies),
            "writer": writer,
            "judge": ScriptedChatModel(),
        },
        library=library,
        index=SkillIndex(tmp_path / "index"),
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"),
        run_log=str(tmp_path / "runs.jsonl"),
        web_search=False,
        max_attempts=1,
    )
    return dict(graph.invoke(task, context=ctx))


def test_the_write_phase_refuses_a_javascript_body_for_a_python_skill(tmp_path: Path) -> None:
    library = open_library(tmp_path / "skills")
    before = library.get("python").authored_text()
    version = library.get("python").version
    writer = ScriptedChatModel(
        script=[
            {"cause": "skill", "failed_step": None, "action": "refine", "tip": ""},
            {"edits": [], "append": JS_BODY, "rationale": "show the conversion"},
        ]
    )
    out = one_attempt(
        tmp_path,
        library,
        writer,
        ["It is about 400."] * 4,
        {"task": "What is 17 times 23? Use python.", "ground_truth": "391"},
    )
    assert not out["verdict"]["passed"] and writer.remaining == 0
    refused = [w for w in out["writes"] if "javascript" in w["reason"]]
    assert refused and refused[0]["action"] == "none" and not refused[0]["accepted"]
    assert "the skill's tools cannot run" in refused[0]["reason"]
    assert library.get("python").version == version
    assert library.get("python").authored_text() == before  # only its utility counts moved
    assert "javascript" not in (library.root / "python" / "SKILL.md").read_text()


def test_the_gate_refuses_a_numbers_only_pattern_on_a_word_gold(tmp_path: Path) -> None:
    """The real run: `exit code: 0` made a numbers-only pattern look fitting, and it turned a
    reversed word into "0". The wording names no kind; the gold refuses it."""
    library = open_library(tmp_path / "skills")
    before = library.get("python").authored_text()
    call = AIMessage(
        content="", tool_calls=[{"name": "python", "args": {"code": "print('hello')"}, "id": "c1"}]
    )
    writer = ScriptedChatModel(
        script=[
            {"cause": "skill", "failed_step": None, "action": "refine", "tip": ""},
            {
                "edits": [],
                "append": "Print the text, then answer with it.",
                "answer_pattern": NUMBER_PATTERN,
                "rationale": "extract the answer",
            },
        ]
    )
    task = "What is 'hello' read from right to left? Use python."
    out = one_attempt(
        tmp_path, library, writer, [call, "hello"], {"task": task, "ground_truth": "olleh"}
    )
    assert out["selected_skill"] == "python" and not out["verdict"]["passed"]
    rolled = [w for w in out["writes"] if w["action"] == "rollback"]
    assert rolled and "a task's gold answer" in rolled[0]["reason"], out["writes"]
    assert "olleh" not in rolled[0]["reason"]
    assert library.get("python").authored_text() == before
    assert library.get("python").answer_pattern is None


def test_placeholders_show_the_next_tasks_numbers_in_the_order_they_were_named() -> None:
    solved = "Count the primes between 8553 and 9401 (inclusive) that are > 10."
    text = generalise("count_primes(8553, 9401) with N > 10", solved)
    assert text == "count_primes(N1, N2) with N > 10"
    later = "Count the primes between 120 and 4000 (inclusive) that are > 10."
    assert instantiate(text, later) == ("count_primes(120, 4000) with N > 10", 2)
    # a placeholder the task has no number for stays; words holding N1 are not placeholders
    assert instantiate("N1 N3 SN1 N1x", "from 55 to 66") == ("55 N3 SN1 N1x", 1)


def test_a_new_skill_that_sends_the_executor_to_a_file_it_lacks_is_not_written(
    tmp_path: Path,
) -> None:
    """The real run left `spell-word-backward`, whose whole body read a script never written."""
    library = open_library(tmp_path / "skills")
    writer = ScriptedChatModel(
        script=[
            {"cause": "no-skill", "failed_step": None, "action": "create", "tip": ""},
            {
                "name": "spell-word-backward",
                "description": "Spell a word backward. Use when a task asks for a word reversed.",
                "body": "read_skill_file scripts/spell_word_backward.py",
                "allowed_tools": ["python"],
            },
        ]
    )
    out = one_attempt(
        tmp_path,
        library,
        writer,
        ["nus"] * 4,
        {"task": "Spell this word backward: lantern", "ground_truth": "nretnal"},
    )
    assert not out["verdict"]["passed"] and writer.remaining == 0
    (refused,) = [w for w in out["writes"] if "does not have" in w["reason"]]
    assert not refused["accepted"] and "scripts/spell_word_backward.py" in refused["reason"]
    assert not library.exists("spell-word-backward")
    assert not (library.root / "spell-word-backward").exists()
