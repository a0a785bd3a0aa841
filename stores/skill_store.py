"""The seam between the skill library and its callers: what any backend of the library provides.

The nodes, the CLI and the evals type against `SkillStore`, never a backend. Two backends
implement it: `SkillLibrary` (stores/library.py, a folder guarded by file locks: the default)
and `PgSkillStore` (stores/pg_store.py, Postgres as the source of truth, each worker keeping a
materialised folder of the live versions). Both give the same guarantees, checked by one
contract suite (tests/stores/test_store_contract.py): a version appears whole or not at all, a
write never loses a concurrent one, history/diff/rollback/trials behave alike, and `root` holds
the live skills as real folders (`<root>/<name>/SKILL.md` + files) for the code that reads files
(the execute node, the sandbox, the index).

`generation()` is the cheap way to notice change: a value that moves whenever any write lands
through the store (in any process), read with one small file read or one indexed SELECT; a
caller that saw the same value last time may skip rescanning the library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from memento_skills.stores.mcp_config import McpServer
from memento_skills.stores.skill import Skill, SkillValidationError

if TYPE_CHECKING:
    from memento_skills.stores.library import LoadReport, VersionInfo


@runtime_checkable
class SkillStore(Protocol):
    """The skill library's public API, whatever holds the skills."""

    root: Path
    """A folder holding the live skills as `<root>/<name>/` (the folder backend's library itself,
    the Postgres backend's local materialised copy): read files there, never write them."""
    errors: list[SkillValidationError]
    """The malformed skills the last scan skipped."""
    recovered: list[str]
    """The skills whose unfinished trials opening the store took back."""

    # reading
    def generation(self) -> str: ...
    def scan(self) -> LoadReport: ...
    def skills(self) -> list[Skill]: ...
    def names(self) -> list[str]: ...
    def get(self, name: str) -> Skill: ...
    def exists(self, name: str) -> bool: ...
    def skill_dir(self, name: str) -> Path: ...
    def mcp_servers(self, skill: Skill) -> list[McpServer]: ...
    def list_files(self, name: str) -> list[str]: ...
    def read_file(self, name: str, rel: str) -> bytes: ...

    # writing
    def lock(self, *names: str, timeout: float | None = None) -> AbstractContextManager[None]: ...
    def create(self, skill: Skill, files: Mapping[str, bytes] | None = None) -> Skill: ...
    def update(
        self,
        name: str,
        *,
        files: Mapping[str, bytes] | None = None,
        remove_files: tuple[str, ...] = (),
        apply: Callable[[Skill], Mapping[str, object]] | None = None,
        **changes: object,
    ) -> Skill: ...
    def record_outcome(self, name: str, success: bool, *, key: str = "") -> Skill: ...
    def delete(self, name: str) -> None: ...
    def rename(self, old: str, new: str) -> Skill: ...

    # history
    def history(self, name: str) -> list[VersionInfo]: ...
    def read_version(self, name: str, version: int) -> Skill: ...
    def diff(self, name: str, a: int, b: int) -> str: ...
    def rollback(self, name: str, version: int) -> Skill: ...

    # trials: a change live while its gate vets it
    def trial(
        self, name: str, version: int, base_version: int | None
    ) -> AbstractContextManager[None]: ...
    def change_on_trial(
        self, name: str, base_version: int | None, change: str
    ) -> AbstractContextManager[None]: ...
    def find_change(self, name: str, change: str) -> tuple[int, bool] | None: ...
    def discard_change(self, name: str, change: str, base_version: int | None) -> bool: ...
    def take_back(self, name: str, version: int, base_version: int | None) -> bool: ...
    def recover_trials(self) -> list[str]: ...
