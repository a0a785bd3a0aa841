"""MCP tools for one attempt: the servers it may use, opened once, offered as `mcp__server__tool`.

The servers come from the operator (`Context.mcp_config`, an mcp.json) and from the selected
skill (its frontmatter and its folder's mcp.json). Their tools are converted by
langchain-mcp-adapters and renamed `mcp__<server>__<tool>` so they can never shadow the agent's
own tools. Sessions live on one event-loop thread per attempt: opened when the attempt starts
(each within `mcp_timeout_s`), used by every step, closed when it ends; every tool call is
bounded by the same timeout, so a hung or crashed server costs its tools, never the run.

Trust: the operator's servers run as configured (the operator wrote them). A stdio server a
skill declares is code the model can reach, so it runs through the sandbox launcher like a
skill script (nodes/execution/sandbox/: the attempt's workspace read-write, the skill folder
read-only, no network, the sandbox uid, a scrubbed environment); one of a skill whose scripts are
not trusted (imported, or edited since `memento skills trust`) runs only if the operator's
`approve_script` approves the script it runs (e.g. its server.py). A skill's HTTP server is
reachable only at a public address or a host in `fetch_allow_hosts`, as fetch_url is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from memento_skills.nodes.execution.sandbox import (
    SandboxError,
    SandboxLimits,
    Workspace,
    scrubbed_env,
)
from memento_skills.stores.mcp_config import (
    MCP_FILE,
    MCP_TOOL_PREFIX,
    McpConfigError,
    McpServer,
    load_file,
)

MAX_TOOL_NAME = 64
"""OpenAI-compatible endpoints refuse longer function names."""
CLOSE_TIMEOUT_S = 5.0
STDERR_TAIL = 300
PYTHON_COMMANDS = ("python", "python3")


@dataclass(frozen=True)
class Planned:
    """A server to open for this attempt, with how to reach it (or why it is not opened)."""

    server: McpServer
    params: Any = None  # StdioServerParameters, or the URL and headers for HTTP
    refused: str = ""


def tool_name(server: str, tool: str) -> str:
    """The namespaced name of an MCP tool: `mcp__<server>__<tool>`, in the characters OpenAI takes."""
    return f"{MCP_TOOL_PREFIX}{server}__{re.sub(r'[^A-Za-z0-9_-]', '_', tool)}"


def allows(allowed_tools: Sequence[str], server: str, name: str | None = None) -> bool:
    """Whether a skill's allowed-tools lets in this server (any of its tools) or this tool."""
    if not allowed_tools:
        return True
    whole = f"{MCP_TOOL_PREFIX}{server}"
    if whole in allowed_tools:
        return True
    if name is None:
        return any(t.startswith(whole + "__") for t in allowed_tools)
    return name in allowed_tools


def plan(
    *,
    operator: Sequence[McpServer],
    skill: Sequence[McpServer],
    skill_dir: Path | None,
    skill_trusted: bool,
    allowed_tools: Sequence[str],
    workspace: Workspace,
    limits: SandboxLimits,
    approve: Callable[[str], bool] | None,
    allow_hosts: Sequence[str],
) -> tuple[list[Planned], dict[str, str]]:
    """The servers this attempt opens, and those it does not, each with the reason."""
    from mcp import StdioServerParameters

    skipped: dict[str, str] = {}
    chosen: dict[str, Planned] = {}
    for server in operator:
        chosen[server.name] = Planned(server)
    for server in skill:
        if server.name in chosen:
            skipped[server.name] = (
                "the operator configures a server of the same name; the operator's is used"
            )
            continue
        chosen[server.name] = Planned(server)
    out: list[Planned] = []
    for name, entry in chosen.items():
        server = entry.server
        if not allows(allowed_tools, name):
            continue  # the skill's allowed-tools names none of its tools: never start it
        if server.transport == "http":
            refused = "" if server.owner == "operator" else _refused_host(server.url, allow_hosts)
            if refused:
                skipped[name] = refused
            else:
                out.append(Planned(server, params=(server.url, dict(server.headers))))
            continue
        if server.owner == "operator":
            params = StdioServerParameters(
                command=server.command,
                args=list(server.args),
                env=dict(server.env) or None,
                cwd=server.cwd or None,
            )
            out.append(Planned(server, params=params))
            continue
        command = sys.executable if server.command in PYTHON_COMMANDS else server.command
        assert skill_dir is not None
        if not skill_trusted and not (
            approve is not None and approve(str(_server_script(skill_dir, server)))
        ):
            skipped[name] = (
                "refused to start it: it belongs to an untrusted skill and was not approved "
                "(ask the operator to approve it, or to configure it in MEMENTO_MCP_CONFIG)"
            )
            continue
        try:
            cwd = (skill_dir / server.cwd).resolve() if server.cwd else skill_dir
            if not cwd.is_relative_to(skill_dir.resolve()):
                raise SandboxError(f"cwd {server.cwd!r} is outside the skill folder")
            argv = workspace.serve_argv(
                [command, *server.args], limits, cwd=cwd, ro_paths=[skill_dir, *_site_dirs()]
            )
            env = scrubbed_env(workspace.root, workspace.tmp, dict(server.env))
        except (SandboxError, ValueError) as e:
            skipped[name] = f"cannot start it in the sandbox: {e}"
            continue
        params = StdioServerParameters(
            command=argv[0], args=argv[1:], env=env, cwd=str(workspace.root)
        )
        out.append(Planned(server, params=params))
    return out, skipped


def _server_script(skill_dir: Path, server: McpServer) -> Path:
    """What an approver is shown for a skill's stdio server: the skill's file it runs (e.g.
    server.py), else the file that declares it (mcp.json, or SKILL.md for the frontmatter form)."""
    base = (skill_dir / server.cwd) if server.cwd else skill_dir
    for arg in (server.command, *server.args):
        candidate = (base / arg).resolve()
        if candidate.is_relative_to(skill_dir.resolve()) and candidate.is_file():
            return candidate
    declared = skill_dir / MCP_FILE
    return declared if declared.is_file() else skill_dir / "SKILL.md"


def _site_dirs() -> list[str]:
    """The agent's own package folders, read-only in the sandbox, so `python` there imports
    what it does here (the MCP SDK a FastMCP server needs) wherever a .pth put them."""
    return sorted(
        {p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()}
    )


def _refused_host(url: str, allow_hosts: Sequence[str]) -> str:
    from memento_skills.nodes.execution.tools import FETCH_ALLOW_HOSTS_ENV, _non_public_address

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allowed = {h.strip().lower() for h in allow_hosts if h.strip()}
    if host in allowed or f"{host}:{port}" in allowed:
        return ""
    try:
        private = _non_public_address(host, port)
    except ToolException as e:
        return str(e)
    if private is None:
        return ""
    return (
        f"refused to connect: {host} is {private}, a non-public address, and a skill's MCP "
        f"server must be public unless the operator allows the host ({FETCH_ALLOW_HOSTS_ENV})"
    )


def operator_servers(config: str) -> tuple[list[McpServer], str]:
    """The operator's servers from the mcp.json at `config` (empty: none), or why there are none."""
    if not config.strip():
        return [], ""
    try:
        return load_file(config, owner="operator"), ""
    except McpConfigError as e:
        return [], str(e)


def _reason(exc: BaseException) -> str:
    """The innermost cause of a failure, in one line (anyio wraps them in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(result: Any) -> str:
    """An MCP tool's result as the text the model reads."""
    if isinstance(result, str):
        return result
    if isinstance(result, list):
        parts = []
        for block in result:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif isinstance(block, str):
                parts.append(block)
            else:
                parts.append(json.dumps(block, default=str)[:2000])
        return "\n".join(parts) if parts else "(no output)"
    return json.dumps(result, default=str)


class McpAttempt:
    """The open MCP sessions of one attempt and their tools, on a private event-loop thread."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.tools: list[BaseTool] = []
        self.failures: dict[str, str] = {}
        self.servers: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mcp-sessions", daemon=True
        )
        self._stop = asyncio.Event()
        self._tasks: list[concurrent.futures.Future[None]] = []
        self._closed = False
        self._errlogs: list[Any] = []

    def open(self, planned: Sequence[Planned]) -> None:
        """Start every server at once; keep those that answer within the timeout."""
        if not planned:
            return
        self._thread.start()
        readies: list[tuple[Planned, concurrent.futures.Future[list[BaseTool]], Any]] = []
        for entry in planned:
            ready: concurrent.futures.Future[list[BaseTool]] = concurrent.futures.Future()
            errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 (closed by close())
            task = asyncio.run_coroutine_threadsafe(self._serve(entry, ready, errlog), self._loop)
            self._tasks.append(task)
            readies.append((entry, ready, errlog))
            self._errlogs.append(errlog)
        deadline = time.monotonic() + self.timeout_s
        taken: set[str] = set()
        for (entry, ready, errlog), task in zip(readies, self._tasks, strict=True):
            name = entry.server.name
            try:
                tools = ready.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                tail = _tail(errlog)
                task.cancel()
                self.failures[name] = f"did not start and answer within {self.timeout_s:g} s{tail}"
                continue
            except BaseException as e:
                self.failures[name] = f"failed to start: {_reason(e)}{_tail(errlog)}"
                continue
            self.servers.append(name)
            for tool in tools:
                namespaced = tool_name(name, tool.name)
                if len(namespaced) > MAX_TOOL_NAME or namespaced in taken:
                    self.failures[f"{name}/{tool.name}"] = (
                        f"tool left out: its name {namespaced!r} is "
                        + ("too long" if len(namespaced) > MAX_TOOL_NAME else "taken")
                    )
                    continue
                taken.add(namespaced)
                self.tools.append(self._wrap(name, namespaced, tool))

    async def _serve(
        self, entry: Planned, ready: concurrent.futures.Future[list[BaseTool]], errlog: Any
    ) -> None:
        from langchain_mcp_adapters.tools import load_mcp_tools
        from mcp import ClientSession
        from mcp.client.stdio import stdio_client
        from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client

        # the session's own bound on every request, a backstop behind the call timeout
        read_timeout = timedelta(seconds=self.timeout_s + 5)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if entry.server.transport == "stdio":
                    read, write = await stack.enter_async_context(
                        stdio_client(entry.params, errlog=errlog)
                    )
                else:
                    url, headers = entry.params
                    client = await stack.enter_async_context(
                        create_mcp_http_client(headers=headers or None)
                    )
                    read, write, _ = await stack.enter_async_context(
                        streamable_http_client(url, http_client=client)
                    )
                session = await stack.enter_async_context(
                    ClientSession(read, write, read_timeout_seconds=read_timeout)
                )
                await session.initialize()
                tools = await load_mcp_tools(
                    session, server_name=entry.server.name, handle_tool_errors=False
                )
                ready.set_result(tools)
                await self._stop.wait()
        except BaseException as e:
            if not ready.done():
                ready.set_exception(e)
            if not isinstance(e, Exception):
                raise

    def _wrap(self, server: str, name: str, tool: BaseTool) -> BaseTool:
        """A synchronous tool that runs the MCP call on the sessions' loop, within the timeout."""

        def call(**kwargs: Any) -> str:
            if self._closed:
                raise ToolException(f"the MCP session to {server!r} is closed")
            future = asyncio.run_coroutine_threadsafe(tool.ainvoke(kwargs), self._loop)
            try:
                return _text(future.result(timeout=self.timeout_s))
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise ToolException(
                    f"MCP server {server!r} did not answer {tool.name} within {self.timeout_s:g} s"
                ) from None
            except ToolException as e:
                raise ToolException(f"{server}/{tool.name}: {e}") from None
            except Exception as e:
                raise ToolException(f"MCP server {server!r} failed: {_reason(e)}") from None

        schema = tool.args_schema if isinstance(tool.args_schema, dict) else None
        return StructuredTool.from_function(
            func=call,
            name=name,
            description=f"[MCP server {server}] {tool.description}".strip(),
            args_schema=schema or {"type": "object", "properties": {}},
            handle_tool_error=lambda e: f"error: {e}",
            metadata={"mcp_server": server, "mcp_tool": tool.name},
        )

    def close(self) -> None:
        """End every session (each server process with it) and the loop thread, in bounded time."""
        if self._closed:
            return
        self._closed = True
        if not self._thread.is_alive():
            self._loop.close()
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        for task in self._tasks:
            try:
                task.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                task.cancel()
            except BaseException:
                pass
        with contextlib.suppress(concurrent.futures.TimeoutError, BaseException):
            asyncio.run_coroutine_threadsafe(_cancel_rest(), self._loop).result(CLOSE_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CLOSE_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()
        for errlog in self._errlogs:
            errlog.close()


async def _cancel_rest() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _tail(errlog: Any) -> str:
    """The end of what a stdio server wrote to stderr, as part of why it failed."""
    try:
        errlog.flush()
        errlog.seek(0)
        text = errlog.read()
    except (OSError, ValueError):
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return f"; its stderr ends: {' | '.join(lines[-3:])[-STDERR_TAIL:]}"
