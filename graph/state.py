"""The graph state: the stateful prompt.

Everything the model is conditioned on for one task lives here — the task, the selected skill, the
tips carried across attempts, the trajectory so far — so that LangGraph Studio shows exactly what the
agent saw, and a checkpoint can resume it. `ground_truth` is an input that only the judge node reads;
nothing derived from it is written back except the verdict and a critique checked not to contain it.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class Candidate(TypedDict):
    """One skill the router considered, with the parts of its score."""

    name: str
    score: float
    dense: float | None
    lexical: float | None
    prior: float
    learned: NotRequired[float]  # what the learned router added to the untrained score


class ToolStep(TypedDict):
    """One tool call of the execute loop, its output truncated for the state."""

    tool: str
    args: dict[str, Any]
    output: str
    error: bool


class Verdict(TypedDict):
    passed: bool
    score: float
    critique: str
    method: str  # "exact", "llm-equivalence", "rubric", "rubric-error", "no-answer"
    format: NotRequired[str]  # "number": the answer held the value's kind but was not bare


class LibraryWrite(TypedDict):
    """A change the write phase made (or proposed and rolled back) to the library."""

    action: Literal["utility", "refine", "create", "rollback", "rejected", "none"]
    skill: str | None
    version: int | None
    accepted: bool
    reason: str


class InputState(TypedDict):
    """What a caller passes in: a task (or a chat message in Studio) and, for evals, the gold."""

    task: NotRequired[str | None]
    task_id: NotRequired[str | None]
    ground_truth: NotRequired[str | None]
    rubric: NotRequired[str | None]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]


class AttemptState(InputState):
    """One attempt's view: everything but the lists that accumulate across attempts."""

    candidates: NotRequired[list[Candidate]]
    selected_skill: NotRequired[str | None]
    selected_version: NotRequired[int | None]
    route_reason: NotRequired[str]
    trajectory: NotRequired[list[ToolStep]]
    answer: NotRequired[str | None]
    execute_error: NotRequired[str | None]
    verdict: NotRequired[Verdict | None]
    proposal: NotRequired[dict[str, Any] | None]  # reflect_write's pending change, shown in Studio
    decision: NotRequired[str]  # the reviewer's answer to an approval interrupt
    attempt: NotRequired[int]
    usage: NotRequired[dict[str, Any]]


class State(AttemptState):
    tips: NotRequired[Annotated[list[str], operator.add]]
    writes: NotRequired[Annotated[list[LibraryWrite], operator.add]]


class ReflectOutput(TypedDict):
    """What the write phase hands back: only this attempt's tips and library writes."""

    tips: NotRequired[Annotated[list[str], operator.add]]
    writes: NotRequired[Annotated[list[LibraryWrite], operator.add]]


class OutputState(TypedDict):
    answer: NotRequired[str | None]
    verdict: NotRequired[Verdict | None]
    selected_skill: NotRequired[str | None]
    writes: NotRequired[list[LibraryWrite]]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
