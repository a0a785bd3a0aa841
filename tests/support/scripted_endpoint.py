"""The one scripted OpenAI-compatible endpoint on a loopback port, for tests that talk real HTTP.

The `memento` command, `langgraph dev`, README snippets and the chat-model clients talk to it
exactly as to vLLM or llama.cpp; only the words are scripted. Every chat completion replies with
`reply(request)`:

- a str: a text reply;
- a dict with "tool" and "arguments": a call of that tool;
- an `HTTPReply`: that status and body as they are (after `delay_s`), for error and retry tests;
- None: the connection is dropped unanswered, as by a server that dies mid-run.

Text and tool calls are streamed as server-sent events when the request asks for a stream.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class HTTPReply:
    """A reply sent exactly as given: its HTTP status, its JSON body, after a delay."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: completion("hello"))
    delay_s: float = 0.0


@dataclass
class Received:
    """One request as the endpoint saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


Reply = Callable[[dict[str, Any]], "str | dict[str, Any] | HTTPReply | None"]


def completion(
    content: str | None = "hello",
    *,
    usage: tuple[int, int] | None = (7, 3),
    finish_reason: str = "stop",
    model: str = "served-model",
) -> dict[str, Any]:
    """A chat.completion body with a text reply (for `HTTPReply`)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return body


def _message(reply: str | dict[str, Any], call_id: str) -> dict[str, Any]:
    if isinstance(reply, str):
        return {"role": "assistant", "content": reply}
    function = {"name": reply["tool"], "arguments": json.dumps(reply["arguments"])}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


def _words(value: Any) -> int:
    return len(str(value or "").split())


def forced_tool(request: dict[str, Any]) -> str | None:
    """The tool a request forces (tool_choice naming a function), if any."""
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        return str(choice.get("function", {}).get("name") or "") or None
    return None


def offered_tools(request: dict[str, Any]) -> list[str]:
    """The names of the tools a request offers the model."""
    return [t["function"]["name"] for t in request.get("tools") or []]


def tool_results(request: dict[str, Any]) -> list[str]:
    """The contents of the tool results in a request's messages, in order."""
    return [str(m.get("content")) for m in request["messages"] if m.get("role") == "tool"]


class ScriptedEndpoint:
    """Serves /v1/chat/completions and /v1/models on 127.0.0.1 (a free port) from a thread."""

    def __init__(self, reply: Reply, *, models: tuple[str, ...] = ("scripted",)) -> None:
        self.reply = reply
        self.models = list(models)
        self.requests: list[dict[str, Any]] = []
        """The bodies of the POST requests, in order."""
        self.received: list[Received] = []
        """Every POST with its path and headers (lower-cased names), in order."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ending in /v1."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _respond(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        answer = self.reply(body)
        if answer is None:
            handler.close_connection = True
            return
        if isinstance(answer, HTTPReply):
            time.sleep(answer.delay_s)
            _send_json(handler, answer.status, answer.body)
            return
        n = len(self.requests)
        message = _message(answer, f"call_{n}")
        finish = "tool_calls" if "tool_calls" in message else "stop"
        prompt = sum(_words(m.get("content")) for m in body.get("messages") or [])
        reply_words = _words(message.get("content")) + (0 if isinstance(answer, str) else 1)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": reply_words,
            "total_tokens": prompt + reply_words,
        }
        base = {"id": f"chatcmpl-{n}", "created": 0, "model": body.get("model", "scripted")}
        if not body.get("stream"):
            choice = {"index": 0, "message": message, "finish_reason": finish}
            full = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            _send_json(handler, 200, full)
            return
        delta = dict(message)
        if "tool_calls" in delta:
            delta["tool_calls"] = [{"index": 0, **c} for c in delta["tool_calls"]]
        choices: list[dict[str, Any]] = [
            {"index": 0, "delta": delta, "finish_reason": None},
            {"index": 0, "delta": {}, "finish_reason": finish},
        ]
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        events = [{**base, "object": "chat.completion.chunk", "choices": [c]} for c in choices]
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(
                {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        for event in events:
            handler.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        handler.wfile.write(b"data: [DONE]\n\n")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    listing = [{"id": m, "object": "model"} for m in endpoint.models]
                    _send_json(self, 200, {"object": "list", "data": listing})
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                endpoint.received.append(Received(self.path, headers, body))
                endpoint.requests.append(body)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self.send_error(404)
                    return
                endpoint._respond(self, body)

        return Handler


def _send_json(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        handler.wfile.write(data)  # the client may have timed out and left


@contextlib.contextmanager
def scripted_endpoint(reply: Reply) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A started endpoint for a `with` block: its base URL (ending in /v1) and request bodies."""
    with ScriptedEndpoint(reply) as endpoint:
        yield endpoint.base_url, endpoint.requests
