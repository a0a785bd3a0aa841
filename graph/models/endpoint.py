"""The model endpoint before a run: does it answer, and which model does it serve."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from memento_skills.graph.models.settings import ModelConfigError


class EndpointUnreachableError(ConnectionError):
    """The model endpoint does not answer at all: connection refused, host not found, timeout."""


OPENAI_BASE_URL = "https://api.openai.com/v1"


def _unreachable(base_url: str, exc: Exception, what: str) -> EndpointUnreachableError:
    reason = str(exc).strip() or type(exc).__name__
    return EndpointUnreachableError(
        f"cannot reach the model endpoint {base_url} ({what}: {reason}); start the server, or "
        "point --base-url / MEMENTO_BASE_URL at one that runs (unset both for the offline "
        "default model)"
    )


def probe_endpoint(base_url: str, api_key: SecretStr | None = None, timeout_s: float = 5.0) -> None:
    """Fail fast, before a run, when nothing answers at `base_url` (any HTTP reply will do)."""
    headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
    try:
        httpx.get(f"{base_url}/models", headers=headers, timeout=timeout_s)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ModelConfigError(
            f"the model endpoint {base_url!r} is not a URL like http://127.0.0.1:8080/v1 ({exc}); "
            "fix --base-url / MEMENTO_BASE_URL"
        ) from None
    except (httpx.NetworkError, httpx.TimeoutException) as exc:
        raise _unreachable(base_url, exc, "listing its models") from None


def served_model(base_url: str, api_key: SecretStr | None = None, timeout_s: float = 10.0) -> str:
    """The model an endpoint serves, for servers (llama.cpp, vLLM, LM Studio) run with one model."""
    headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
    try:
        response = httpx.get(f"{base_url}/models", headers=headers, timeout=timeout_s)
        response.raise_for_status()
        models = [m["id"] for m in response.json().get("data", [])]
    except (httpx.NetworkError, httpx.TimeoutException) as exc:
        raise _unreachable(base_url, exc, "listing its models") from None
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelConfigError(
            f"no model name is set and {base_url}/models did not list one ({exc}); "
            "set MEMENTO_MODEL (or MEMENTO_<ROLE>_MODEL)"
        ) from None
    if not models:
        raise ModelConfigError(
            f"{base_url}/models lists no model; set MEMENTO_MODEL (or MEMENTO_<ROLE>_MODEL)"
        )
    return models[0]
