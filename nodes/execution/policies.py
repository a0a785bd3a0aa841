"""The execute loop's five policies, each a small object with the named hooks the loop calls.

The loop (nodes/execute.py) owns the conversation; a policy owns one concern and the state keys
it needs, which live in the execute subgraph's checkpointed state so a resumed attempt behaves
as the interrupted one would have. The hooks, in the order the loop calls them:

- `on_start(...)`: the policy's initial state keys for a new attempt.
- `before_model(state, ...)`: before each model call (may end the run, or bind the call);
  the budget's `last_call` binds the last call it has room for to an answer.
- `wrap_model_call(invoke, ...)`: around the model call itself.
- `after_model(state, reply)`: the state keys the reply changes.
- `wrap_tool_call(...)`: around each tool call (may answer it without running the tool).
- `on_finish(answer, ...)`: the final answer, before it leaves the loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import regex
from langchain_core.messages import AIMessage, BaseMessage

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.models import completion_limit
from memento_skills.graph.state import ToolStep
from memento_skills.nodes.execution.context_window import context_overflow, fit_to_context, shorten
from memento_skills.stores.skill import Skill

RESAMPLE_TEMPERATURE = 0.8
REPEAT_ECHO_CHARS = 400
"""How much of an earlier output a repeated call is shown again: it is in the context already."""
ANSWER_PATTERN_TIMEOUT_S = 0.25
"""The time a skill's answer pattern may take: a pattern from an untrusted pack can backtrack
catastrophically (`(\\d+)+x`), so it runs with a deadline and is ignored when it passes it."""

Repeat = Literal["submit", "resample"]
"""What the step after a repeated call must do: submit an answer (the call had succeeded, its
output is known) or sample afresh (it had failed, and at temperature 0 it would come again)."""


@dataclass
class ModelCall:
    """How the next model call is bound: the `before_model` hooks fill it in."""

    tool_choice: str | None = None
    temperature: float | None = None

    def options(self) -> dict[str, Any]:
        """The keyword arguments for `bind_tools`."""
        options: dict[str, Any] = {"tool_choice": self.tool_choice} if self.tool_choice else {}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        return options


class Budget:
    """The step, token and wall-time budgets: the run ends with a stated failure when one is
    spent, and the last call they leave room for must answer. Its state: `steps` (model calls
    made), `tokens` (their total), `call_tokens` (the last call's), `started` (epoch s)."""

    def on_start(self) -> dict[str, Any]:
        return {"steps": 0, "tokens": 0, "call_tokens": 0, "started": time.time()}

    def before_model(self, state: Mapping[str, Any], ctx: Context) -> str | None:
        """Why the run must end before another model call, or None while budget remains."""
        if int(state.get("steps") or 0) >= ctx.max_steps:
            return f"step budget exhausted ({ctx.max_steps} model calls) without an answer"
        if int(state.get("tokens") or 0) >= ctx.max_tokens:
            return f"token budget exhausted ({state.get('tokens')} of {ctx.max_tokens}) without an answer"
        if time.time() - float(state.get("started") or time.time()) >= ctx.max_wall_s:
            return f"wall-time budget exhausted ({ctx.max_wall_s:.0f}s) without an answer"
        return None

    def last_call(
        self, state: Mapping[str, Any], ctx: Context, call: ModelCall, offered: Collection[str]
    ) -> None:
        """The call the budget has room for last must answer: bound to `submit_answer`, so a
        run that looked around until its budget ran out still ends with its best answer (a
        stated failure with no answer gives the judge and the write phase nothing to work on;
        docs/decisions.md#last-call-answers). The room left is the step count, and the tokens:
        the next call is taken to cost at least the last one, since the conversation only grows.
        A one-call budget is left alone: it has no room to look first."""
        if ctx.max_steps < 2 or "submit_answer" not in offered:
            return
        steps = int(state.get("steps") or 0)
        last = steps + 1 >= ctx.max_steps
        spent = int(state.get("tokens") or 0)
        if steps and spent + int(state.get("call_tokens") or 0) >= ctx.max_tokens:
            last = True
        if last:
            call.tool_choice = "submit_answer"

    def after_model(self, state: Mapping[str, Any], reply: AIMessage) -> dict[str, Any]:
        used = int((reply.usage_metadata["total_tokens"] if reply.usage_metadata else 0) or 0)
        return {
            "steps": int(state.get("steps") or 0) + 1,
            "tokens": int(state.get("tokens") or 0) + used,
            "call_tokens": used,
        }


class ForcedFirstTools:
    """The skill's tool policy: step k must call `first_tools[k]` (when that tool is offered).
    The learning-time search overrides it for a replay (`execute_override`: its own first tools,
    a sampling temperature for every call).

    Policy binds, it does not suggest: a small model told in prose to compute never did
    (docs/decisions.md#forced-first-tool).
    """

    def before_model(
        self,
        state: Mapping[str, Any],
        call: ModelCall,
        skill: Skill | None,
        offered: Collection[str],
    ) -> None:
        step = int(state.get("steps") or 0)
        override: Mapping[str, Any] = state.get("execute_override") or {}
        first: Sequence[str] = override.get("first_tools") or (skill.first_tools if skill else ())
        if "temperature" in override:  # the search's resample (docs/decisions.md#learning-search)
            call.temperature = float(override["temperature"])
        if step >= len(first):
            return
        name: str = first[step]
        if name in offered:
            call.tool_choice = name


class RepeatGuard:
    """A repeated call is answered from the trajectory, not run again; the next step then submits
    (the call had succeeded) or samples afresh (it had failed). Its state: `after_repeat`.

    A model that repeats a call it already has the output of is stuck: its next step must submit
    an answer (docs/decisions.md#repeat-guard).
    """

    def on_start(self) -> dict[str, Any]:
        return {"after_repeat": None}

    def before_model(
        self, state: Mapping[str, Any], call: ModelCall, offered: Collection[str]
    ) -> None:
        after = state.get("after_repeat")
        if after == "submit" and "submit_answer" in offered:
            call.tool_choice = "submit_answer"  # it repeated a call it had seen the output of
        elif after == "resample":
            # it repeated a call that failed: the next step samples (docs/decisions.md#repeat-guard)
            call.temperature = RESAMPLE_TEMPERATURE

    def wrap_tool_call(
        self,
        steps: Sequence[ToolStep],
        name: str,
        args: Any,
        offered: Collection[str],
        run: Callable[[], tuple[str, bool]],
    ) -> tuple[str, bool, Repeat | None]:
        """The call's output and whether it failed, from `run` unless it is a repeat; and what
        the next step must do because of it (None: nothing)."""
        earlier = earlier_step(steps, name, args)
        if earlier is not None and earlier["error"]:
            return (
                "You already made this exact call and it failed:\n"
                f"{shorten(earlier['output'], REPEAT_ECHO_CHARS)}\n"
                "Running it again gives the same error: change the code or the arguments.",
                True,
                "resample",
            )
        if earlier is not None and "submit_answer" in offered:
            # the earlier output alone, as a rerun would give it: the next step must submit,
            # and a note here would be copied into the answer (docs/decisions.md#repeat-guard)
            return earlier["output"], False, "submit"
        output, error = run()
        return output, error, None


def earlier_step(steps: Sequence[ToolStep], name: str, args: Any) -> ToolStep | None:
    """The first earlier call with the same tool and arguments, if any: rerunning it would
    give the same output (the loop's tools are deterministic for a given workspace)."""
    if name == "submit_answer":
        return None
    key = jsonable_args(args)
    return next((s for s in steps if s["tool"] == name and s["args"] == key), None)


def jsonable_args(args: Any) -> dict[str, Any]:
    """A tool call's arguments as the trajectory keeps them (a JSON object)."""
    try:
        json.dumps(args)
        return dict(args) if isinstance(args, dict) else {"value": args}
    except (TypeError, ValueError):
        return {"value": repr(args)}


class ContextRefit:
    """When the endpoint refuses the conversation as longer than its context window, tool outputs
    are cut to fit (see context_window.py) and the request is made once more with a smaller
    completion."""

    def wrap_model_call(
        self, model: Any, chat_model: Any, messages: list[BaseMessage]
    ) -> tuple[BaseMessage, list[BaseMessage]]:
        """The model's reply, and the messages shortened to get it (none when it fitted)."""
        try:
            return model.invoke(messages), []
        except Exception as e:
            overflow = context_overflow(e)
            shorter = fit_to_context(messages, overflow) if overflow else None
            if overflow is None or shorter is None:
                raise
        emit("execute", {"event": "condensed", "limit": overflow.limit})
        if overflow.completion_budget:
            model = model.bind(**completion_limit(chat_model, overflow.completion_budget))
        fitted = [m for m, old in zip(shorter, messages, strict=True) if m is not old]
        return model.invoke(shorter), fitted


class AnswerContract:
    """The skill's answer contract: the answer is the last match of its `answer_pattern`."""

    def on_finish(self, answer: str | None, skill: Skill | None) -> str | None:
        if answer and skill is not None and skill.answer_pattern:
            return apply_answer_contract(answer, skill.answer_pattern)
        return answer


def apply_answer_contract(answer: str, pattern: str) -> str:
    """The skill's answer contract: the last match of its pattern (first group if it has one)."""
    try:
        matches = list(regex.finditer(pattern, answer[:4000], timeout=ANSWER_PATTERN_TIMEOUT_S))
    except (TimeoutError, regex.error):
        return answer  # the answer as given, rather than a hang on a hostile pattern
    if not matches:
        return answer
    last = matches[-1]
    value = last.group(1) if last.re.groups and last.group(1) is not None else last.group(0)
    return value.strip() or answer
