"""The graph that langgraph.json serves (`langgraph dev`, LangGraph Studio, LangGraph Server).

Compiled without a checkpointer: the server supplies persistence. Models, the library and the
index are built lazily from each run's Context, so importing this module starts nothing (but
the sandbox probe, whose start-up notice goes to the server's log when the strong level is off).
"""

import logging

from memento_skills.graph.builder import build_graph
from memento_skills.nodes.execution.sandbox import SandboxError, isolation_notice

try:
    _notice = isolation_notice()
except SandboxError as _error:
    _notice = f"sandbox: {_error}"
if _notice:
    logging.getLogger("memento_skills.sandbox").warning(_notice)

graph = build_graph()
