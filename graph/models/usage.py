"""Token usage (and cost, with a price table) per role, from the usage the server reports."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from memento_skills.graph.models.settings import ROLE_KEY, Prices, load_prices


@dataclass
class _Tally:
    calls: int = 0
    calls_without_usage: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    failed_calls: int = 0

    def as_dict(self, priced: bool) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "calls_without_usage": self.calls_without_usage,
            "failed_calls": self.failed_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            # Unknown, not zero, when any call's model has no price.
            "cost_usd": round(self.cost_usd, 8) if priced and not self.unpriced_calls else None,
        }


def _usage(response: LLMResult) -> tuple[int, int, str | None] | None:
    """(input, output, model name) from a result: usage_metadata first, then llm_output."""
    found = False
    tokens_in = tokens_out = 0
    name: str | None = None
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration) and isinstance(generation.message, AIMessage):
                message = generation.message
                name = name or message.response_metadata.get("model_name")
                if message.usage_metadata:
                    found = True
                    tokens_in += message.usage_metadata.get("input_tokens", 0)
                    tokens_out += message.usage_metadata.get("output_tokens", 0)
    llm_output = response.llm_output or {}
    name = name or llm_output.get("model_name")
    if not found:
        token_usage = llm_output.get("token_usage") or {}
        if token_usage:
            found = True
            tokens_in = int(token_usage.get("prompt_tokens", 0) or 0)
            tokens_out = int(token_usage.get("completion_tokens", 0) or 0)
    return (tokens_in, tokens_out, name) if found else None


class UsageTracker(BaseCallbackHandler):
    """Per-role token usage (and cost, with a price table) for every chat call of a run.

    Pass it in the run's config (`config={"callbacks": [tracker]}`); the role comes from the
    metadata chat_model() puts on each model (calls from other models count as "unknown").
    Thread-safe: LangGraph runs sync nodes on worker threads.
    """

    raise_error = False

    def __init__(self, prices: Prices | None = None) -> None:
        super().__init__()
        self.prices: dict[str, tuple[float, float]] | None = (
            dict(prices) if prices is not None else load_prices()
        )
        self._lock = threading.Lock()
        self._started: dict[UUID, tuple[str, str | None]] = {}
        self._roles: dict[str, _Tally] = {}
        self._unpriced: set[str] = set()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        meta = metadata or {}
        role = meta.get(ROLE_KEY)
        if role is None:
            prefix = f"{ROLE_KEY}:"
            role = next((t[len(prefix) :] for t in tags or [] if t.startswith(prefix)), "unknown")
        params = kwargs.get("invocation_params") or {}
        model = params.get("model") or params.get("model_name") or meta.get("ls_model_name")
        with self._lock:
            self._started[run_id] = (str(role), model)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        # A reply cut at max_tokens raises in the client but was generated, and billed.
        usage = getattr(getattr(error, "completion", None), "usage", None)
        counted = (
            (int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0), None)
            if usage is not None
            else None
        )
        self._record(run_id, counted, failed=True)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._record(run_id, _usage(response), failed=False)

    def _record(
        self, run_id: UUID, usage: tuple[int, int, str | None] | None, *, failed: bool
    ) -> None:
        with self._lock:
            role, model = self._started.pop(run_id, ("unknown", None))
            tally = self._roles.setdefault(role, _Tally())
            tally.calls += 1
            tally.failed_calls += int(failed)
            if usage is None:
                tally.calls_without_usage += 1
                return
            tokens_in, tokens_out, reported = usage
            tally.input_tokens += tokens_in
            tally.output_tokens += tokens_out
            price = self._price(model, reported)
            if price is None:
                tally.unpriced_calls += 1
                self._unpriced.add(model or reported or "?")
            else:
                tally.cost_usd += (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000

    def _price(self, model: str | None, reported: str | None) -> tuple[float, float] | None:
        if not self.prices:
            return None
        for name in (model, reported):
            if name and name in self.prices:
                return self.prices[name]
        # Dated snapshots ("gpt-4o-mini-2024-07-18") priced under their family's name.
        if reported:
            family = max((k for k in self.prices if reported.startswith(k)), key=len, default=None)
            if family:
                return self.prices[family]
        return None

    def summary(self) -> dict[str, Any]:
        """{"roles": {role: counts}, "total": counts, "unpriced_models": [...]} (cost in USD)."""
        priced = bool(self.prices)
        with self._lock:
            total = _Tally()
            for tally in self._roles.values():
                total.calls += tally.calls
                total.calls_without_usage += tally.calls_without_usage
                total.failed_calls += tally.failed_calls
                total.input_tokens += tally.input_tokens
                total.output_tokens += tally.output_tokens
                total.cost_usd += tally.cost_usd
                total.unpriced_calls += tally.unpriced_calls
            return {
                "roles": {r: t.as_dict(priced) for r, t in sorted(self._roles.items())},
                "total": total.as_dict(priced),
                "unpriced_models": sorted(self._unpriced),
            }
