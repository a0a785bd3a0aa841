"""memento-skills: a LangGraph agent that learns by writing and refining its own skill library.

The public names are imported lazily so that `import memento_skills` stays cheap (Chroma and
onnxruntime load only when an index is opened).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Skill": "memento_skills.stores.skill",
    "SkillError": "memento_skills.stores.skill",
    "SkillValidationError": "memento_skills.stores.skill",
    "SkillLibrary": "memento_skills.stores.library",
    "SkillStore": "memento_skills.stores.skill_store",
    "open_library": "memento_skills.stores.settings",
    "open_store": "memento_skills.stores.settings",
    "SkillIndex": "memento_skills.stores.index",
    "IndexSetupError": "memento_skills.stores.chroma",
    "import_pack": "memento_skills.stores.packs",
    "export_pack": "memento_skills.stores.packs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memento_skills' has no attribute {name!r}")
    return getattr(import_module(module), name)
