"""The HTTP app langgraph.json adds to the LangGraph server: a bad run is refused as it is created.

The server drops context keys its schema does not name before the graph sees them, so a typo
(`max_attempt`) would otherwise pass silently. This middleware reads each request that creates a
run, a cron or an assistant and answers 422 with the validator's one-line message when its
context or input is wrong — no run is queued and no model is called. The graph checks the same
things again as the run starts (graph/validation.py: one validator), which covers Python callers.

It serves memento's langgraph.json, where every assistant belongs to the memento graph.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memento_skills.graph.validation import RunRefused, check_context, check_input

# POST: thread runs, stateless runs, their stream/wait variants, batches and crons
_RUN_PATHS = re.compile(r"^(/threads/[^/]+)?/runs(/stream|/wait|/batch|/crons)?/?$")
_ASSISTANT_CREATE = re.compile(r"^/assistants/?$")  # POST
_ASSISTANT_UPDATE = re.compile(r"^/assistants/[^/]+/?$")  # PATCH


def _checks(method: str, path: str) -> str | None:
    """Which request body this is ("run" or "assistant"), or None when nothing is checked."""
    if method == "POST" and _RUN_PATHS.match(path):
        return "run"
    if (method == "POST" and _ASSISTANT_CREATE.match(path)) or (
        method == "PATCH" and _ASSISTANT_UPDATE.match(path)
    ):
        return "assistant"
    return None


def refusal(kind: str, body: bytes) -> str | None:
    """Why this request must be refused (the validator's message), or None if it may go on."""
    try:
        payload: Any = json.loads(body or b"{}")
    except ValueError:
        return None  # not JSON: the server's own parser answers that
    payloads = payload if isinstance(payload, list) else [payload]  # /runs/batch
    try:
        for item in payloads:
            if not isinstance(item, dict):
                continue
            if item.get("context") is not None:
                check_context(item["context"])
            if kind == "run" and item.get("command") is None and item.get("input") is not None:
                check_input(item["input"])
    except RunRefused as e:
        return str(e)
    return None


class RefuseBadRuns:
    """ASGI middleware: buffers the body of a run-creating request, checks it, replays it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = (
            _checks(scope.get("method", ""), scope.get("path", ""))
            if scope["type"] == "http"
            else None
        )
        if kind is None:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        problem = refusal(kind, body)
        if problem is not None:
            await JSONResponse({"detail": problem}, status_code=422)(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


app = Starlette(middleware=[Middleware(RefuseBadRuns)])
