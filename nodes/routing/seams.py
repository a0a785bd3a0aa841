"""The typed seams through which the nodes reach the long-lived routing objects.

The builder makes (or is given) one router and one retriever source per graph and injects them
into the nodes that use them; a node never looks them up. Anything with these methods fits: the
learned router and the hybrid score implement `Router`, `stores.index.SkillIndex` implements
`Retriever`, and `graph.resources.Resources` implements `RetrieverSource` (a run's library, and so
its index, is chosen by its Context).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from memento_skills.graph.context import Context
from memento_skills.graph.state import Candidate
from memento_skills.stores.skill import Skill
from memento_skills.stores.skill_store import SkillStore


@runtime_checkable
class Retriever(Protocol):
    """Finds the skills nearest a query: dense, lexical (BM25) and both fused."""

    def embed_query(self, query: str) -> np.ndarray: ...

    def dense_search(
        self, query: str, k: int = 10, *, vector: np.ndarray | None = None
    ) -> list[tuple[str, float]]: ...

    def lexical_search(self, query: str, k: int = 10) -> list[tuple[str, float]]: ...

    def search(self, query: str, k: int = 10, *, vector: np.ndarray | None = None) -> list[Any]: ...

    def vectors(self, names: Sequence[str]) -> dict[str, np.ndarray]: ...


@runtime_checkable
class RetrieverSource(Protocol):
    """Gives a run's library and its retriever, first brought in line with the library."""

    def library(self, ctx: Context) -> SkillStore: ...

    def synced_index(self, ctx: Context) -> tuple[Retriever, Mapping[str, Skill]]:
        """The retriever in line with the library, and the skills a router may offer by name."""
        ...


@runtime_checkable
class Router(Protocol):
    """Ranks a library's skills for a task."""

    def rank(
        self, query: str, skills: Mapping[str, Skill], index: Retriever, k: int, mode: str
    ) -> list[Candidate]: ...


@runtime_checkable
class LearningRouter(Router, Protocol):
    """A router that keeps weights next to a library and learns from judged runs."""

    def bind(self, library_root: Path | str) -> None: ...

    def refresh(self) -> bool: ...

    def observe(
        self,
        query: str,
        vector: np.ndarray | None,
        skill: str | None,
        reward: float,
        *,
        version: int | None = None,
        key: str = "",
        index: Any | None = None,
    ) -> None: ...
