"""Refuse a bad run before any model call: its context and input checked against their schemas.

One validator for every way in — `build_graph()` from Python, the `memento` CLI and the
LangGraph server (Studio, the SDK) — so a typo costs an error naming the field, what is allowed
and the fix, never a whole attempt that ends in a KeyError or an empty task.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import HumanMessage, convert_to_messages
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from memento_skills.graph.context import Context
from memento_skills.graph.state import InputState


class RunRefused(ValueError):
    """A run's context or input is wrong; the message names the field, what is allowed and the fix."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field  # the context or input field at fault (an unknown key: that key)


CONTEXT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Context))
INPUT_FIELDS: tuple[str, ...] = tuple(InputState.__annotations__)
_TEXT_INPUTS = ("task", "task_id", "ground_truth", "rubric")


@functools.cache
def _context_adapter() -> TypeAdapter[Context]:
    return TypeAdapter(Context)


def _unknown_key(kind: str, key: object, valid: Sequence[str], fix: str) -> RunRefused:
    close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return RunRefused(
        f"unknown {kind} key {key!r}: {hint}valid keys are {', '.join(valid)}; {fix}",
        field=str(key),
    )


def _default(name: str) -> str:
    """How the fix names a field's default: its value, or 'its default' when the environment sets it."""
    spec = next(f for f in dataclasses.fields(Context) if f.name == name)
    if spec.default is not dataclasses.MISSING:
        return f"the default {spec.default!r}"
    return "its default"


def _explain(error: ErrorDetails) -> str:
    """One pydantic error on a Context field as a sentence: field, value, what is allowed, fix."""
    name = str(error["loc"][0]) if error["loc"] else "context"
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "literal_error":
        allowed, fix = f"allowed values are {ctx.get('expected')}", f"set {name} to one of them"
    elif kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        least = "at least" if kind == "greater_than_equal" else "above"
        allowed, fix = f"it must be {least} {bound}", f"raise {name}"
    else:  # a wrong type: pydantic's message says which one the schema wants
        allowed, fix = error["msg"][0].lower() + error["msg"][1:], f"correct {name}"
    return (
        f"context field {name!r} is {error['input']!r}: {allowed}; "
        f"{fix} or leave it out for {_default(name)}"
    )


def check_context(context: Context | Mapping[str, Any] | None) -> Context | None:
    """The run's Context, validated: unknown keys, wrong types, values out of range are refused.

    A mapping (the server's JSON, `invoke(context={...})`) becomes a Context; a Context is
    re-checked, since a dataclass accepts any value its caller hands it.
    """
    if context is None:
        return None
    if isinstance(context, Context):
        values: dict[str, Any] = {n: getattr(context, n) for n in CONTEXT_FIELDS}
    elif isinstance(context, Mapping):
        values = dict(context)
        for key in values:
            if key not in CONTEXT_FIELDS:
                raise _unknown_key("context", key, CONTEXT_FIELDS, "rename it or leave it out")
    else:
        raise RunRefused(
            f"context must be a Context or a mapping of its fields, not {type(context).__name__}"
        )
    try:
        checked = _context_adapter().validate_python(values)
    except ValidationError as e:
        first = e.errors()[0]
        at = str(first["loc"][0]) if first["loc"] else None
        raise RunRefused(_explain(first), field=at) from None
    return checked


def check_input(value: Any, *, extra_keys: bool = False) -> None:
    """Refuse an input the graph cannot run: unknown keys, non-text fields, no task at all.

    A task comes as `task` (text) or, in Studio's chat mode, as a human message in `messages`.
    extra_keys: keys of no memento field are let through (a parent graph hands a subgraph node
    its whole state).
    """
    if not isinstance(value, Mapping):
        raise RunRefused(
            f'input must be an object such as {{"task": "..."}}, not {type(value).__name__}'
        )
    fix = 'put the task under "task" (or a human message under "messages")'
    for key in value:
        if key not in INPUT_FIELDS and not extra_keys:
            raise _unknown_key("input", key, INPUT_FIELDS, f"rename it or leave it out; {fix}")
    for key in _TEXT_INPUTS:
        field = value.get(key)
        if field is not None and not isinstance(field, str):
            raise RunRefused(
                f"input field {key!r} is {field!r}: it must be text (or null); pass a string",
                field=key,
            )
    messages = value.get("messages")
    if messages is not None:
        try:
            parsed = convert_to_messages(messages if isinstance(messages, list) else [messages])
        except (ValueError, TypeError, NotImplementedError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RunRefused(
                f"input field 'messages' holds something that is not a message ({reason}); "
                'pass a list such as [{"role": "user", "content": "..."}]',
                field="messages",
            ) from None
    else:
        parsed = []
    has_message = any(isinstance(m, HumanMessage) and str(m.content).strip() for m in parsed)
    if not str(value.get("task") or "").strip() and not has_message:
        raise RunRefused(
            "input has no task: 'task' is missing or empty and 'messages' holds no human "
            f"message; {fix}",
            field="task",
        )
