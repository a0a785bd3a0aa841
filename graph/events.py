"""Custom progress events: every node reports what it is doing on the `custom` stream mode."""

from __future__ import annotations

import contextlib
from typing import Any

from langgraph.config import get_stream_writer


def emit(node: str, event: dict[str, Any]) -> None:
    """Send `{"node": node, **event}` to the run's custom stream; a no-op outside a graph run
    (KeyError: inside a plain runnable, whose config has no graph runtime)."""
    with contextlib.suppress(RuntimeError, KeyError):
        get_stream_writer()({"node": node, **event})
