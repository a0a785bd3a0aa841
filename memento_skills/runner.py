"""Run one task through the graph and turn its stream into progress lines and a result.

Shared by `memento run` and the evals, so both see the same events: the chosen skill and why,
tool calls, the verdict, library changes — and both resume approval interrupts the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.graph.models import UsageTracker
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import ExecuteErrorKind, SearchReport


@dataclass
class TaskResult:
    answer: str | None
    verdict: dict[str, Any] | None
    skill: str | None
    attempts: int
    writes: list[dict[str, Any]]
    seconds: float
    usage: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_kind: ExecuteErrorKind | None = None
    """Why the last attempt ended without an answer (graph/state.py ExecuteErrorKind)."""
    search: SearchReport | None = None
    """The learning-time search on the task, when it ran (graph/state.py SearchReport)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "verdict": self.verdict,
            "skill": self.skill,
            "attempts": self.attempts,
            "writes": self.writes,
            "seconds": round(self.seconds, 3),
            "usage": self.usage,
            "error": self.error,
            "search": self.search,
        }


def describe(event: dict[str, Any]) -> str | None:
    """One human line for a custom progress event, or None for events not worth a line."""
    node, kind = event.get("node"), event.get("event")
    if node == "route_skill":
        cands = ", ".join(f"{n} {s:.2f}" for n, s in event.get("candidates", [])[:3])
        skill = event.get("skill")
        head = f"skill: {skill} v{event.get('version')}" if skill else "skill: none"
        return f"{head} — {event.get('reason')} [{cands}]"
    if node == "execute":
        if kind == "tool_calls":
            return "  tool call: " + ", ".join(event.get("calls", []))
        if kind == "tool_result":
            flag = " (error)" if event.get("error") else ""
            out = str(event.get("output", "")).replace("\n", " ")[:100]
            return f"  {event.get('tool')}{flag} → {out}"
        if kind == "mcp_unavailable":
            return f"  MCP server {event.get('server')} unavailable: {event.get('reason')}"
        if kind == "finish" and event.get("error"):
            return f"  execution failed: {event.get('error')}"
        return None
    if node == "judge" and kind == "verdict":
        v = event.get("verdict", {})
        return f"verdict: {'PASS' if v.get('passed') else 'FAIL'} ({v.get('method')}) {v.get('critique', '')}".rstrip()
    if node == "reflect_write":
        if kind == "attribution":
            return f"reflect: cause {event.get('cause')}, action {event.get('action')}; tip: {event.get('tip')}"
        if kind == "proposal":
            return f"proposed {event.get('action')} of skill {event.get('skill')}"
        if kind == "gate":
            return f"  gate: replaying cases for {event.get('skill')} v{event.get('version')}"
        if kind == "accepted":
            return f"library: {event.get('skill')} v{event.get('version')} is live ({event.get('gate')})"
        if kind == "rolled_back":
            return f"library: {event.get('skill')} v{event.get('version')} rolled back ({event.get('gate')})"
        if kind == "search_try":
            if event.get("error"):
                return f"  search: {event.get('candidate')} unusable ({event.get('error')})"
            verdict = "pass" if event.get("passed") else "fail"
            return f"  search try {event.get('try')}: {event.get('candidate')} {verdict} ({event.get('tokens')} tokens so far)"
        if kind in ("search_found", "search_exhausted"):
            head = (
                f"search: found by {event.get('found_by')}"
                if kind == "search_found"
                else f"search: nothing passed ({event.get('stopped')})"
            )
            return f"{head} — {event.get('tries')} tries, {event.get('tokens')} tokens, {float(event.get('seconds') or 0):.1f}s"
    return None


class UnfinishedTask(ValueError):
    """The thread holds an unfinished task other than the one given."""

    def __init__(self, thread_id: str, task: str):
        super().__init__(
            f"thread {thread_id!r} has an unfinished task ({task[:80]!r}): resume it with "
            f"`memento run --thread {thread_id}` (no TASK), or start this task on another thread"
        )


class NoTaskToResume(ValueError):
    """A resume was asked for on a thread with nothing unfinished."""

    def __init__(self, thread_id: str):
        super().__init__(
            f"thread {thread_id!r} has no unfinished task to resume: give a TASK to start one"
        )


Approver = Callable[[dict[str, Any]], Any]
"""Given an interrupt payload (the proposed diff), returns the resume value."""


def run_task(
    task: str | None,
    *,
    context: Context | None = None,
    ground_truth: str | None = None,
    task_id: str | None = None,
    resources: Resources | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    approver: Approver | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    thread_id: str | None = None,
) -> TaskResult:
    """Run one task to the end, resuming approval interrupts through `approver`.

    On a `thread_id` whose task is unfinished in `checkpointer` (a run that was killed), the
    task resumes from its last checkpoint and `task` must be None or that task; otherwise
    `task` starts on the thread. Raises UnfinishedTask when a different task is given.
    """
    ctx = context or Context()
    saver = checkpointer if checkpointer is not None else InMemorySaver()
    graph = build_graph(checkpointer=saver, resources=resources or Resources())
    usage = UsageTracker()
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id or task_id or uuid.uuid4().hex},
        "callbacks": [usage],
    }
    payload: Any = {"task": task, "task_id": task_id or "", "ground_truth": ground_truth}
    pending = graph.get_state(config) if thread_id else None
    if pending is not None and pending.next:
        unfinished = str(pending.values.get("task") or "")
        if task is not None and unfinished and task != unfinished:
            raise UnfinishedTask(thread_id or "", unfinished)
        if task is None or unfinished:
            payload = None  # resume from the last checkpoint
        # else it was killed before its input reached the state: `task` starts over on the thread
    elif task is None:
        raise NoTaskToResume(thread_id or "")
    started = time.time()
    while True:
        interrupted: Any = None
        for _ns, mode, chunk in graph.stream(
            payload, config=config, context=ctx, stream_mode=["custom", "updates"], subgraphs=True
        ):
            if mode == "custom" and on_event is not None and isinstance(chunk, dict):
                on_event(chunk)
            elif mode == "updates" and isinstance(chunk, dict) and "__interrupt__" in chunk:
                interrupted = chunk["__interrupt__"][0].value
        if interrupted is None:
            break
        decision = approver(interrupted) if approver is not None else "reject"
        payload = Command(resume=decision)
    state = graph.get_state(config).values
    return TaskResult(
        answer=state.get("answer"),
        verdict=state.get("verdict"),
        skill=state.get("selected_skill"),
        attempts=int(state.get("attempt") or 0),
        writes=list(state.get("writes") or []),
        seconds=time.time() - started,
        usage=usage.summary(),
        error=state.get("execute_error"),
        error_kind=state.get("execute_error_kind"),
        search=state.get("search"),
    )
