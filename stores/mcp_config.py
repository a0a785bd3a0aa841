"""MCP server declarations: the `{"mcpServers": {name: {...}}}` shape, parsed and validated.

The same shape as Claude Desktop's and Cursor's `mcp.json` serves three places: the operator's
global file (`MEMENTO_MCP_CONFIG`), an `mcp.json` in a skill's folder, and a skill's frontmatter
(`metadata.memento-mcp-servers`, a JSON string: Agent Skills metadata values are strings). A
server is either stdio (`command`, optional `args`, `env`, `cwd`) or streamable HTTP (`url`,
optional `headers`); the transport is given by `type` (or `transport`) or inferred from which of
`command` / `url` is present. Every problem is one line naming the server, the field and the fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

MCP_FILE = "mcp.json"
"""A skill's MCP servers, in its folder (next to SKILL.md)."""
SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
MCP_TOOL_PREFIX = "mcp__"
MCP_TOOL_NAME = re.compile(r"^mcp__[A-Za-z0-9][A-Za-z0-9_-]{0,39}(?:__[A-Za-z0-9_.-]+)?$")
"""How allowed-tools names MCP tools: `mcp__<server>` (all its tools) or `mcp__<server>__<tool>`."""
MAX_CONFIG_BYTES = 256 * 1024

Transport = Literal["stdio", "http"]
TRANSPORTS = {
    "stdio": "stdio",
    "http": "http",
    "streamable_http": "http",
    "streamable-http": "http",
}
STDIO_KEYS = {"type", "transport", "command", "args", "env", "cwd", "disabled"}
HTTP_KEYS = {"type", "transport", "url", "headers", "disabled"}


class McpConfigError(ValueError):
    """One thing wrong with an MCP declaration: where, what, and how to fix it (one line)."""

    def __init__(self, where: str, problem: str, fix: str):
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where + ': ' if where else ''}{problem} — fix: {fix}")


@dataclass(frozen=True)
class McpServer:
    """One MCP server a run may connect to; `owner` says who declared it (operator or a skill)."""

    name: str
    transport: Transport
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = ""
    url: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    owner: str = "operator"

    def to_json(self) -> dict[str, Any]:
        """The server as an `mcpServers` entry (the shape it was read from)."""
        if self.transport == "http":
            out: dict[str, Any] = {"type": "http", "url": self.url}
            if self.headers:
                out["headers"] = dict(self.headers)
            return out
        out = {"command": self.command}
        if self.args:
            out["args"] = list(self.args)
        if self.env:
            out["env"] = dict(self.env)
        if self.cwd:
            out["cwd"] = self.cwd
        return out


def _strings(value: Any, where: str, what: str, fix: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise McpConfigError(where, f"{what} is not a list of strings", fix)
    return tuple(value)


def _string_map(value: Any, where: str, what: str, fix: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise McpConfigError(where, f"{what} is not a mapping of strings to strings", fix)
    return tuple(value.items())


def parse_server(name: Any, raw: Any, *, where: str, owner: str) -> McpServer | None:
    """One `mcpServers` entry as a server (None when it is `disabled`), or McpConfigError."""
    if not isinstance(name, str) or not SERVER_NAME.match(name) or "__" in name:
        raise McpConfigError(
            where,
            f"server name {name!r} is not 1-40 letters, digits, '-' or single '_'",
            "rename it, e.g. `calculator` (it becomes part of the tool names mcp__<server>__<tool>)",
        )
    at = f"{where}: server {name!r}" if where else f"server {name!r}"
    if not isinstance(raw, dict):
        raise McpConfigError(at, "is not a mapping", 'write e.g. {"command": "...", "args": []}')
    kind = raw.get("type", raw.get("transport"))
    if kind is None:
        if "command" in raw and "url" in raw:
            raise McpConfigError(at, "has both command and url", "keep one, or set `type`")
        kind = "http" if "url" in raw else "stdio"
    if not isinstance(kind, str) or kind not in TRANSPORTS:
        raise McpConfigError(
            at,
            f"unknown transport {kind!r}",
            "use `type: stdio` (with `command`) or `type: http` (streamable HTTP, with `url`)",
        )
    transport: Transport = TRANSPORTS[kind]  # type: ignore[assignment]
    allowed = STDIO_KEYS if transport == "stdio" else HTTP_KEYS
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise McpConfigError(
            at,
            f"unknown field(s) {', '.join(map(str, unknown))} for a {transport} server",
            f"use only {', '.join(sorted(allowed))}",
        )
    disabled = raw.get("disabled", False)
    if not isinstance(disabled, bool):
        raise McpConfigError(at, "`disabled` is not true/false", "write `disabled: true`")
    if disabled:
        return None
    if transport == "http":
        url = raw.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            raise McpConfigError(
                at,
                "missing url" if url is None else f"url {url!r} is not an http(s) URL",
                'give the server\'s endpoint, e.g. "url": "http://127.0.0.1:8000/mcp"',
            )
        headers = _string_map(
            raw.get("headers", {}), at, "headers", 'write e.g. {"Authorization": "Bearer ..."}'
        )
        return McpServer(name=name, transport="http", url=url, headers=headers, owner=owner)
    command = raw.get("command")
    if not isinstance(command, str) or not command.strip():
        raise McpConfigError(
            at,
            "missing command" if command is None else "command is not a non-empty string",
            'give the program that starts the server, e.g. "command": "python"',
        )
    args = _strings(raw.get("args", []), at, "args", 'write e.g. "args": ["server.py"]')
    env = _string_map(raw.get("env", {}), at, "env", 'write e.g. "env": {"LEVEL": "debug"}')
    if owner != "operator" and any("${" in v for _, v in env):
        raise McpConfigError(
            at,
            "env refers to a host variable (${...})",
            "a skill cannot read the host's environment; write the value itself, or ask the "
            "operator to configure this server in MEMENTO_MCP_CONFIG",
        )
    cwd = raw.get("cwd", "")
    if not isinstance(cwd, str):
        raise McpConfigError(at, "cwd is not a string", "give a folder path")
    return McpServer(
        name=name, transport="stdio", command=command, args=args, env=env, cwd=cwd, owner=owner
    )


def parse_servers(raw: Any, *, where: str, owner: str, bare_ok: bool = False) -> list[McpServer]:
    """All enabled servers of a parsed `{"mcpServers": {...}}` document, or McpConfigError.

    `bare_ok` also accepts the inner `{name: {...}}` mapping alone (the frontmatter form).
    """
    if isinstance(raw, dict) and "mcpServers" in raw:
        extra = sorted(set(raw) - {"mcpServers"})
        if extra:
            raise McpConfigError(
                where, f"unknown top-level field(s) {', '.join(extra)}", "keep only mcpServers"
            )
        raw = raw["mcpServers"]
    elif not bare_ok:
        raise McpConfigError(
            where, "has no `mcpServers` mapping", 'write {"mcpServers": {"name": {...}}}'
        )
    if not isinstance(raw, dict):
        raise McpConfigError(
            where, "mcpServers is not a mapping", 'write {"mcpServers": {"name": {...}}}'
        )
    servers = [parse_server(name, entry, where=where, owner=owner) for name, entry in raw.items()]
    return [s for s in servers if s is not None]


def parse_json(
    text: str | bytes, *, where: str, owner: str, bare_ok: bool = False
) -> list[McpServer]:
    """Servers from JSON text, or McpConfigError (also for text that is not JSON)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise McpConfigError(where, f"is over {MAX_CONFIG_BYTES} bytes", "declare fewer servers")
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise McpConfigError(where, f"is not valid JSON ({e})", "fix the JSON syntax") from None
    return parse_servers(raw, where=where, owner=owner, bare_ok=bare_ok)


def load_file(path: Path | str, *, owner: str) -> list[McpServer]:
    """Servers from an mcp.json file, or McpConfigError naming the file."""
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise McpConfigError(
            str(file), "does not exist", "create it, or unset MEMENTO_MCP_CONFIG"
        ) from None
    except OSError as e:
        raise McpConfigError(str(file), f"cannot be read ({e.strerror})", "check it") from None
    return parse_json(data, where=str(file), owner=owner)


def to_json_text(servers: list[McpServer]) -> str:
    """Servers as compact `{"mcpServers": ...}` JSON (the frontmatter form)."""
    return json.dumps({"mcpServers": {s.name: s.to_json() for s in servers}}, sort_keys=False)


def is_mcp_tool_name(name: str) -> bool:
    """Whether an allowed-tools entry names MCP tools (a whole server or one of its tools)."""
    return bool(MCP_TOOL_NAME.match(name))
