"""What an open attempt holds in this process: its skill as read at its start, its tools, its MCP
sessions. None of it is serialisable, so it stays out of the checkpointed state, keyed by the
attempt's workspace; a process that resumes an attempt builds it again from the library."""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass, field

from langchain_core.tools import BaseTool

from memento_skills.nodes.execution.mcp_tools import McpAttempt
from memento_skills.stores.skill import Skill


@dataclass
class OpenAttempt:
    """One attempt's long-lived objects: the skill is read once, the tools built once."""

    skill: Skill | None
    mcp: McpAttempt | None = None
    tools: list[BaseTool] | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.mcp is not None:
            self.mcp.close()


class OpenAttempts:
    """The open attempts of this process by workspace, closed at their end (or at exit)."""

    def __init__(self) -> None:
        self._open: dict[str, OpenAttempt] = {}
        self._lock = threading.Lock()
        atexit.register(self.close_all)

    def get(self, workspace: str) -> OpenAttempt | None:
        with self._lock:
            return self._open.get(workspace)

    def put(self, workspace: str, attempt: OpenAttempt) -> None:
        with self._lock:
            old = self._open.pop(workspace, None)
            self._open[workspace] = attempt
        if old is not None and old is not attempt:
            old.close()

    def close(self, workspace: str) -> None:
        with self._lock:
            attempt = self._open.pop(workspace, None)
        if attempt is not None:
            attempt.close()

    def close_all(self) -> None:
        with self._lock:
            attempts, self._open = list(self._open.values()), {}
        for attempt in attempts:
            attempt.close()
