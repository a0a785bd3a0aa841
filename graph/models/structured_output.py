"""structured(): a schema object from a chat model, tolerant of small models, with one repair round."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import openai
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig
from langchain_core.utils.json import parse_json_markdown
from pydantic import BaseModel, ValidationError

from memento_skills.graph.models.settings import (
    METHOD_KEY,
    STRUCTURED_METHODS,
    ModelConfigError,
    StructuredMethod,
)

M = TypeVar("M", bound=BaseModel)


class StructuredOutputError(ValueError):
    """The model did not produce a valid object, even after being shown its error once."""

    def __init__(self, schema: type[BaseModel], outputs: list[str], errors: list[str]):
        self.schema = schema
        self.outputs = outputs
        self.errors = errors
        super().__init__(str(self))

    def __str__(self) -> str:
        last = self.outputs[-1] if self.outputs else ""
        return (
            f"the model did not return a valid {self.schema.__name__} in {len(self.errors)} "
            f"attempt(s) (one repair round). Last problem: {self.errors[-1] if self.errors else '?'}."
            f" Last reply: {last[:300]!r}. Fix: use a stronger model (MEMENTO_<ROLE>_MODEL or "
            "MEMENTO_MODEL), or MEMENTO_STRUCTURED_METHOD=json_mode if the server's tool calling "
            "is weak."
        )


REPAIR_PROMPT = """Your previous reply was not a valid `{name}` object: {error}
Reply again with only the corrected JSON object (no prose, no code fence) matching this JSON schema:
{schema}"""

JSON_MODE_PROMPT = """Reply with only a JSON object (no prose, no code fence) matching this JSON \
schema:
{schema}"""

_WRAPPER_KEYS = ("arguments", "parameters", "args", "input", "properties")
_MAX_REPLY_CHARS = 4000


def _json_objects(text: str) -> list[dict[str, Any]]:
    """JSON objects found in free text: whole text, a fenced block, or embedded in prose."""
    found: list[dict[str, Any]] = []
    try:
        whole = parse_json_markdown(text)
        if isinstance(whole, dict):
            found.append(whole)
    except (ValueError, TypeError):
        pass
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(obj, dict) and obj not in found:
            found.append(obj)
        start = text.find("{", end)
    return found


def _candidates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The object, and the object inside the wrappers small models put around their arguments."""
    out = [obj]
    for key in _WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, str):
            out += _json_objects(inner)
        elif isinstance(inner, dict):
            out.append(inner)
    if len(obj) == 1:
        (inner,) = obj.values()
        if isinstance(inner, dict):
            out.append(inner)
    return out


def _format_validation_error(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '(object)'}: {err['msg']}"
        for err in exc.errors()[:8]
    ]
    return "; ".join(parts)


def _reply_text(raw: Any) -> str:
    """What the model said, as text, for the repair prompt and the error message."""
    if not isinstance(raw, AIMessage):
        return str(raw)[:_MAX_REPLY_CHARS]
    if raw.tool_calls:
        args = [c["args"] for c in raw.tool_calls]
        text = json.dumps(args[0] if len(args) == 1 else args, ensure_ascii=False, default=str)
    elif raw.invalid_tool_calls:
        text = " ".join(str(c.get("args") or "") for c in raw.invalid_tool_calls)
    else:
        text = raw.text
    return text[:_MAX_REPLY_CHARS]


def _cut_off_text(exc: Exception) -> str:
    completion: Any = getattr(exc, "completion", None)
    try:
        return str(completion.choices[0].message.content or "")[:_MAX_REPLY_CHARS]
    except (AttributeError, IndexError):
        return ""


def _accept(result: Mapping[str, Any], schema: type[M]) -> tuple[M | None, str]:
    parsed = result.get("parsed")
    if isinstance(parsed, schema):
        return parsed, ""
    raw = result.get("raw")
    objects: list[dict[str, Any]] = []
    if isinstance(raw, AIMessage):
        objects += [c["args"] for c in raw.tool_calls if isinstance(c.get("args"), dict)]
        objects += [o for c in raw.invalid_tool_calls for o in _json_objects(c.get("args") or "")]
        objects += _json_objects(raw.text)
    first_error = ""
    for obj in objects:
        for candidate in _candidates(obj):
            try:
                return schema.model_validate(candidate), ""
            except ValidationError as exc:
                first_error = first_error or _format_validation_error(exc)
    if first_error:
        return None, first_error
    if result.get("parsing_error") is not None:
        return None, f"unparseable output ({result['parsing_error']})"
    return None, "the reply contained no JSON object (no tool call and no JSON in the text)"


def structured(
    model: BaseChatModel,
    schema: type[M],
    messages: LanguageModelInput,
    *,
    method: StructuredMethod | None = None,
    config: RunnableConfig | None = None,
) -> M:
    """Ask for a `schema` object; tolerate JSON in plain text; one repair round, then a clear error.

    Uses function calling (or JSON mode) rather than json_schema because llama.cpp and many other
    servers reject `response_format: json_schema`. Endpoint errors (HTTP, timeouts after the
    client's retries) propagate unchanged: they are not the model's malformed output.
    """
    chosen = method or (model.metadata or {}).get(METHOD_KEY) or "function_calling"
    if chosen not in STRUCTURED_METHODS:
        raise ModelConfigError(
            f"structured output method {chosen!r} is not supported; use one of "
            f"{', '.join(STRUCTURED_METHODS)}"
        )
    runnable = model.with_structured_output(schema, method=chosen, include_raw=True)
    json_schema = json.dumps(schema.model_json_schema(), ensure_ascii=False)
    if isinstance(messages, str):
        prompt: list[BaseMessage] = [HumanMessage(content=messages)]
    elif isinstance(messages, PromptValue):
        prompt = messages.to_messages()
    else:
        prompt = convert_to_messages(messages)
    if chosen == "json_mode":
        prompt.append(HumanMessage(content=JSON_MODE_PROMPT.format(schema=json_schema)))
    outputs: list[str] = []
    errors: list[str] = []
    for _ in range(2):
        try:
            result = runnable.invoke(prompt, config=config)
        except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
            # Raised by the client's own parsing of a cut-off reply (JSON mode): malformed
            # output, not an endpoint failure, so it gets the repair round too.
            reply = _cut_off_text(exc)
            error = (
                "the reply hit the max_tokens limit before the JSON object ended; keep it short"
                if isinstance(exc, openai.LengthFinishReasonError)
                else "the reply was stopped by a content filter"
            )
        else:
            assert isinstance(result, Mapping)
            obj, error = _accept(result, schema)
            if obj is not None:
                return obj
            reply = _reply_text(result.get("raw"))
        outputs.append(reply)
        errors.append(error)
        # The bad reply goes back as plain text: an assistant tool call without a tool result
        # after it is rejected by OpenAI.
        prompt = [
            *prompt,
            AIMessage(content=reply or "(empty reply)"),
            HumanMessage(
                content=REPAIR_PROMPT.format(name=schema.__name__, error=error, schema=json_schema)
            ),
        ]
    raise StructuredOutputError(schema, outputs, errors)
