"""The typed seam through which the execute node reaches the long-lived objects it uses.

The builder injects one (graph/resources.py's `Resources` fits); the node looks nothing up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from langchain_core.language_models import BaseChatModel

from memento_skills.graph.context import Context
from memento_skills.stores.skill_store import SkillStore


class ExecuteResources(Protocol):
    """The executor's chat model, the skill library, and the operator's script approval."""

    @property
    def approve_script(self) -> Callable[[str], bool] | None: ...

    def model(self, role: str, ctx: Context) -> BaseChatModel: ...

    def library(self, ctx: Context) -> SkillStore: ...
