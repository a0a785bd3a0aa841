"""Humanity's Last Exam grading, the way HLE's published grader does it.

HLE does not string-match: a judge model reads the question, the response and the correct
answer, extracts the response's final answer (or "None"), reasons only about whether it matches,
and returns `correct: yes|no`, accepting a small margin of error for numbers. The same approach
here, through the graph's judge model with structured output, so any endpoint that serves the
graph can grade it. HLE also asks for a confidence to measure calibration; the agent submits a
bare answer, so calibration is not reported.
"""

from __future__ import annotations

from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, Field

from memento_skills.graph.models import UsageTracker, structured
from memento_skills.nodes.scoring import Score

HLE_JUDGE_PROMPT = """Decide whether the response below answers the question correctly, judged \
only against the precise, unambiguous correct answer given.

<question>
{question}
</question>

<response>
{response}
</response>

<correct_answer>
{correct_answer}
</correct_answer>

Fill in:
- extracted_final_answer: the final, exact answer the response commits to, copied from it; \
"None" if it gives no final answer.
- reasoning: whether extracted_final_answer matches correct_answer, looking only for meaningful \
differences between the two. Do not solve the question yourself, do not comment on its \
background, and do not argue for any answer other than correct_answer.
- correct: "yes" if extracted_final_answer matches correct_answer, or is within a small margin \
of error for a numerical question; "no" otherwise — any inconsistency, ambiguity, \
non-equivalence, or a wrong or missing answer."""


class HleJudgement(BaseModel):
    """The judge's reading of one response."""

    extracted_final_answer: str = Field(
        description="The response's final answer, verbatim; 'None' if it gives none."
    )
    reasoning: str = Field(description="Only whether the extracted answer matches the correct one.")
    correct: Literal["yes", "no"] = Field(description="yes if it matches, else no.")


def judge_answer(model: BaseChatModel, question: str, response: str, correct_answer: str) -> Score:
    """Grade one response; a judge model that fails gives an incorrect score marked as such."""
    tracker = UsageTracker()
    prompt = HLE_JUDGE_PROMPT.format(
        question=question, response=response, correct_answer=correct_answer
    )
    try:
        verdict = structured(
            model,
            HleJudgement,
            [HumanMessage(content=prompt)],
            config={"callbacks": [tracker]},
        )
    except Exception as e:
        return Score(False, 0.0, f"hle-judge-error: {type(e).__name__}", usage=tracker.summary())
    extracted = verdict.extracted_final_answer.strip()
    ok = verdict.correct == "yes" and extracted.lower() != "none"
    return Score(ok, float(ok), "hle-judge", extracted=extracted, usage=tracker.summary())
