"""Requests adapted to llama-cpp-python's server, whose chat template has quirks of its own."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.ai import add_usage
from langchain_core.outputs import ChatResult
from langchain_openai import ChatOpenAI


def completion_limit(model: Any, tokens: int) -> dict[str, Any]:
    """Invoke options that cap one request's completion at `tokens`, in the field the model
    already sends its cap in (llama.cpp reads `max_tokens` from the body, OpenAI wants
    `max_completion_tokens`)."""
    extra = getattr(model, "extra_body", None)
    if isinstance(extra, dict) and "max_tokens" in extra:
        return {"extra_body": {**extra, "max_tokens": tokens}}
    if isinstance(model, ChatOpenAI):
        return {"max_completion_tokens": tokens}
    return {"max_tokens": tokens}


def _unescape(value: Any) -> Any:
    """HTML entities undone in every string of a parsed JSON value."""
    if isinstance(value, str):
        return html.unescape(value) if "&" in value else value
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def adapt_messages_for_local(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Rewrite a conversation for llama-cpp-python's chatml-function-calling template.

    That template has no slot for tool results (the model would never see them), so each
    ToolMessage becomes a user message naming the tool. An assistant tool-call message with
    empty content goes out with `content: null`, which the server's request validation rejects
    (HTTP 500), so such messages get a short description of the call. Not fixable from here:
    the template HTML-escapes the prompt (`<b>` reaches the model as `&lt;b&gt;`).
    """
    names: dict[str, str] = {}
    adapted: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call.get("id"):
                    names[str(call["id"])] = call["name"]
            if (message.tool_calls or message.invalid_tool_calls) and not message.text.strip():
                # an unparseable call is sent back too (as raw text), so it needs content as well
                calls = "; ".join(
                    [
                        *(
                            f"{c['name']}({json.dumps(c['args'], ensure_ascii=False)})"
                            for c in message.tool_calls
                        ),
                        *(
                            f"{c.get('name') or 'tool'}({str(c.get('args') or '')[:200]})"
                            for c in message.invalid_tool_calls
                        ),
                    ]
                )
                message = message.model_copy(update={"content": f"Calling tool(s): {calls}"})
            if message.invalid_tool_calls:
                # its raw arguments (often a reply cut at max_tokens) would go out in full as a
                # tool call the server cannot parse either; the content above describes it
                message = message.model_copy(update={"invalid_tool_calls": []})
            adapted.append(message)
        elif isinstance(message, ToolMessage):
            name = message.name or names.get(message.tool_call_id, "tool")
            status = " (error)" if message.status == "error" else ""
            adapted.append(
                HumanMessage(content=f"Result of tool `{name}`{status}:\n{message.text}")
            )
        else:
            adapted.append(message)
    return adapted


def adapt_payload_for_local(payload: dict[str, Any]) -> dict[str, Any]:
    """Fix the request fields llama-cpp-python's chatml-function-calling handler chokes on.

    It ignores the tools unless tool_choice is given (OpenAI defaults to "auto"), so "auto" is
    set; its template lists the tools only inside the system message, so a system message is
    added when there is none; it accepts tool_choice "auto", "none" or a named function only
    ("required" or "any" crash it with HTTP 500), so those force the tool when there is exactly
    one, else fall back to "auto".
    """
    tools = payload.get("tools") or []
    messages = payload.get("messages") or []
    if not tools:
        return payload
    if payload.get("tool_choice") is None:
        payload["tool_choice"] = "auto"
    if messages and messages[0].get("role") != "system":
        payload["messages"] = [{"role": "system", "content": ""}, *messages]
    if payload.get("tool_choice") in ("required", "any"):
        payload["tool_choice"] = (
            {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
            if len(tools) == 1
            else "auto"
        )
    return payload


_TOOL_KWARGS = ("tools", "tool_choice", "parallel_tool_calls")


_NAMED_CALL = re.compile(r"^\s*functions\.([\w-]+):?\s*$")


def _follow_up_kwargs(result: ChatResult, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The second request a tool-"auto" reply from llama-cpp-python needs, or None.

    Two server quirks (see LlamaCppChatOpenAI): a text reply comes back empty, so ask again
    without tools; and a chosen tool comes back as the text `functions.NAME:` with no call
    (the handler's stop string is swallowed into the tool name), so ask again with that tool
    named, which makes the server generate its arguments under the tool's schema.
    """
    if not kwargs.get("tools") or kwargs.get("tool_choice") not in (None, "auto"):
        return None
    message = result.generations[0].message if result.generations else None
    if not isinstance(message, AIMessage) or message.tool_calls or message.invalid_tool_calls:
        return None
    text = message.text.strip()
    if not text:
        return {k: v for k, v in kwargs.items() if k not in _TOOL_KWARGS}
    named = _NAMED_CALL.match(text)
    bound = {_tool_name(t) for t in kwargs["tools"]}
    if named and named.group(1) in bound:
        choice = {"type": "function", "function": {"name": named.group(1)}}
        return {**kwargs, "tool_choice": choice}
    return None


def _tool_name(tool: Any) -> str | None:
    """The name of a tool as bind_tools passes it (an OpenAI tool dict)."""
    if isinstance(tool, Mapping):
        function = tool.get("function")
        if isinstance(function, Mapping):
            return cast("str | None", function.get("name"))
        return cast("str | None", tool.get("name"))
    return None


def _merge_usage(first: ChatResult, second: ChatResult) -> ChatResult:
    """The second result, carrying the tokens of both requests (both were generated)."""
    a = first.generations[0].message
    b = second.generations[0].message
    if isinstance(a, AIMessage) and isinstance(b, AIMessage) and a.usage_metadata:
        usage = add_usage(a.usage_metadata, b.usage_metadata)
        second.generations[0].message = b.model_copy(update={"usage_metadata": usage})
    return second


class LlamaCppChatOpenAI(ChatOpenAI):
    """ChatOpenAI for a llama-cpp-python server: adapts each request to its quirks.

    Requests are adapted at payload time so bind_tools, with_structured_output and streaming
    keep working and node code never needs to know which server it talks to. Two quirks need a
    second request with tools and tool_choice "auto": when the model picks a text reply the
    server's grammar allows only a tool name or end-of-turn, so the text is always empty (asked
    again without tools); when it picks a tool, llama-cpp-python 0.3.36 returns the text
    `functions.NAME:` and no call (asked again with that tool named). Streaming is turned off
    when tools are bound so that this path is always taken (docs/decisions.md#local-server-quirks).
    """

    disable_streaming: bool | Literal["tool_calling"] = "tool_calling"

    def _get_request_payload(
        self,
        input_: LanguageModelInput,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> dict:
        messages = adapt_messages_for_local(self._convert_input(input_).to_messages())
        return adapt_payload_for_local(super()._get_request_payload(messages, stop=stop, **kwargs))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        follow_up = _follow_up_kwargs(result, kwargs)
        if follow_up is None:
            return result
        retry = super()._generate(messages, stop=stop, run_manager=run_manager, **follow_up)
        return _merge_usage(result, retry)

    def _create_chat_result(self, response: Any, generation_info: dict | None = None) -> ChatResult:
        """The server HTML-escapes the prompt, so the model writes `&#39;` where it means `'`,
        in its text and inside tool-call arguments alike (`print(bin(n).count(&#39;1&#39;))` is
        a SyntaxError). Unescape both so answers and code come back as the model meant them;
        arguments are unescaped after JSON parsing, where an unescaped quote cannot break it."""
        result = super()._create_chat_result(response, generation_info)
        for gen in result.generations:
            message = gen.message
            if isinstance(message.content, str) and "&" in message.content:
                message.content = html.unescape(message.content)
            if isinstance(message, AIMessage):
                for call in message.tool_calls:
                    call["args"] = _unescape(call["args"])
                for bad in message.invalid_tool_calls:
                    if bad.get("args"):
                        bad["args"] = html.unescape(str(bad["args"]))
        return result

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        follow_up = _follow_up_kwargs(result, kwargs)
        if follow_up is None:
            return result
        retry = await super()._agenerate(messages, stop=stop, run_manager=run_manager, **follow_up)
        return _merge_usage(result, retry)
