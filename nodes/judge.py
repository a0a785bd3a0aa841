"""judge: turn the answer into a verdict, a score and a critique the next attempt can use.

With a ground truth the deterministic GAIA-style scorer decides, so verdicts are reproducible and
comparable with published numbers; the judge model is consulted only for free-form text golds,
where exact matching misses paraphrases. Without a ground truth a model grades against a rubric.

The gold must not flow onward: reflect_write and the next attempt read the critique, so rule-made
critiques describe the mistake (format, scale, rounding, list length) without quoting the gold,
the model's reasons are checked for it, and every critique is checked once more before it leaves.
A judge model that fails is reported as the judge's failure, never as a crash of the graph.
"""

from __future__ import annotations

import html
import math

from langchain_core.messages import HumanMessage
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.models import structured
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import State, Verdict
from memento_skills.nodes.scoring import (
    classify,
    contains_gold,
    exact_match,
    list_item_matches,
    parse_number,
    split_list,
)

MAX_PROMPT_FIELD_CHARS = 6_000
MAX_QUOTED_ANSWER_CHARS = 80
SHORT_GOLD_WORDS = 3
"""Golds of fewer words than this are one name or value: an answer must state it to pass."""

JUDGE_EQUIVALENCE_PROMPT = """You decide whether an agent's answer to a task means the same as \
the reference answer.

<task>
{task}
</task>

<reference_answer>
{gold}
</reference_answer>

<agent_answer>
{answer}
</agent_answer>

The answers are equivalent when a careful grader would accept the agent's answer in place of the \
reference: the same entity, value or meaning, whatever the wording, case, articles or abbreviations. \
They are not equivalent when the agent's answer names something else, is vaguer or only partly \
right, hedges between options, or adds a claim that contradicts the reference.

Reply with `equivalent` (true or false) and `reason`: one sentence that would help someone retry \
the task. The reference answer is secret: never quote, paraphrase or hint at it in the reason."""

JUDGE_RUBRIC_PROMPT = """You grade an agent's answer to a task against a rubric. There is no \
reference answer: judge from the task, the rubric and what you know.

<task>
{task}
</task>

<rubric>
{rubric}
</rubric>

<agent_answer>
{answer}
</agent_answer>

Reply with `passed` (true only if the answer meets every point of the rubric), `score` (a number \
from 0.0 to 1.0: how well it meets the rubric) and `critique` (one to three sentences: what is wrong \
or missing and how to fix it on a retry; if it passed, what made it good)."""

DEFAULT_RUBRIC = """- Answers the task fully: every part of the question is addressed.
- Correct: no factual, logical or arithmetic errors.
- Formatted as the task asks (units, list separators, precision, length).
- Commits to one answer: no hedging between options, no refusal."""

PASSED_CRITIQUE = "The answer matches the expected answer."
NEUTRAL_FAILED_CRITIQUE = (
    "The answer is not correct. Re-check the reasoning and give only the requested value, "
    "in the format the task asks for."
)
NEUTRAL_PASSED_CRITIQUE = "The answer was judged correct."


class Equivalence(BaseModel):
    """Whether the agent's answer means the same as the reference answer."""

    equivalent: bool = Field(description="True if the answer would be accepted as the reference.")
    reason: str = Field(
        description="One sentence that helps a retry; never quotes the reference answer."
    )


class RubricGrade(BaseModel):
    """A grade of the agent's answer against the rubric."""

    passed: bool = Field(description="True only if the answer meets every point of the rubric.")
    score: float = Field(ge=0.0, le=1.0, description="How well the rubric is met, 0.0 to 1.0.")
    critique: str = Field(description="What is wrong or missing and how to fix it on a retry.")


def _verdict(passed: bool, score: float, critique: str, method: str) -> Verdict:
    return {"passed": passed, "score": score, "critique": critique, "method": method}


def task_text(state: State) -> str:
    """The task as the executor saw it: the `task` field, else the last human chat message."""
    task = state.get("task")
    if task:
        return task
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def _clip(text: str, limit: int = MAX_PROMPT_FIELD_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " […truncated]"


def _quote(answer: str) -> str:
    one_line = " ".join(answer.split())
    if len(one_line) > MAX_QUOTED_ANSWER_CHARS:
        one_line = one_line[: MAX_QUOTED_ANSWER_CHARS - 1] + "…"
    return f'"{one_line}"'


def _decimals(number: str) -> int:
    cleaned = number.replace("$", "").replace("%", "").replace(",", "").strip()
    mantissa = cleaned.lower().split("e")[0]
    return len(mantissa.split(".")[1]) if "." in mantissa else 0


def _number_hint(answer: str, value: float, gold: str, gold_value: float) -> str:
    """Why a well-formed number is wrong, when the cause is recognisable without the gold."""
    if value != 0 and gold_value != 0:
        ratio = abs(gold_value / value)
        for power in (2, 3, 6, 9):
            if math.isclose(ratio, 10**power) or math.isclose(ratio, 10**-power):
                return "; check the unit or scale the task asks for (e.g. thousands, millions, percent versus fraction)"
    answer_places, gold_places = _decimals(answer), _decimals(gold)
    if answer_places > gold_places and round(value, gold_places) == gold_value:
        return "; check the rounding or precision the task asks for"
    if answer_places < gold_places and round(gold_value, answer_places) == value:
        return "; check the rounding or precision the task asks for"
    return ""


def explain_mismatch(answer: str, gold: str) -> str:
    """A deterministic critique of an answer that failed exact matching; never quotes the gold.

    The answer is quoted so the retry sees what was rejected, unless it contains the gold (e.g.
    "41 km" for 41): then the critique names the problem without the quote.
    """
    shown = "" if contains_gold(answer, gold, partial=True) else " " + _quote(answer)
    kind = classify(gold)
    if kind == "number":
        value = parse_number(answer)
        if value is None:
            if any(c.isdigit() for c in answer):
                return (
                    f"The answer{shown} is not a bare number: give only the number, without "
                    "units, words or explanation."
                )
            return f"The answer{shown} is not a number, but the task expects a number."
        gold_value = parse_number(gold)
        assert gold_value is not None  # classify() said number
        return f"The answer{shown} is not correct{_number_hint(answer, value, gold, gold_value)}."
    if kind == "list":
        count = len(split_list(answer))
        if count == 1:
            return (
                f"The answer{shown} is a single item, but the task expects a list of several "
                "items separated by commas."
            )
        matches = list_item_matches(answer, gold)
        if matches is None:
            return f"The answer lists {count} items, which is not the expected number of items."
        wrong = [str(i + 1) for i, ok in enumerate(matches) if not ok]
        return (
            f"In the answer's list of {count} items, item(s) {', '.join(wrong)} are not correct; "
            "check both the values and the order the task asks for."
        )
    if parse_number(answer) is not None:
        if any(c.isdigit() for c in gold):
            return (
                f"The answer{shown} is not correct; check whether the task asks for units or "
                "other words with the number."
            )
        return f"The answer{shown} is a number, but the task expects a text answer."
    if _much_longer(answer, gold):
        return (
            f"The answer{shown} is longer than expected: give only the requested value, without "
            "explanation or extra words."
        )
    return f"The answer{shown} is not correct."


def _model_text(text: str) -> str:
    """One line of model prose; llama.cpp's template HTML-escapes prompts and models echo it."""
    return " ".join(html.unescape(text).split())


def _much_longer(answer: str, gold: str) -> bool:
    answer_words, gold_words = len(answer.split()), max(1, len(gold.split()))
    return answer_words >= gold_words + 3 and answer_words >= 2 * gold_words


def _needs_equivalence_check(answer: str, gold: str) -> bool:
    """Free-form text golds, where a paraphrase can be right; numbers, lists and formulas
    (a gold without a letter, such as `2 × 3 × 5`) are exact: a model judge equated a number with
    a factorization (docs/decisions.md#exact-formula-golds). A gold of one or two words goes to
    the model only inside a longer answer that states it: a small judge passed sentences that
    never named the word asked for (docs/decisions.md#short-golds-stated)."""
    if not any(c.isalpha() for c in gold) or classify(gold) != "string":
        return False
    if len(gold.split()) >= SHORT_GOLD_WORDS:
        return True
    return _much_longer(answer, gold) and contains_gold(answer, gold)


def scrub(critique: str, gold: str | None, passed: bool) -> str:
    """The critique, or a neutral sentence in its place if it would give away any part of gold."""
    if gold is None or not contains_gold(critique, gold, partial=True):
        return critique
    neutral = NEUTRAL_PASSED_CRITIQUE if passed else NEUTRAL_FAILED_CRITIQUE
    # A gold made of everyday words could be in the neutral sentence too; then say nothing.
    return "" if contains_gold(neutral, gold, partial=True) else neutral


def _judge_with_gold(
    state: State, answer: str, gold: str, runtime: Runtime[Context], resources: Resources
) -> Verdict:
    if exact_match(answer, gold):
        return _verdict(True, 1.0, PASSED_CRITIQUE, "exact")
    if not _needs_equivalence_check(answer, gold):
        verdict = _verdict(False, 0.0, explain_mismatch(answer, gold), "exact")
        buried = parse_number(answer) is None and any(c.isdigit() for c in answer)
        if classify(gold) == "number" and buried:
            # the kind of the gold, never its value: lets the write phase learn an answer contract
            verdict["format"] = "number"
        return verdict
    prompt = JUDGE_EQUIVALENCE_PROMPT.format(
        task=_clip(task_text(state)), gold=_clip(gold), answer=_clip(answer)
    )
    try:
        model = resources.model("judge", runtime.context or Context())
        decision = structured(model, Equivalence, [HumanMessage(content=prompt)])
    except GraphBubbleUp:
        raise
    except Exception as exc:
        # Not the exception's text: a StructuredOutputError quotes the model's reply, which may
        # contain the gold.
        note = (
            f" (The judge model's equivalence check failed with {type(exc).__name__}, so only "
            "exact matching was applied.)"
        )
        return _verdict(False, 0.0, explain_mismatch(answer, gold) + note, "exact")
    reason = _model_text(decision.reason) or (
        PASSED_CRITIQUE if decision.equivalent else NEUTRAL_FAILED_CRITIQUE
    )
    return _verdict(
        decision.equivalent, 1.0 if decision.equivalent else 0.0, reason, "llm-equivalence"
    )


RUBRIC_PASS_SCORE = 0.5


def _judge_with_rubric(
    state: State, answer: str, runtime: Runtime[Context], resources: Resources
) -> Verdict:
    rubric = (state.get("rubric") or "").strip() or DEFAULT_RUBRIC
    prompt = JUDGE_RUBRIC_PROMPT.format(
        task=_clip(task_text(state)), rubric=_clip(rubric), answer=_clip(answer)
    )
    try:
        model = resources.model("judge", runtime.context or Context())
        grade = structured(model, RubricGrade, [HumanMessage(content=prompt)])
    except GraphBubbleUp:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300]
        return _verdict(
            False,
            0.0,
            f"The judge model failed to grade the answer ({type(exc).__name__}: {detail}); "
            "the answer itself was not assessed.",
            "rubric-error",
        )
    critique = _model_text(grade.critique) or (
        "The answer meets the rubric." if grade.passed else "The answer does not meet the rubric."
    )
    # a grade that contradicts itself (passed, but a failing score) does not pass
    passed = grade.passed and grade.score >= RUBRIC_PASS_SCORE
    return _verdict(passed, grade.score, critique, "rubric")


def judge(state: State, runtime: Runtime[Context], *, resources: Resources) -> dict:
    """Judge the answer: exact scoring against a ground truth if there is one, else a rubric."""
    answer = (state.get("answer") or "").strip()
    raw_gold = state.get("ground_truth")
    gold = None if raw_gold is None else str(raw_gold)
    if not answer:
        error = _clip(" ".join((state.get("execute_error") or "").split()), 500)
        critique = f"No answer was produced: {error}" if error else "No answer was produced."
        verdict = _verdict(False, 0.0, critique, "no-answer")
    elif gold is not None:
        verdict = _judge_with_gold(state, answer, gold, runtime, resources)
    else:
        verdict = _judge_with_rubric(state, answer, runtime, resources)
    unscrubbed = verdict["critique"]
    verdict["critique"] = scrub(unscrubbed, gold, verdict["passed"])
    emit(
        "judge",
        {
            "event": "verdict",
            "verdict": dict(verdict),
            "redacted": verdict["critique"] != unscrubbed,
        },
    )
    return {"verdict": verdict}
