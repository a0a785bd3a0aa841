"""chat_model(): one role's chat model from its settings, starting the offline default if needed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from memento_skills.graph.models.endpoint import served_model
from memento_skills.graph.models.local import LlamaCppChatOpenAI
from memento_skills.graph.models.settings import (
    METHOD_KEY,
    ROLE_KEY,
    ModelSettings,
    check_role,
    resolve_settings,
)

# ChatOpenAI insists on a key; servers that do not check one accept any string.
NO_KEY = "sk-no-key-needed"


def chat_model(role: str, settings: ModelSettings | None = None) -> BaseChatModel:
    """The chat model for one role; starts the offline default when no endpoint is configured."""
    check_role(role)
    s = settings if settings is not None else resolve_settings(role)
    if s.offline_default:
        from memento_skills.graph.models.local_server import ensure_local_server

        server = ensure_local_server(s.gguf_path)
        s = replace(s, base_url=server.base_url, model=s.model or server.model_name)
    model = s.model
    if model is None:
        assert s.base_url is not None  # resolve_settings always names a model for OpenAI
        model = served_model(s.base_url, s.api_key, timeout_s=min(s.timeout_s, 10.0))
    kwargs: dict[str, Any] = {
        "model": model,
        "base_url": s.base_url,
        "api_key": s.api_key or SecretStr(NO_KEY),
        "temperature": s.temperature,
        "timeout": s.timeout_s,
        "max_retries": s.max_retries,
        "stream_usage": True,
        "metadata": {ROLE_KEY: role, METHOD_KEY: s.structured_method},
        "tags": [f"{ROLE_KEY}:{role}"],
    }
    if s.is_openai:
        kwargs["max_completion_tokens"] = s.max_tokens
    else:
        # llama.cpp (and other servers) ignore max_completion_tokens; max_tokens is understood.
        kwargs["extra_body"] = {"max_tokens": s.max_tokens}
    cls = LlamaCppChatOpenAI if s.local else ChatOpenAI
    return cls(**kwargs)
