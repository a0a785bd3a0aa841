"""Run configuration (LangGraph `context_schema`): every field carries a description for Studio.

Defaults come from the environment where users expect them (MEMENTO_* variables); the model
fields' defaults are read by graph/models/settings.py (resolve_settings states the precedence),
the Chroma ones by stores/settings.py (SkillIndex's defaults too), the others here, so each
variable has one reader. A caller
overrides any field per run with `graph.invoke(..., context=Context(...))` or a mapping of field
names. Besides a description, a field's metadata may bound it (`ge`, `gt`, `pattern`): pydantic
reads them into the served schema, and graph/validation.py refuses a run that breaks them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, cast

from memento_skills.graph.models.settings import base_url_env, role_model_env
from memento_skills.stores.settings import (
    chroma_collection_env,
    chroma_url_env,
    store_library_env,
    store_url_env,
)

WritePolicy = Literal["off", "create", "refine", "full"]
RouterMode = Literal["hybrid", "dense", "lexical"]
SandboxLevel = Literal["auto", "namespaces", "uid", "rlimits"]


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _sandbox_level() -> SandboxLevel:
    """$MEMENTO_SANDBOX as given (validation names a wrong one), "auto" when unset."""
    return cast(SandboxLevel, _env("MEMENTO_SANDBOX").strip() or "auto")


@dataclass(kw_only=True)
class Context:
    """How one run of the memento graph is configured."""

    # models, per role
    router_model: str = field(
        default_factory=lambda: role_model_env("router") or "",
        metadata={"description": "Model that picks among the top-k skills (empty: no LLM pick)."},
    )
    executor_model: str = field(
        default_factory=lambda: role_model_env("executor") or "",
        metadata={
            "description": "Model that executes the task with the chosen skill (empty: default)."
        },
    )
    judge_model: str = field(
        default_factory=lambda: role_model_env("judge") or "",
        metadata={"description": "Model that judges answers (empty: default)."},
    )
    writer_model: str = field(
        default_factory=lambda: role_model_env("writer") or "",
        metadata={"description": "Model that refines and writes skills (empty: default)."},
    )
    base_url: str = field(
        default_factory=lambda: base_url_env() or "",
        metadata={
            "description": "OpenAI-compatible endpoint. Empty and no OPENAI_API_KEY: a local model is started."
        },
    )
    # the library and its indexes
    skills_dir: str = field(
        default="",
        metadata={
            "description": "Skill library folder (empty: $MEMENTO_SKILLS_DIR or ~/.memento/skills)."
        },
    )
    index_dir: str = field(
        default="",
        metadata={"description": "Index folder (empty: $MEMENTO_INDEX_DIR or ~/.memento/index)."},
    )
    store_url: str = field(
        default_factory=store_url_env,
        metadata={
            "description": "Shared skill store, e.g. postgresql://memento@127.0.0.1:5432/memento "
            "(default: $MEMENTO_STORE_URL; empty: the library folder). A run that sets "
            "skills_dir uses that folder instead.",
            "pattern": r"^(|postgres(ql)?://\S*)$",
        },
    )
    store_library: str = field(
        default_factory=store_library_env,
        metadata={
            "description": "The library's name within store_url: workers naming the same one "
            "share it (default: $MEMENTO_STORE_LIBRARY or default).",
            "pattern": r"^[a-z0-9](?:[a-z0-9_-]{0,62})$",
        },
    )
    chroma_url: str = field(
        default_factory=chroma_url_env,
        metadata={
            "description": "Chroma server URL, e.g. http://127.0.0.1:8000 (empty: a local index "
            "in index_dir).",
            "pattern": r"^(|https?://[^\s/]+(/\S*)?)$",
        },
    )
    chroma_collection: str = field(
        default_factory=chroma_collection_env,
        metadata={
            "description": "Chroma collection name (empty: the library's own, from its id in "
            ".memento/library.json and the embedder). Share one only between copies of a library.",
            "pattern": r"^(|[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9])$",
        },
    )
    library_rescan_s: float = field(
        default=5.0,
        metadata={
            "description": "Seconds within which a running worker notices edits made outside the "
            "library (by hand, git pull); writes through the library, by any process, are seen "
            "at the next task. 0: rescan the folders before every task.",
            "ge": 0,
        },
    )
    # read phase
    top_k: int = field(
        default=5, metadata={"description": "Skills the router keeps as candidates.", "ge": 1}
    )
    router_mode: RouterMode = field(
        default="hybrid",
        metadata={"description": "Retrieval used by the router: hybrid, dense or lexical."},
    )
    router_temperature: float = field(
        default=0.0,
        metadata={
            "description": "Softmax temperature of skill selection: 0 is greedy (test), >0 explores.",
            "ge": 0,
        },
    )
    min_route_score: float = field(
        default=0.2,
        metadata={"description": "Below this score no skill fits and none is selected."},
    )
    # execution
    max_attempts: int = field(
        default=2,
        metadata={"description": "Attempts per task (the loop retries a failed task).", "ge": 1},
    )
    max_steps: int = field(
        default=8, metadata={"description": "Tool-calling steps per attempt.", "ge": 1}
    )
    max_tokens: int = field(
        default=20_000, metadata={"description": "Token budget per attempt.", "ge": 1}
    )
    max_wall_s: float = field(
        default=300.0, metadata={"description": "Wall-time budget per attempt, seconds.", "gt": 0}
    )
    sandbox_wall_s: float = field(
        default=30.0, metadata={"description": "Time limit of one shell/python call.", "gt": 0}
    )
    sandbox_memory_mb: int = field(
        default=1024, metadata={"description": "Memory limit of one shell/python call.", "ge": 1}
    )
    sandbox_disk_mb: int = field(
        default=128, metadata={"description": "Disk cap of the whole workspace, in MB.", "ge": 1}
    )
    sandbox_level: SandboxLevel = field(
        default_factory=_sandbox_level,
        metadata={
            "description": "Isolation of the agent's code: auto (namespaces, else refuse to run "
            "code), namespaces, or a weaker level named to opt in: uid (root without "
            "namespaces), rlimits (non-root). Default: $MEMENTO_SANDBOX or auto."
        },
    )
    web_search: bool = field(
        default=True, metadata={"description": "Offer the web_search tool (needs TAVILY_API_KEY)."}
    )
    fetch_allow_hosts: str = field(
        default_factory=lambda: _env("MEMENTO_FETCH_ALLOW_HOSTS"),
        metadata={
            "description": "Comma-separated non-public hosts (host or host:port) fetch_url may "
            "reach; every other loopback, private or link-local address is refused."
        },
    )
    mcp_config: str = field(
        default_factory=lambda: _env("MEMENTO_MCP_CONFIG"),
        metadata={
            "description": 'The operator\'s MCP servers: an mcp.json ({"mcpServers": {...}}, '
            "as Claude Desktop and Cursor write it) whose tools every skill is offered."
        },
    )
    mcp_timeout_s: float = field(
        default=20.0,
        metadata={
            "description": "Time limit to start and connect one MCP server, and of one MCP tool call.",
            "gt": 0,
        },
    )
    workspace_dir: str = field(
        default="",
        metadata={"description": "Where per-run workspaces are created (empty: a temp dir)."},
    )
    # write phase
    write_policy: WritePolicy = field(
        default="full",
        metadata={"description": "What the write phase may change: off, create, refine or full."},
    )
    gate_cases: int = field(
        default=3,
        metadata={
            "description": "Regression cases replayed before a skill change goes live (0: none).",
            "ge": 0,
        },
    )
    gate_siblings: int = field(
        default=2,
        metadata={
            "description": "Other training tasks of the kind a script skill is replayed on "
            "before it goes live (0: none; docs/decisions.md#script-skills).",
            "ge": 0,
        },
    )
    search_tries: int = field(
        default=6,
        metadata={
            "description": "Candidates the learning-time search may judge on a failed task with a "
            "known answer, before writing (0: no search). docs/decisions.md#learning-search",
            "ge": 0,
        },
    )
    search_tokens: int = field(
        default=30_000,
        metadata={"description": "Tokens the search may spend on one task.", "ge": 1},
    )
    search_seconds: float = field(
        default=600.0,
        metadata={"description": "Wall time the search may spend on one task, seconds.", "gt": 0},
    )
    search_repairs: int = field(
        default=2,
        metadata={
            "description": "Times the writer may repair its program after the judge failed it.",
            "ge": 0,
        },
    )
    approval_required: bool = field(
        default=False,
        metadata={
            "description": "Pause with the proposed diff before any library change (interrupt)."
        },
    )
    run_log: str = field(
        default="",
        metadata={"description": "JSONL run log path (empty: $MEMENTO_HOME/runs.jsonl)."},
    )
