"""Model layer: settings precedence, structured output repair, usage and cost, retries, quirks.

HTTP behaviour is checked against a real OpenAI-compatible server on 127.0.0.1 (the scripted
endpoint of tests/support, replies queued per test), so the real ChatOpenAI and openai client
code paths run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr

from memento_skills.graph.models import (
    DEFAULT_OPENAI_MODEL,
    EndpointUnreachableError,
    LlamaCppChatOpenAI,
    ModelConfigError,
    ModelSettings,
    StructuredOutputError,
    UsageTracker,
    adapt_messages_for_local,
    chat_model,
    load_prices,
    resolve_settings,
    served_model,
    structured,
)
from memento_skills.testing import ScriptedChatModel

from support.scripted_endpoint import HTTPReply as Reply
from support.scripted_endpoint import ScriptedEndpoint, completion

ENV_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "MEMENTO_BASE_URL",
    "MEMENTO_MODEL",
    "MEMENTO_ROUTER_MODEL",
    "MEMENTO_EXECUTOR_MODEL",
    "MEMENTO_JUDGE_MODEL",
    "MEMENTO_WRITER_MODEL",
    "MEMENTO_GGUF",
    "MEMENTO_PRICES",
    "MEMENTO_LOCAL",
    "MEMENTO_STRUCTURED_METHOD",
    "MEMENTO_TEMPERATURE",
    "MEMENTO_TIMEOUT_S",
    "MEMENTO_MAX_RETRIES",
    "MEMENTO_MAX_TOKENS",
    "MEMENTO_EXECUTOR_MAX_TOKENS",
    "MEMENTO_WRITER_TIMEOUT_S",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


class Verdict(BaseModel):
    correct: bool
    reason: str


# --- a scripted OpenAI-compatible server on loopback -----------------------------------------


class FakeOpenAIServer(ScriptedEndpoint):
    """Answers chat completions from a queue of replies (then "hello"); records every request."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        super().__init__(self._next_reply, models=("served-model",))

    def _next_reply(self, request: dict[str, Any]) -> Reply:
        return self.replies.pop(0) if self.replies else Reply()

    def settings(self, **overrides: Any) -> ModelSettings:
        return resolve_settings(
            "executor", base_url=self.base_url, model="served-model", **overrides
        )


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


# --- settings ---------------------------------------------------------------------------------


def test_nothing_configured_means_the_offline_default() -> None:
    s = resolve_settings("executor")
    assert s.local and s.offline_default and not s.is_openai
    assert s.base_url is None and s.api_key is None and s.model is None
    assert s.max_retries == 0  # a retried timeout queues behind the abandoned generation


def test_api_key_alone_means_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    s = resolve_settings("judge")
    assert s.is_openai and not s.local and s.base_url is None
    assert s.model == DEFAULT_OPENAI_MODEL
    assert isinstance(s.api_key, SecretStr) and s.api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(s)
    assert s.max_retries == 3


def test_gguf_beats_an_api_key_and_a_base_url_beats_the_gguf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MEMENTO_GGUF", "/models/x.gguf")
    s = resolve_settings("executor")
    assert s.offline_default and s.gguf_path == "/models/x.gguf"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    s = resolve_settings("executor")
    assert not s.local and s.base_url == "http://127.0.0.1:9/v1" and not s.is_openai


def test_base_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://openai-env/v1")
    assert resolve_settings("router").base_url == "http://openai-env/v1"
    monkeypatch.setenv("MEMENTO_BASE_URL", "http://memento-env/v1")
    assert resolve_settings("router").base_url == "http://memento-env/v1"
    assert resolve_settings("router", base_url="http://ctx/v1").base_url == "http://ctx/v1"
    assert resolve_settings("router", base_url=None).base_url == "http://memento-env/v1"


def test_model_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MEMENTO_MODEL", "all-roles")
    monkeypatch.setenv("MEMENTO_JUDGE_MODEL", "judge-only")
    assert resolve_settings("executor").model == "all-roles"
    assert resolve_settings("judge").model == "judge-only"
    assert resolve_settings("judge", model="from-context").model == "from-context"
    assert resolve_settings("judge", model=None).model == "judge-only"


def test_context_and_settings_read_the_model_variables_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run's Context and resolve_settings take a model variable the same way (one reader):
    a blank or padded value reads the same in both, so the model a run asks for is the same."""
    from memento_skills.graph.context import Context

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MEMENTO_EXECUTOR_MODEL", "  padded-model  ")
    monkeypatch.setenv("MEMENTO_JUDGE_MODEL", "   ")
    monkeypatch.setenv("MEMENTO_BASE_URL", " ")
    monkeypatch.setenv("OPENAI_BASE_URL", " http://openai-env/v1 ")
    ctx = Context()
    assert ctx.executor_model == resolve_settings("executor").model == "padded-model"
    assert ctx.judge_model == "" and ctx.router_model == ""
    assert ctx.base_url == resolve_settings("judge").base_url == "http://openai-env/v1"
    settings = resolve_settings("executor", model=ctx.executor_model, base_url=ctx.base_url)
    assert settings == resolve_settings("executor")


def test_numbers_and_method_from_env_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMENTO_MAX_TOKENS", "256")
    monkeypatch.setenv("MEMENTO_TIMEOUT_S", "9.5")
    monkeypatch.setenv("MEMENTO_STRUCTURED_METHOD", "json_mode")
    s = resolve_settings("writer", temperature=0.7, max_retries=5)
    assert (s.max_tokens, s.timeout_s, s.temperature, s.max_retries) == (256, 9.5, 0.7, 5)
    assert s.structured_method == "json_mode"
    assert resolve_settings("writer", max_tokens=64).max_tokens == 64
    # per role beats every role; an override beats both
    monkeypatch.setenv("MEMENTO_EXECUTOR_MAX_TOKENS", "384")
    monkeypatch.setenv("MEMENTO_WRITER_TIMEOUT_S", "300")
    assert resolve_settings("executor").max_tokens == 384
    assert resolve_settings("writer").max_tokens == 256
    assert resolve_settings("writer").timeout_s == 300.0
    assert resolve_settings("executor").timeout_s == 9.5
    assert resolve_settings("executor", max_tokens=64).max_tokens == 64


def test_local_flag_marks_a_configured_llama_cpp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:18080/v1")
    monkeypatch.setenv("MEMENTO_LOCAL", "1")
    s = resolve_settings("executor")
    assert s.local and not s.offline_default and s.base_url == "http://127.0.0.1:18080/v1"


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        ({}, {"role": "x"}, "unknown model setting"),
        ({"MEMENTO_MAX_TOKENS": "lots"}, {}, "MEMENTO_MAX_TOKENS='lots' is not a valid int"),
        ({"MEMENTO_STRUCTURED_METHOD": "json_schema"}, {}, "use one of function_calling"),
        ({"MEMENTO_PRICES": "/nonexistent/prices.json"}, {}, "does not exist"),
    ],
)
def test_bad_settings_say_what_to_fix(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], overrides: dict[str, Any], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ModelConfigError, match=message):
        resolve_settings("executor", **overrides)


def test_unknown_role() -> None:
    with pytest.raises(ModelConfigError, match="use one of router, executor, judge, writer"):
        resolve_settings("planner")


def test_prices_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"a": [0.15, 0.6], "b": {"input": 1, "output": 2}}))
    monkeypatch.setenv("MEMENTO_PRICES", str(prices))
    assert resolve_settings("judge").prices == {"a": (0.15, 0.6), "b": (1.0, 2.0)}
    assert resolve_settings("judge", prices={"c": [3, 4]}).prices == {"c": (3.0, 4.0)}
    prices.write_text(json.dumps({"a": [0.15]}))
    with pytest.raises(ModelConfigError, match="bad entry for 'a'"):
        load_prices(prices)
    prices.write_text("{not json")
    with pytest.raises(ModelConfigError, match="not readable JSON"):
        load_prices(prices)


# --- chat_model against a real HTTP server ----------------------------------------------------


def test_non_openai_endpoint_gets_max_tokens_in_the_body(server: FakeOpenAIServer) -> None:
    model = chat_model("executor", server.settings(max_tokens=77))
    assert type(model) is ChatOpenAI
    assert model.invoke("hi").content == "hello"
    body = server.received[0].body
    assert body["max_tokens"] == 77 and "max_completion_tokens" not in body
    assert body["model"] == "served-model" and body["temperature"] == 0.0
    assert server.received[0].headers["authorization"].startswith("Bearer ")


def test_openai_gets_max_completion_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = chat_model("judge", resolve_settings("judge", max_tokens=55))
    assert isinstance(model, ChatOpenAI)
    payload = model._get_request_payload([HumanMessage("hi")])
    assert payload["max_completion_tokens"] == 55 and "max_tokens" not in payload
    assert model.stream_usage is True and model.max_retries == 3


def test_model_name_is_asked_from_the_endpoint(server: FakeOpenAIServer) -> None:
    server.models = ["only-model"]
    model = chat_model("executor", resolve_settings("executor", base_url=server.base_url))
    assert isinstance(model, ChatOpenAI) and model.model_name == "only-model"
    assert served_model(server.base_url) == "only-model"
    server.models = []
    with pytest.raises(ModelConfigError, match="set MEMENTO_MODEL"):
        served_model(server.base_url, timeout_s=1)
    # nothing listening is an unreachable endpoint, not a missing model name
    with pytest.raises(EndpointUnreachableError, match=r"cannot reach .*127\.0\.0\.1:9/v1"):
        served_model("http://127.0.0.1:9/v1", timeout_s=1)


def test_server_error_is_retried_then_succeeds(server: FakeOpenAIServer) -> None:
    server.replies = [Reply(500, {"error": {"message": "boom"}}), Reply()]
    model = chat_model("executor", server.settings(max_retries=2))
    assert model.invoke("hi").content == "hello"
    assert len(server.received) == 2
    assert server.received[1].headers.get("x-stainless-retry-count") == "1"


def test_rate_limit_is_retried(server: FakeOpenAIServer) -> None:
    server.replies = [Reply(429, {"error": {"message": "slow down"}}), Reply()]
    assert chat_model("executor", server.settings(max_retries=1)).invoke("hi").content == "hello"
    assert len(server.received) == 2


def test_no_retries_left_raises_the_server_error(server: FakeOpenAIServer) -> None:
    server.replies = [Reply(500, {"error": {"message": "boom"}})]
    with pytest.raises(openai.InternalServerError):
        chat_model("executor", server.settings(max_retries=0)).invoke("hi")
    assert len(server.received) == 1


def test_client_errors_are_not_retried(server: FakeOpenAIServer) -> None:
    server.replies = [Reply(400, {"error": {"message": "bad request"}})]
    with pytest.raises(openai.BadRequestError):
        chat_model("executor", server.settings(max_retries=3)).invoke("hi")
    assert len(server.received) == 1


def test_timeout_is_retried_then_succeeds(server: FakeOpenAIServer) -> None:
    server.replies = [Reply(delay_s=1.5), Reply()]
    model = chat_model("executor", server.settings(timeout_s=0.5, max_retries=1))
    assert model.invoke("hi").content == "hello"
    assert len(server.received) == 2


def test_timeout_without_retries_raises(server: FakeOpenAIServer) -> None:
    server.replies = [Reply(delay_s=1.5)]
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat_model("executor", server.settings(timeout_s=0.5, max_retries=0)).invoke("hi")
    assert time.monotonic() - started < 1.4


# --- llama.cpp quirks -------------------------------------------------------------------------


def test_adapt_messages_for_local() -> None:
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}
    adapted = adapt_messages_for_local(
        [
            HumanMessage("add 2 and 3"),
            AIMessage(content="", tool_calls=[call]),
            ToolMessage("5", tool_call_id="c1"),
            ToolMessage("no such file", tool_call_id="c2", name="read", status="error"),
        ]
    )
    assert [m.type for m in adapted] == ["human", "ai", "human", "human"]
    assert adapted[1].text == 'Calling tool(s): add({"a": 2, "b": 3})'
    assert isinstance(adapted[1], AIMessage) and adapted[1].tool_calls[0]["id"] == "c1"
    assert adapted[2].text == "Result of tool `add`:\n5"
    assert adapted[3].text == "Result of tool `read` (error):\nno such file"


def test_an_unparseable_call_is_sent_back_with_content(server: FakeOpenAIServer) -> None:
    # llama-cpp-python rejects (HTTP 500) an assistant message with tool calls and null content;
    # langchain sends an invalid tool call back as a tool call too.
    bad = {"name": "python", "args": '{"code": "print(1', "id": "c9", "error": "bad JSON"}
    history = [
        HumanMessage("x"),
        AIMessage(content="", invalid_tool_calls=[bad]),
        HumanMessage("y"),
    ]
    adapted = adapt_messages_for_local(history)
    assert adapted[1].text == 'Calling tool(s): python({"code": "print(1)'
    chat_model("executor", server.settings(local=True)).invoke(history)
    sent = server.received[0].body["messages"]
    assert all(m.get("content") for m in sent)


def test_local_endpoint_requests_are_adapted(server: FakeOpenAIServer) -> None:
    model = chat_model("executor", server.settings(local=True))
    assert isinstance(model, LlamaCppChatOpenAI)

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}
    history = [
        HumanMessage("add 2 and 3"),
        AIMessage(content="", tool_calls=[call]),
        ToolMessage("5", tool_call_id="c1"),
    ]
    model.bind_tools([add], tool_choice="required").invoke(history)
    body = server.received[0].body
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][2]["content"]  # never empty next to tool calls
    assert body["messages"][3]["content"] == "Result of tool `add`:\n5"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert body["max_tokens"] == 1024

    # With several tools "required" cannot be expressed: it falls back to "auto".
    def sub(a: int, b: int) -> int:
        """Subtract two integers."""
        return a - b

    model.bind_tools([add, sub], tool_choice="required").invoke([SystemMessage("s"), *history])
    body = server.received[1].body
    assert body["tool_choice"] == "auto" and body["messages"][0] == {
        "role": "system",
        "content": "s",
    }

    # Without a tool_choice the server would ignore the tools: OpenAI's default is made explicit.
    model.bind_tools([add]).invoke("add 2 and 3")
    assert server.received[2].body["tool_choice"] == "auto"
    model.invoke("no tools")
    assert "tool_choice" not in server.received[3].body
    assert [m["role"] for m in server.received[3].body["messages"]] == ["user"]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_local_empty_text_reply_with_tools_is_asked_again_without_tools(
    server: FakeOpenAIServer, use_async: bool
) -> None:
    # llama-cpp-python's "auto" grammar lets a text reply hold only a tool name or end-of-turn.
    server.replies = [
        Reply(body=completion("", usage=(200, 9))),
        Reply(body=completion("The sum is 5.", usage=(30, 6))),
    ]

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    tracker = UsageTracker()
    bound = chat_model("executor", server.settings(local=True)).bind_tools([add])
    config: Any = {"callbacks": [tracker]}
    reply = (
        asyncio.run(bound.ainvoke("add 2 and 3", config=config))
        if use_async
        else bound.invoke("add 2 and 3", config=config)
    )
    assert reply.content == "The sum is 5."
    first, second = (r.body for r in server.received)
    assert first["tool_choice"] == "auto" and "tools" in first
    assert "tools" not in second and "tool_choice" not in second
    assert second["messages"][-1] == {"role": "user", "content": "add 2 and 3"}
    executor = tracker.summary()["roles"]["executor"]
    assert (executor["calls"], executor["input_tokens"], executor["output_tokens"]) == (1, 230, 15)


def tool_call_completion(name: str, arguments: str, usage: tuple[int, int]) -> dict[str, Any]:
    body = completion(None, usage=usage, finish_reason="tool_calls")
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
    ]
    return body


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_local_tool_named_in_text_is_asked_again_with_that_tool(
    server: FakeOpenAIServer, use_async: bool
) -> None:
    # llama-cpp-python 0.3.36 answers a tool chosen under "auto" with the text "functions.NAME:".
    server.replies = [
        Reply(body=completion("functions.add:", usage=(200, 4))),
        Reply(body=tool_call_completion("add", '{"a": 2, "b": 3}', (210, 12))),
    ]

    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def sub(a: int, b: int) -> int:
        """Subtract two integers."""
        return a - b

    tracker = UsageTracker()
    bound = chat_model("executor", server.settings(local=True)).bind_tools([add, sub])
    config: Any = {"callbacks": [tracker]}
    reply = (
        asyncio.run(bound.ainvoke("add 2 and 3", config=config))
        if use_async
        else bound.invoke("add 2 and 3", config=config)
    )
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("add", {"a": 2, "b": 3})]
    first, second = (r.body for r in server.received)
    assert first["tool_choice"] == "auto"
    assert second["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert len(second["tools"]) == 2 and second["messages"] == first["messages"]
    executor = tracker.summary()["roles"]["executor"]
    assert (executor["calls"], executor["input_tokens"], executor["output_tokens"]) == (1, 410, 16)


def test_text_naming_an_unbound_tool_or_saying_more_is_kept(server: FakeOpenAIServer) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    server.replies = [
        Reply(body=completion("functions.shell:")),
        Reply(body=completion("functions.add: then I add")),
    ]
    bound = chat_model("executor", server.settings(local=True)).bind_tools([add])
    assert bound.invoke("x").content == "functions.shell:"
    assert bound.invoke("x").content == "functions.add: then I add"
    assert len(server.received) == 2


def test_empty_replies_are_not_retried_when_a_tool_is_forced_or_not_local(
    server: FakeOpenAIServer,
) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    server.replies = [Reply(body=completion("")), Reply(body=completion(""))]
    local = chat_model("executor", server.settings(local=True))
    assert local.bind_tools([add], tool_choice="add").invoke("x").content == ""
    assert chat_model("executor", server.settings()).bind_tools([add]).invoke("x").content == ""
    assert len(server.received) == 2


def test_other_endpoints_get_messages_unchanged(server: FakeOpenAIServer) -> None:
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}
    history = [
        HumanMessage("add 2 and 3"),
        AIMessage(content="", tool_calls=[call]),
        ToolMessage("5", tool_call_id="c1"),
    ]
    chat_model("executor", server.settings()).invoke(history)
    roles = [m["role"] for m in server.received[0].body["messages"]]
    assert roles == ["user", "assistant", "tool"]


# --- structured output ------------------------------------------------------------------------


def test_structured_accepts_a_good_tool_call() -> None:
    model = ScriptedChatModel(script=[Verdict(correct=True, reason="4")])
    assert structured(model, Verdict, "Is 2+2=4?") == Verdict(correct=True, reason="4")
    assert len(model.calls) == 1
    assert model.calls[0].kwargs["tools"][0]["function"]["name"] == "Verdict"


def test_structured_repairs_malformed_output_once() -> None:
    model = ScriptedChatModel(script=[{"correct": "maybe"}, {"correct": False, "reason": "5"}])
    assert structured(model, Verdict, [HumanMessage("Is 2+2=5?")]) == Verdict(
        correct=False, reason="5"
    )
    repair = model.calls[1].messages
    assert [m.type for m in repair] == ["human", "ai", "human"]
    bad_reply = repair[1]
    assert isinstance(bad_reply, AIMessage) and not bad_reply.tool_calls  # plain text
    assert bad_reply.text == '{"correct": "maybe"}'
    assert "correct: Input should be a valid boolean" in repair[2].text
    assert "reason: Field required" in repair[2].text
    assert '"required": ["correct", "reason"]' in repair[2].text


def test_structured_takes_a_prompt_value() -> None:
    prompt = ChatPromptTemplate.from_messages([("system", "Judge."), ("human", "{q}")])
    model = ScriptedChatModel(script=[Verdict(correct=True, reason="r")])
    assert structured(model, Verdict, prompt.invoke({"q": "Is 2+2=4?"})).correct
    assert model.calls[0].text == "system: Judge.\nhuman: Is 2+2=4?"


def test_structured_gives_up_with_a_clear_error() -> None:
    model = ScriptedChatModel(script=["I think it is true.", {"reason": "no verdict"}])
    with pytest.raises(StructuredOutputError) as info:
        structured(model, Verdict, "Is 2+2=4?")
    err = info.value
    assert len(err.errors) == 2 and len(model.calls) == 2
    assert "no JSON object" in err.errors[0] and "correct: Field required" in err.errors[1]
    assert "valid Verdict" in str(err) and "MEMENTO_" in str(err)


@pytest.mark.parametrize(
    "reply",
    [
        'Sure! Here it is: {"correct": true, "reason": "2+2 is 4"} Hope that helps.',
        '```json\n{"correct": true, "reason": "2+2 is 4"}\n```',
        AIMessage(
            content="",
            tool_calls=[
                {
                    "name": "Verdict",
                    "args": {"arguments": {"correct": True, "reason": "2+2 is 4"}},
                    "id": "c1",
                }
            ],
        ),
        AIMessage(
            content="",
            invalid_tool_calls=[
                {
                    "name": "Verdict",
                    "args": 'x {"correct": true, "reason": "2+2 is 4"} y',
                    "id": "c1",
                    "error": "bad json",
                    "type": "invalid_tool_call",
                }
            ],
        ),
    ],
    ids=["prose", "fenced", "wrapped-arguments", "invalid-tool-call"],
)
def test_structured_tolerates_what_small_models_emit(reply: Any) -> None:
    model = ScriptedChatModel(script=[reply])
    assert structured(model, Verdict, "Is 2+2=4?") == Verdict(correct=True, reason="2+2 is 4")


def test_structured_json_mode_prompts_for_the_schema() -> None:
    model = ScriptedChatModel(script=['{"correct": true, "reason": "ok"}'])
    assert structured(model, Verdict, "Is 2+2=4?", method="json_mode").correct is True
    call = model.calls[0]
    assert call.kwargs["response_format"] == {"type": "json_object"}
    assert "JSON object" in call.messages[-1].text and '"reason"' in call.messages[-1].text


def test_structured_method_comes_from_chat_model_settings(server: FakeOpenAIServer) -> None:
    server.replies = [Reply(body=completion('{"correct": true, "reason": "ok"}'))]
    model = chat_model("judge", server.settings(structured_method="json_mode"))
    assert structured(model, Verdict, "Is 2+2=4?").reason == "ok"
    assert server.received[0].body["response_format"] == {"type": "json_object"}


def test_structured_repairs_a_reply_cut_at_max_tokens(server: FakeOpenAIServer) -> None:
    server.replies = [
        Reply(body=completion('{"correct": tr', finish_reason="length")),
        Reply(body=completion('{"correct": true, "reason": "ok"}')),
    ]
    model = chat_model("judge", server.settings())
    tracker = UsageTracker()
    verdict = structured(model, Verdict, "q", method="json_mode", config={"callbacks": [tracker]})
    assert verdict.correct is True
    messages = server.received[1].body["messages"]
    assert messages[-2] == {"role": "assistant", "content": '{"correct": tr'}
    assert "max_tokens limit" in messages[-1]["content"]
    # The cut-off reply raised in the client, but its tokens were generated and are counted.
    judge = tracker.summary()["roles"]["judge"]
    assert (judge["calls"], judge["failed_calls"], judge["input_tokens"]) == (2, 1, 14)


def test_structured_does_not_hide_endpoint_errors(server: FakeOpenAIServer) -> None:
    server.replies = [Reply(400, {"error": {"message": "bad request"}})]
    with pytest.raises(openai.BadRequestError):
        structured(chat_model("judge", server.settings(max_retries=0)), Verdict, "hi")


# --- usage ------------------------------------------------------------------------------------


def test_usage_is_tracked_per_role_with_cost() -> None:
    tracker = UsageTracker(prices={"scripted": (1.0, 2.0)})
    judge = ScriptedChatModel(script=["yes"], metadata={"memento_role": "judge"})
    executor = ScriptedChatModel(script=["a b c", "d e"], tags=["memento_role:executor"])
    config: Any = {"callbacks": [tracker]}
    judge.invoke("one two three", config=config)
    executor.invoke("one", config=config)
    executor.invoke([HumanMessage("one two")], config=config)
    summary = tracker.summary()
    assert summary["roles"]["judge"] == {
        "calls": 1,
        "calls_without_usage": 0,
        "failed_calls": 0,
        "input_tokens": 3,
        "output_tokens": 1,
        "total_tokens": 4,
        "cost_usd": pytest.approx((3 * 1.0 + 1 * 2.0) / 1e6),
    }
    executor_usage = summary["roles"]["executor"]
    assert (executor_usage["input_tokens"], executor_usage["output_tokens"]) == (3, 5)
    assert summary["total"]["total_tokens"] == 12
    assert summary["total"]["cost_usd"] == pytest.approx((6 * 1.0 + 6 * 2.0) / 1e6)
    assert summary["unpriced_models"] == []


def test_usage_includes_structured_repair_rounds() -> None:
    tracker = UsageTracker(prices={})
    model = ScriptedChatModel(script=[{"correct": 1.5}, Verdict(correct=True, reason="r")])
    structured(model, Verdict, "q", config={"callbacks": [tracker]})
    summary = tracker.summary()
    assert summary["roles"]["unknown"]["calls"] == 2
    assert summary["total"]["cost_usd"] is None  # unknown, not zero
    assert summary["unpriced_models"] == ["scripted"]


def test_usage_from_a_real_endpoint(server: FakeOpenAIServer) -> None:
    server.replies = [
        Reply(body=completion(usage=(11, 4), model="served-model-2024-01-01")),
        Reply(body=completion(usage=None)),
    ]
    tracker = UsageTracker(prices={"served-model": (0.5, 1.5)})
    model = chat_model("writer", server.settings())
    model.invoke("hi", config={"callbacks": [tracker]})
    model.invoke("hi", config={"callbacks": [tracker]})
    writer = tracker.summary()["roles"]["writer"]
    assert writer["calls"] == 2 and writer["calls_without_usage"] == 1
    assert (writer["input_tokens"], writer["output_tokens"]) == (11, 4)
    assert writer["cost_usd"] == pytest.approx((11 * 0.5 + 4 * 1.5) / 1e6)


def test_usage_prices_default_to_memento_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"scripted": [1, 1]}))
    monkeypatch.setenv("MEMENTO_PRICES", str(prices))
    assert UsageTracker().prices == {"scripted": (1.0, 1.0)}
    monkeypatch.delenv("MEMENTO_PRICES")
    tracker = UsageTracker()
    ScriptedChatModel(script=["x"]).invoke("y", config={"callbacks": [tracker]})
    assert tracker.prices is None and tracker.summary()["total"]["cost_usd"] is None


def test_local_server_text_is_unescaped() -> None:
    """llama.cpp's server HTML-escapes the prompt and the model echoes entities back."""
    from memento_skills.graph.models import LlamaCppChatOpenAI

    model = LlamaCppChatOpenAI(model="m", base_url="http://127.0.0.1:9/v1", api_key=SecretStr("x"))
    response = {
        "id": "1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "&#34;42&#34; &lt;b&gt; &amp;"},
                "finish_reason": "stop",
            }
        ],
    }
    result = model._create_chat_result(response)
    assert result.generations[0].message.content == '"42" <b> &'


def test_local_tool_call_arguments_are_unescaped() -> None:
    """The model escapes quotes inside tool-call arguments too; code must run as meant."""
    from memento_skills.graph.models import LlamaCppChatOpenAI

    model = LlamaCppChatOpenAI(model="m", base_url="http://127.0.0.1:9/v1", api_key=SecretStr("x"))
    code = "print(bin(1111668154).count(&#39;1&#39;), &#34;&amp;&#34;)"
    response = tool_call_completion("python", json.dumps({"code": code, "n": [1, "&lt;"]}), (5, 5))
    message = model._create_chat_result(response).generations[0].message
    assert isinstance(message, AIMessage)
    assert message.tool_calls[0]["args"] == {
        "code": "print(bin(1111668154).count('1'), \"&\")",
        "n": [1, "<"],
    }


def test_the_runs_settings_load_without_the_chat_model_stack() -> None:
    """Context (read by every command and the server's validation) needs only the settings; the
    models package imports langchain-openai on first use of a model name, not before."""
    import subprocess
    import sys

    probe = (
        "import sys, memento_skills.graph.context\n"
        "assert 'langchain_openai' not in sys.modules, 'graph.context loaded langchain_openai'\n"
        "from memento_skills.graph.models import structured, chat_model, ROLES\n"
        "assert callable(structured) and callable(chat_model) and 'executor' in ROLES\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
