"""A scripted OpenAI-compatible endpoint on a loopback port, for tests that run real subprocesses.

The `memento` command and README snippets talk HTTP to it exactly as to vLLM or llama.cpp; only
the words are scripted: every chat completion replies with `reply(request)` (text, or a tool
call when it returns a dict with "tool" and "arguments"; None drops the connection unanswered,
as a server that dies mid-run does).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], str | dict[str, Any] | None]


def _completion(request: dict[str, Any], reply: str | dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if isinstance(reply, dict):
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": reply["tool"], "arguments": json.dumps(reply["arguments"])},
            }
        ]
        finish = "tool_calls"
    else:
        message["content"] = reply
        finish = "stop"
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "scripted"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }


def forced_tool(request: dict[str, Any]) -> str | None:
    """The tool a request forces (tool_choice naming a function), if any."""
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        return str(choice.get("function", {}).get("name") or "") or None
    return None


@contextmanager
def scripted_endpoint(reply: Reply) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve on 127.0.0.1 (a free port); yields the base URL (ending in /v1) and the requests."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send({"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            seen.append(request)
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self.send_error(404)
                return
            answer = reply(request)
            if answer is None:
                self.close_connection = True
                return
            self._send(_completion(request, answer))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
