"""Fitting a tool conversation into a model's context window after the endpoint refuses it.

One verbose tool output can push a small window over, and the endpoint then refuses every further
request (docs/decisions.md#context-refit). The window is not known in advance (llama.cpp does not
report it), but the refusal states its figures; from them we cut tool outputs and the loop's own
feedback notes — oldest first, keeping each one's head and tail — until the conversation should
fit, and ask again with a smaller completion budget. The system prompt, the task and the model's
own messages are never cut: they are the instructions and the reasoning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

_LIMIT_RE = re.compile(r"maximum context length is (\d+)", re.IGNORECASE)
_MESSAGES_RE = re.compile(
    r"(\d+) (?:tokens )?in the messages|messages resulted in (\d+) tokens", re.IGNORECASE
)
_COMPLETION_RE = re.compile(r"(\d+) (?:tokens )?in the completion", re.IGNORECASE)
KEEP_OLD_CHARS = 240
"""What an older tool output keeps (head and tail) once the window is tight."""
KEEP_LAST_CHARS = 600
"""What the newest tool output keeps at least: the model is about to act on it."""


@dataclass(frozen=True)
class Overflow:
    """What an endpoint's context-length refusal told us, in tokens."""

    limit: int
    messages: int
    completion: int

    @property
    def completion_budget(self) -> int:
        """The completion to ask for on the retry: an eighth of the window is plenty for a
        tool call or an answer (a 4,096-token server otherwise reserves a quarter)."""
        return min(self.completion, max(256, self.limit // 8)) if self.completion else 0

    @property
    def excess(self) -> int:
        """Tokens to remove from the messages, with a margin for the tokenizer's rounding."""
        margin = max(32, self.limit // 25)
        return self.messages + self.completion_budget - self.limit + margin


def context_overflow(error: BaseException) -> Overflow | None:
    """The figures of a context-length refusal, or None when `error` is something else."""
    text = str(error)
    limit = _LIMIT_RE.search(text)
    if limit is None:
        return None
    used = _MESSAGES_RE.search(text)
    completion = _COMPLETION_RE.search(text)
    return Overflow(
        limit=int(limit.group(1)),
        messages=int(next(g for g in used.groups() if g)) if used else int(limit.group(1)),
        completion=int(completion.group(1)) if completion else 0,
    )


def shorten(text: str, keep: int, why: str = "") -> str:
    """`text` cut to about `keep` characters, its head and its tail kept: a program prints
    its result last, a traceback names the error last."""
    if len(text) <= keep + 80:
        return text
    head, tail = keep * 2 // 3, keep // 3
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut{why} ...]\n{text[-tail:]}"


def fit_to_context(messages: Sequence[BaseMessage], overflow: Overflow) -> list[BaseMessage] | None:
    """`messages` with tool outputs shortened enough to remove `overflow.excess` tokens.

    Shortened messages keep their ids, so a LangGraph `add_messages` state takes them as
    replacements. The characters-per-token ratio is the conversation's average, which
    overestimates what a cut saves on digits or code: when cutting every tool output to its
    floor still looks short, the cut conversation is returned anyway (the endpoint has the last
    word). None when nothing can be cut: the caller reports the refusal instead of resending it.
    """
    total_chars = sum(len(m.text) for m in messages) or 1
    chars_per_token = total_chars / max(overflow.messages, 1)
    to_cut = int(overflow.excess * chars_per_token) + 1
    fitted = list(messages)
    first_human = next((i for i, m in enumerate(fitted) if isinstance(m, HumanMessage)), 0)
    tool_positions = [
        i
        for i, m in enumerate(fitted)
        if isinstance(m, ToolMessage) or (isinstance(m, HumanMessage) and i > first_human)
    ]
    for rank, i in enumerate(tool_positions):
        if to_cut <= 0:
            break
        message = fitted[i]
        keep = KEEP_LAST_CHARS if rank == len(tool_positions) - 1 else KEEP_OLD_CHARS
        text = message.text
        keep = max(keep, len(text) - to_cut - 80)
        shorter = shorten(text, keep, " to fit the model's context")
        if len(shorter) < len(text):
            to_cut -= len(text) - len(shorter)
            fitted[i] = message.model_copy(update={"content": shorter})
    return fitted if any(a is not b for a, b in zip(fitted, messages, strict=True)) else None
