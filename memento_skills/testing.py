"""A scripted chat model for unit tests: deterministic, zero latency, records every prompt.

It goes through the same LangChain machinery as a real model (callbacks, bind_tools,
with_structured_output and its parsers), so node code and `structured()` run their real code
paths; only the model's choice of words is scripted. Each call consumes the next script item:

- an `AIMessage` — returned as is (put `tool_calls` on it to script a tool call);
- a `str` — a plain text reply;
- a pydantic object or a `dict` — when tools are bound (bind_tools / with_structured_output),
  a call of the forced (or first) tool with these arguments, shaped like a function-calling
  reply; otherwise its JSON as text. A dict may be deliberately invalid for the schema;
- a callable `(messages) -> AIMessage | str | BaseModel | dict` — for replies that depend on
  the prompt.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

ScriptItem = AIMessage | str | BaseModel | dict | Callable[[list[BaseMessage]], Any]


class ScriptExhaustedError(AssertionError):
    """The code under test made more model calls than the test scripted."""


class ScriptedCall(BaseModel):
    """One call the model received: the prompt and the request options (tools, tool_choice...)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    messages: list[BaseMessage]
    kwargs: dict[str, Any]

    @property
    def text(self) -> str:
        """The whole prompt as one string, for snapshot tests and leak checks."""
        return "\n".join(f"{m.type}: {m.text}" for m in self.messages)


def _count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())


class ScriptedChatModel(BaseChatModel):
    """Replays `script` one item per call; `.calls` holds every prompt it was sent."""

    script: list[Any] = Field(default_factory=list)
    calls: list[ScriptedCall] = Field(default_factory=list)
    bound_tools: list[dict[str, Any]] = Field(default_factory=list)
    """The tools (OpenAI format) of the most recent bind_tools call."""
    model_name: str = "scripted"
    temperature: float | None = None
    """Recorded in each call's kwargs when set, as a copy made to sample would send it."""
    _position: list[int] = PrivateAttr(default_factory=lambda: [0])
    """The next script item; a list so that a copy (model_copy) replays the same script."""
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    @property
    def remaining(self) -> int:
        return len(self.script) - self._position[0]

    def _next_item(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            options = dict(kwargs)
            if self.temperature is not None:
                options.setdefault("temperature", self.temperature)
            self.calls.append(ScriptedCall(messages=list(messages), kwargs=options))
            if self._position[0] >= len(self.script):
                last = messages[-1].text[:200] if messages else ""
                raise ScriptExhaustedError(
                    f"ScriptedChatModel: call {len(self.calls)} but the script has only "
                    f"{len(self.script)} item(s); add a reply to the test's script. "
                    f"Last message of this prompt: {last!r}"
                )
            item = self.script[self._position[0]]
            self._position[0] += 1
        return item(list(messages)) if callable(item) and not isinstance(item, type) else item

    def _to_message(self, item: Any, kwargs: dict[str, Any]) -> AIMessage:
        if isinstance(item, AIMessage):
            return item
        if isinstance(item, str):
            return AIMessage(content=item)
        if isinstance(item, BaseModel | dict):
            args = item.model_dump(mode="json") if isinstance(item, BaseModel) else item
            name = _forced_tool(kwargs)
            if name is None:
                return AIMessage(content=json.dumps(args, ensure_ascii=False))
            call_id = f"call_{len(self.calls)}"
            return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])
        raise TypeError(
            f"ScriptedChatModel: unsupported script item {item!r}; use an AIMessage, a str, "
            "a pydantic object, a dict or a callable returning one of these"
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._to_message(self._next_item(messages, kwargs), kwargs)
        if message.usage_metadata is None:
            tokens_in = sum(_count_tokens(m.text) for m in messages)
            reply = message.text + "".join(json.dumps(c["args"]) for c in message.tool_calls)
            tokens_out = _count_tokens(reply)
            message = message.model_copy(
                update={
                    "usage_metadata": {
                        "input_tokens": tokens_in,
                        "output_tokens": tokens_out,
                        "total_tokens": tokens_in + tokens_out,
                    }
                }
            )
        message.response_metadata.setdefault("model_name", self.model_name)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | dict | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        self.bound_tools = formatted
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: str = "function_calling",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Function calling via LangChain's default; JSON mode parses the reply's text."""
        if method != "json_mode":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        llm = self.bind(response_format={"type": "json_object"})
        parser: Runnable = (
            PydanticOutputParser(pydantic_object=schema)
            if isinstance(schema, type) and issubclass(schema, BaseModel)
            else JsonOutputParser()
        )
        if not include_raw:
            return llm | parser
        parse = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        ).with_fallbacks(
            [RunnablePassthrough.assign(parsed=lambda _: None)], exception_key="parsing_error"
        )
        return RunnableMap(raw=llm) | parse


def _forced_tool(kwargs: dict[str, Any]) -> str | None:
    """The tool a scripted object is a call of: the forced one, else the first bound one."""
    tools = kwargs.get("tools") or []
    if not tools:
        return None
    choice = kwargs.get("tool_choice")
    if isinstance(choice, dict):
        return choice.get("function", {}).get("name") or choice.get("name")
    if isinstance(choice, str) and choice not in {"any", "auto", "required", "none"}:
        return choice
    return tools[0]["function"]["name"]
