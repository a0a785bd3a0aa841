"""The graph state: the stateful prompt.

Everything the model is conditioned on for one task lives here — the task, the selected skill, the
tips carried across attempts, the trajectory so far — so that LangGraph Studio shows exactly what the
agent saw, and a checkpoint can resume it. `ground_truth` is an input that only the judge node reads;
nothing derived from it is written back except the verdict and a critique checked not to contain it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph.message import add_messages
from pydantic import ConfigDict, with_config
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


class Attachment(TypedDict):
    """A file the task was given: its path inside the task's attachments folder (`name`, where
    the attempt's workspace gets its copy) and where the file is (`path`)."""

    name: str
    path: str


def attachment_paths(attachments: list[Attachment] | None) -> dict[str, Path]:
    """The attachments as the case store takes them: name → file."""
    return {a["name"]: Path(a["path"]) for a in attachments or []}


AnswerFormat = Literal["number"]
"""The kind of value an answer held without being bare (the judge's hint to the writer)."""


class Verdict(TypedDict):
    passed: bool
    score: float
    critique: str
    method: str  # "exact", "llm-equivalence", "rubric", "rubric-error", "no-answer"
    format: NotRequired[AnswerFormat]  # the answer held the value's kind but was not bare


ExecuteErrorKind = Literal["budget", "endpoint", "model", "empty_answer"]
"""Why an attempt ended without an answer: a step, token or wall-time budget ran out; the model
endpoint failed (unreachable, refused, rate-limited, unknown model: the outcome says nothing
about the agent); the model call failed otherwise; or the model replied with nothing."""

ENDPOINT_FAILURES = re.compile(
    r"\b(?:OpenAI|API)?(?:Connection|Authentication|PermissionDenied|RateLimit)Error\b|"
    r"\b(?:OpenAIModel)?NotFoundError\b|\bLocalLLMError\b"
)
"""openai client errors left after its own retries (by their own names and by langchain-openai's
`OpenAI…Error` names), and the local server failing to serve. Not timeouts or HTTP 500s: a local
llama.cpp server answers a malformed request with a 500 and times out on a runaway generation,
both about one request; a server that went away shows as a connection error on the next task."""


def model_failure_kind(description: str) -> ExecuteErrorKind:
    """The kind of a failed model call, from its `Type: message` description."""
    return "endpoint" if ENDPOINT_FAILURES.search(description) else "model"


class Proposal(TypedDict):
    """A change the write phase proposes to the library: shown in Studio while it awaits
    approval, then written and gated."""

    action: Literal["refine", "create"]
    skill: str
    base_version: int | None
    skill_md: str
    diff: str
    reason: str
    files: NotRequired[dict[str, str]]
    """Files written with the SKILL.md: skill-relative path -> text ({"scripts/x.py": "..."})."""


class Procedure(TypedDict):
    """A way of solving the task that the judge passed at learning time."""

    found_by: str
    """"sample-<i>" | "forced-<tool>" | "program-<try>" (try 1 = the writer's first program)."""
    script: str
    """Python source of a parameterised script: it takes the task's values as command-line
    arguments and prints the answer; "" when the winner was an executor trajectory with no
    usable program."""
    args: list[str]
    """This task's values, as the script's arguments."""
    output: str
    """What the winning run answered (the candidate's own answer, never the gold)."""
    steps: list[ToolStep]
    """The winning executor trajectory ([] for a writer program)."""


SearchStop = Literal[
    "found",
    "budget-tries",
    "budget-tokens",
    "budget-seconds",
    "budget-repairs",
    "exhausted",
    "no-ground-truth",
    "off",
]
"""Why a search ended: a candidate passed; a budget ran out (tries, tokens, seconds, the repairs
of the writer's program); every candidate was tried; or it did not run (no ground truth or
rubric to judge by; search_tries is 0)."""


class SearchReport(TypedDict):
    """What the search tried and what it cost (per task, in the run log and the learn report)."""

    tries: int  # candidates judged
    tokens: int  # tokens the search spent (executor, writer and judge calls)
    seconds: float
    found_by: str | None  # the winner's found_by, None when nothing passed
    outcomes: list[str]  # one line per try, e.g. "sample-1: fail", "program-2: pass"
    stopped: SearchStop
    last_program: NotRequired[ProgramTried]  # the writer's last program run, to read a failure


class ProgramTried(TypedDict):
    """One of the writer's programs as the sandbox ran it: what it was given and printed."""

    label: str  # "program-2"
    script: str  # cut at PROGRAM_KEPT characters
    args: list[str]
    answer: str  # its last printed line, what the judge was shown
    passed: bool
    output: str  # its stdout and stderr, as the writer saw it on a repair


class ExecuteOverride(TypedDict, total=False):
    """How the search runs the executor differently from the attempt it failed: a sampling
    temperature for every model call, and tools its first steps must call (they take the place
    of the skill's first_tools)."""

    temperature: float
    first_tools: list[str]


class LibraryWrite(TypedDict):
    """A change the write phase made (or proposed and rolled back) to the library."""

    action: Literal["utility", "lifecycle", "refine", "create", "rollback", "rejected", "none"]
    skill: str | None
    version: int | None
    accepted: bool
    reason: str


# The docstring under a field of InputState or OutputState is its description in the served
# schema (Studio's input form), read by pydantic.
@with_config(ConfigDict(use_attribute_docstrings=True))
class InputState(TypedDict):
    """What a caller passes in: a task (or a chat message in Studio) and, for evals, the gold."""

    task: NotRequired[str | None]
    """The task, in words (or send a chat message instead)."""
    task_id: NotRequired[str | None]
    """Your id for the task: it names the task in the run log and in skill provenance."""
    ground_truth: NotRequired[str | None]
    """The known answer, if there is one: only the judge reads it."""
    rubric: NotRequired[str | None]
    """How to judge a free-form answer when there is no known answer."""
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    """Chat messages (Studio's chat mode): with no task, the last human message is the task."""


class AttemptState(InputState):
    """One attempt's view: everything but the lists that accumulate across attempts."""

    candidates: NotRequired[list[Candidate]]
    selected_skill: NotRequired[str | None]
    selected_version: NotRequired[int | None]
    route_reason: NotRequired[str]
    attachments: NotRequired[list[Attachment]]
    """The task's files, found once per task (`begin`); a replay gets its case's own."""
    trajectory: NotRequired[list[ToolStep]]
    answer: NotRequired[str | None]
    execute_error: NotRequired[str | None]
    execute_error_kind: NotRequired[ExecuteErrorKind | None]
    verdict: NotRequired[Verdict | None]
    proposal: NotRequired[Proposal | None]  # reflect_write's pending change, shown in Studio
    decision: NotRequired[str]  # the reviewer's answer to an approval interrupt
    attempt: NotRequired[int]
    usage: NotRequired[dict[str, Any]]
    run_id: NotRequired[str | None]  # this task's run on the thread: keys its side effects
    procedure: NotRequired[Procedure | None]  # what the learning-time search found (or None)
    search: NotRequired[SearchReport | None]  # the task's search, once it ran (or None)


class State(AttemptState):
    tips: NotRequired[Annotated[list[str], operator.add]]
    writes: NotRequired[Annotated[list[LibraryWrite], operator.add]]
    execute_override: NotRequired[ExecuteOverride | None]
    """Internal: the search's replay runs the executor with it; never an input."""


class ReflectOutput(TypedDict):
    """What the write phase hands back: this attempt's tips and library writes, and the task's
    search with what it found."""

    tips: NotRequired[Annotated[list[str], operator.add]]
    writes: NotRequired[Annotated[list[LibraryWrite], operator.add]]
    procedure: NotRequired[Procedure | None]
    search: NotRequired[SearchReport | None]


@with_config(ConfigDict(use_attribute_docstrings=True))
class OutputState(TypedDict):
    """What a run hands back: the answer, how it was judged, and what the library learned."""

    answer: NotRequired[str | None]
    """The final answer of the last attempt (null: none was given)."""
    verdict: NotRequired[Verdict | None]
    """The judge's verdict on that answer: passed, score, critique and method."""
    selected_skill: NotRequired[str | None]
    """The skill the last attempt used (null: none fitted)."""
    writes: NotRequired[list[LibraryWrite]]
    """The changes this task made to the skill library, or proposed and rolled back."""
    search: NotRequired[SearchReport | None]
    """The learning-time search on a failed task with a known answer: what it tried and cost."""
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    """The chat, with the answer appended (Studio's chat mode)."""


def task_text(state: Mapping[str, Any]) -> str:
    """The task: the explicit `task` field, else the last human message (Studio's chat mode)."""
    task = state.get("task")
    if task:
        return str(task)
    for message in reversed(state.get("messages") or []):
        if isinstance(message, HumanMessage):
            return str(message.content)
    return ""
