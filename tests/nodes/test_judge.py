"""The judge node: exact scoring, model equivalence, rubric grading, and no gold in critiques."""

from __future__ import annotations

from typing import Any, cast

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import State
from memento_skills.nodes.judge import (
    DEFAULT_RUBRIC,
    NEUTRAL_FAILED_CRITIQUE,
    Equivalence,
    RubricGrade,
    explain_mismatch,
    judge,
    scrub,
)
from memento_skills.nodes.scoring import contains_gold
from memento_skills.testing import ScriptedChatModel

TASK = "Which London landmark held the Crown Jewels in 1700? Answer with its name only."
GOLD = "The Tower of London"


def run_judge(state: dict[str, Any], *script: Any) -> tuple[dict[str, Any], ScriptedChatModel]:
    model = ScriptedChatModel(script=list(script))
    resources = Resources(chat_models={"judge": model})
    update = judge(cast(State, state), Runtime(context=Context()), resources=resources)
    return update["verdict"], model


# --- ground truth: exact ------------------------------------------------------------------------


def test_exact_pass_needs_no_model() -> None:
    verdict, model = run_judge({"task": "2 * 617?", "answer": "$1,234", "ground_truth": "1234"})
    assert verdict == {
        "passed": True,
        "score": 1.0,
        "critique": "The answer matches the expected answer.",
        "method": "exact",
    }
    assert model.calls == []


def test_exact_fail_quotes_the_answer_not_the_gold() -> None:
    verdict, model = run_judge({"task": "6 * 7 - 1?", "answer": "42", "ground_truth": "41"})
    assert verdict["passed"] is False and verdict["score"] == 0.0 and verdict["method"] == "exact"
    assert verdict["critique"] == 'The answer "42" is not correct.'
    assert model.calls == []  # numbers are never sent to the model: the scorer is authoritative


def test_number_with_units_gets_a_format_hint_without_the_number() -> None:
    verdict, model = run_judge(
        {"task": "How far, in km?", "answer": "The distance is 41 km", "ground_truth": "41"}
    )
    assert verdict["method"] == "exact" and not verdict["passed"]
    assert verdict["critique"].startswith("The answer is not a bare number")
    assert "41" not in verdict["critique"]
    assert model.calls == []


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("forty", "40", 'The answer "forty" is not a number, but the task expects a number.'),
        ("41.37", "41.4", "check the rounding or precision"),
        ("41", "41.37", "check the rounding or precision"),
        ("0.45", "45", "check the unit or scale"),
        ("1234", "1,234,000", "check the unit or scale"),
        ("apple", "apple, pear", "is a single item, but the task expects a list"),
        ("a, b, c", "a, b", "The answer lists 3 items, which is not the expected number"),
        ("a, x, c, y", "a, b, c, d", "item(s) 2, 4 are not correct"),
        ("1990", "Paris", 'The answer "1990" is a number, but the task expects a text answer.'),
        ("41", "41 km", "check whether the task asks for units"),
        ("Lyon", "Paris", 'The answer "Lyon" is not correct.'),
        ("It is in France, the capital", "Paris", "is longer than expected"),
        ("the city of Paris in France", "Paris", "The answer is longer than expected"),
    ],
)
def test_rule_critiques(answer: str, gold: str, expected: str) -> None:
    critique = explain_mismatch(answer, gold)
    assert expected in critique
    assert not contains_gold(critique, gold, partial=True)


# --- ground truth: model equivalence ------------------------------------------------------------


def test_free_form_answer_accepted_by_model_equivalence() -> None:
    verdict, model = run_judge(
        {"task": TASK, "answer": "Tower of London (the fortress)", "ground_truth": GOLD},
        Equivalence(equivalent=True, reason="Same landmark, named with a descriptor."),
    )
    assert verdict == {
        "passed": True,
        "score": 1.0,
        "critique": "Same landmark, named with a descriptor.",
        "method": "llm-equivalence",
    }
    prompt = model.calls[0].text
    assert TASK in prompt and "Tower of London (the fortress)" in prompt and GOLD in prompt


def test_model_reason_that_leaks_the_gold_is_redacted() -> None:
    verdict, _ = run_judge(
        {"task": TASK, "answer": "Westminster Abbey", "ground_truth": GOLD},
        Equivalence(equivalent=False, reason="Wrong: it was kept at the tower of London."),
    )
    assert verdict["method"] == "llm-equivalence" and verdict["passed"] is False
    assert verdict["critique"] == NEUTRAL_FAILED_CRITIQUE


def test_model_reason_that_leaks_a_list_item_is_redacted() -> None:
    gold = "Paris, Lyon, Marseille"
    verdict, model = run_judge(
        {
            "task": "Three largest French cities?",
            "answer": "Paris, Nice, Lyon",
            "ground_truth": gold,
        }
    )
    # lists are exact: no model call, and the rule critique names positions only
    assert model.calls == [] and verdict["critique"].startswith("In the answer's list of 3 items")
    assert not contains_gold(verdict["critique"], gold, partial=True)


def test_model_garbage_falls_back_to_exact_and_says_so() -> None:
    verdict, model = run_judge(
        {"task": TASK, "answer": "Westminster Abbey", "ground_truth": GOLD},
        "I think they are the same, the tower of london",
        "still no JSON here",
    )
    assert len(model.calls) == 2  # the first reply and the one repair round
    assert verdict["passed"] is False and verdict["method"] == "exact"
    assert verdict["critique"] == (
        'The answer "Westminster Abbey" is not correct. (The judge model\'s equivalence check '
        "failed with StructuredOutputError, so only exact matching was applied.)"
    )


def test_model_exception_falls_back_to_exact() -> None:
    def boom(_: Any) -> Any:
        raise ConnectionError("endpoint down")

    verdict, _ = run_judge({"task": TASK, "answer": "Kew Palace", "ground_truth": GOLD}, boom)
    assert verdict["method"] == "exact" and not verdict["passed"]
    assert "failed with ConnectionError" in verdict["critique"]


def test_a_formula_gold_is_exact_and_never_sent_to_the_model() -> None:
    task = "Find the prime factorization of 530. Write the factors separated by ×"
    verdict, model = run_judge(
        {"task": task, "answer": "45641912097416847035456049650", "ground_truth": "2 × 5 × 53"}
    )
    assert verdict["method"] == "exact" and verdict["passed"] is False and model.calls == []
    verdict, _ = run_judge({"task": task, "answer": "2 × 5 × 53", "ground_truth": "2 × 5 × 53"})
    assert verdict["passed"] is True


def test_long_answer_containing_a_short_gold_goes_to_the_model() -> None:
    verdict, model = run_judge(
        {
            "task": "Capital of France?",
            "answer": "The capital of France is Paris.",
            "ground_truth": "Paris",
        },
        Equivalence(equivalent=True, reason="It names the right city, with extra words."),
    )
    assert len(model.calls) == 1 and verdict["method"] == "llm-equivalence" and verdict["passed"]


def test_long_answer_that_never_states_a_short_gold_fails_without_the_model() -> None:
    # Seen with the stand-in as judge: "The directory .tmp/ is empty." passed for a reversed word.
    verdict, model = run_judge(
        {
            "task": "Spell this word backward (example: sun -> nus): naphtho",
            "answer": "The directory .tmp/ is empty, so there is nothing to reverse.",
            "ground_truth": "ohthpan",
        },
        Equivalence(equivalent=True, reason="Same meaning."),
    )
    assert model.calls == [] and verdict["method"] == "exact" and verdict["passed"] is False


# --- rubric mode --------------------------------------------------------------------------------


def test_rubric_mode_uses_the_default_rubric_and_the_chat_task() -> None:
    verdict, model = run_judge(
        {
            "messages": [HumanMessage("Summarise PEP 8 in one line."), AIMessage("...")],
            "answer": "Python's style guide: readable, consistent code.",
        },
        RubricGrade(passed=True, score=0.9, critique="Complete and concise."),
    )
    assert verdict == {
        "passed": True,
        "score": 0.9,
        "critique": "Complete and concise.",
        "method": "rubric",
    }
    prompt = model.calls[0].text
    assert "Summarise PEP 8 in one line." in prompt and DEFAULT_RUBRIC in prompt


def test_rubric_mode_uses_the_given_rubric_and_repairs_an_out_of_range_score() -> None:
    verdict, model = run_judge(
        {"task": "Name a prime.", "answer": "9", "rubric": "The number must be prime."},
        {"passed": False, "score": 7, "critique": "9 = 3 * 3 is not prime."},
        {"passed": False, "score": 0.0, "critique": "9 = 3 * 3 is not prime."},
    )
    assert verdict["method"] == "rubric" and verdict["score"] == 0.0 and not verdict["passed"]
    assert "The number must be prime." in model.calls[0].text
    assert DEFAULT_RUBRIC not in model.calls[0].text
    assert "less than or equal to 1" in model.calls[1].text  # the repair round saw the error


def test_rubric_model_garbage_is_a_judge_failure_not_a_crash() -> None:
    verdict, _ = run_judge({"task": "Name a prime.", "answer": "7"}, "seven is prime!", "yes")
    assert verdict["passed"] is False and verdict["score"] == 0.0
    assert verdict["method"] == "rubric-error"
    assert verdict["critique"].startswith("The judge model failed to grade the answer")
    assert "the answer itself was not assessed" in verdict["critique"]


# --- no answer, scrubbing, graph run ------------------------------------------------------------


def test_no_answer_reports_the_execute_error_without_the_gold() -> None:
    verdict, model = run_judge(
        {
            "task": "x",
            "answer": "  ",
            "execute_error": "step budget exhausted",
            "ground_truth": "41",
        }
    )
    assert verdict == {
        "passed": False,
        "score": 0.0,
        "critique": "No answer was produced: step budget exhausted",
        "method": "no-answer",
    }
    assert model.calls == []
    leaky, _ = run_judge(
        {
            "task": "x",
            "answer": None,
            "execute_error": "model said 41 then crashed",
            "ground_truth": "41",
        }
    )
    assert leaky["method"] == "no-answer" and leaky["critique"] == NEUTRAL_FAILED_CRITIQUE


def test_scrub_falls_back_to_nothing_when_even_the_neutral_sentence_leaks() -> None:
    assert scrub("Spot on.", "Paris", passed=True) == "Spot on."
    assert scrub("It is Paris.", "Paris", passed=False) == NEUTRAL_FAILED_CRITIQUE
    assert scrub("The answer is not correct.", "correct", passed=False) == ""
    assert scrub("anything", None, passed=False) == "anything"


def test_in_a_graph_the_verdict_is_streamed_as_a_custom_event() -> None:
    model = ScriptedChatModel(
        script=[Equivalence(equivalent=False, reason="That was the Tower of London's rival.")]
    )
    resources = Resources(chat_models={"judge": model})
    builder = StateGraph(State, context_schema=Context)
    builder.add_node("judge", lambda state, runtime: judge(state, runtime, resources=resources))
    builder.add_edge(START, "judge")
    builder.add_edge("judge", END)
    graph = builder.compile()
    chunks = list(
        graph.stream(
            {"task": TASK, "answer": "Hampton Court", "ground_truth": GOLD},
            context=Context(),
            stream_mode=["custom", "values"],
        )
    )
    custom = [c for mode, c in chunks if mode == "custom"]
    assert custom == [
        {
            "node": "judge",
            "event": "verdict",
            "verdict": {
                "passed": False,
                "score": 0.0,
                "critique": NEUTRAL_FAILED_CRITIQUE,
                "method": "llm-equivalence",
            },
            "redacted": True,
        }
    ]
    final = next(c for mode, c in reversed(chunks) if mode == "values")
    assert final["verdict"]["critique"] == NEUTRAL_FAILED_CRITIQUE


def test_model_text_is_unescaped_and_flattened() -> None:
    verdict, _ = run_judge(
        {"task": "Name a prime.", "answer": "9"},
        RubricGrade(passed=False, score=0.1, critique="9 isn&#39;t prime:\n  3 &times; 3."),
    )
    assert verdict["critique"] == "9 isn't prime: 3 × 3."
