"""Long-lived objects the nodes share: chat models, the skill library, the retrieval index.

They are expensive to build (a local model server, a Chroma client, an ONNX session) and not
serialisable, so they live outside the graph state: built once per process from the run's
Context, or injected by an embedding application (and by tests, with a scripted model).

With `Context.store_url` set the library is a shared store's (stores/shared_store.py): its skills,
regression cases, run log and router weights are the ones every worker uses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel

from memento_skills.graph.context import Context
from memento_skills.graph.models import ROLES, UsageTracker, chat_model, resolve_settings
from memento_skills.nodes.routing.hybrid import Routable, routable
from memento_skills.stores.cases import Case, Cases
from memento_skills.stores.settings import default_index_dir, default_skills_dir, open_library
from memento_skills.stores.skill import Skill, SkillError
from memento_skills.stores.skill_store import SkillStore

if TYPE_CHECKING:
    from memento_skills.stores.shared_store import SharedLibrary


class Resources:
    """Per-process cache of models, libraries and indexes, keyed by the settings that made them."""

    def __init__(
        self,
        *,
        chat_models: Mapping[str, BaseChatModel] | None = None,
        library: SkillStore | None = None,
        index: Any | None = None,
        approve_script: Callable[[str], bool] | None = None,
        router: Any | None = None,
    ):
        unknown = set(chat_models or {}) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown model roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
        self._models: dict[Any, BaseChatModel] = dict(chat_models or {})
        self._library = library
        self._index = index
        self._libraries: dict[Path, SkillStore] = {}
        self._indexes: dict[tuple[Path, Path, str, str], Any] = {}
        self._lock = threading.Lock()
        self.approve_script = approve_script
        self.usage = UsageTracker()
        self.router: Any = router  # the builder makes the default router when this is None
        self._synced: dict[int, str] = {}  # id(index) -> library signature last synced
        self.training_cases: Callable[[], list[Case]] | None = None
        """The learner's current training tasks (the round's block), with their golds: the
        gate replays a script skill on those of its kind (docs/decisions.md#script-skills).
        None outside a learning run."""
        # (id(library), id(index)) -> the library's last scan: see `synced_index`
        self._scans: dict[tuple[int, int], _Scan] = {}
        self.scans = 0  # full library scans made by synced_index (the cost it avoids)
        self.reloads = 0  # skills it reloaded one by one instead, as the change log named them

    def model(self, role: str, ctx: Context) -> BaseChatModel:
        if role in self._models:
            return self._models[role]
        name = getattr(ctx, f"{role}_model", "") or None
        key = (role, name, ctx.base_url or None)
        with self._lock:
            if key not in self._models:
                settings = resolve_settings(
                    role,
                    **({"model": name} if name else {}),
                    **({"base_url": ctx.base_url} if ctx.base_url else {}),
                )
                self._models[key] = chat_model(role, settings)
            return self._models[key]

    def shared(self, ctx: Context) -> SharedLibrary | None:
        """The shared store's library the run names (`store_url`, `store_library`); None for a
        library folder: when a library was injected, or the run names its folder (`skills_dir`,
        as `memento run --dir` and a learning run's own library do), or no store is set."""
        if self._library is not None or ctx.skills_dir or not ctx.store_url:
            return None
        from memento_skills.stores.shared_store import open_shared

        return open_shared(ctx.store_url, ctx.store_library)

    def library(self, ctx: Context) -> SkillStore:
        if self._library is not None:
            return self._library
        shared = self.shared(ctx)
        if shared is not None:
            return shared.skills
        root = Path(ctx.skills_dir).expanduser() if ctx.skills_dir else default_skills_dir()
        with self._lock:
            if root not in self._libraries:
                self._libraries[root] = open_library(root)
            return self._libraries[root]

    def index(self, ctx: Context) -> Any:
        if self._index is not None:
            return self._index
        from memento_skills.stores.index import SkillIndex

        root = Path(ctx.index_dir).expanduser() if ctx.index_dir else default_index_dir()
        library = self.library(ctx).root
        key = (root, library, ctx.chroma_url, ctx.chroma_collection)
        with self._lock:
            if key not in self._indexes:
                self._indexes[key] = SkillIndex(
                    root,
                    library=library,
                    chroma_url=ctx.chroma_url or None,
                    collection=ctx.chroma_collection or None,
                )
            return self._indexes[key]

    def cases(self, ctx: Context) -> Cases:
        shared = self.shared(ctx)
        if shared is not None:
            return shared.cases
        from memento_skills.stores.cases import CaseStore

        return CaseStore(self.library(ctx).root)

    def run_log(self, ctx: Context) -> Any:
        """The run's log: the file `run_log` names; else the shared store's; else
        $MEMENTO_HOME/runs.jsonl."""
        from memento_skills.stores.run_log import RunLog
        from memento_skills.stores.settings import memento_home

        shared = None if ctx.run_log else self.shared(ctx)
        if shared is not None:
            return shared.run_log
        return RunLog(ctx.run_log or memento_home() / "runs.jsonl")

    def synced_index(self, ctx: Context) -> tuple[Any, Routable]:
        """The index, first brought in line with the library, and the skills a router may offer
        by name (made once per look at the library, not per task).

        The library is not rescanned (a stat per skill) before every task. While its generation
        stays put (one small read) the skills of the last look serve; when it moved (a write
        through the library, by any process), the skills the writes touched are reloaded, as
        the library's change log names them, or everything is rescanned when it cannot say.
        Edits made outside the library (by hand, a `git pull`) are seen by the full rescan run
        once `ctx.library_rescan_s` passed since the last. The Chroma comparison runs only when
        the set of (name, content hash) differs from the last sync this process made, or when
        the collection's mark (one metadata read) says another process synced it since.
        """
        library = self.library(ctx)
        index = self.index(ctx)
        key = (id(library), id(index))
        generation = library.generation()  # read before looking: a write after it moves it
        clock = time.monotonic()
        scan = self._scans.get(key)
        if scan is None or clock - scan.at >= ctx.library_rescan_s:
            scan = self._scans[key] = self._full_scan(library, generation, clock)
        elif scan.generation != generation:
            scan = self._scans[key] = self._changed(library, scan, generation, clock)
        if self._synced.get(id(index)) != scan.signature or index.changed_since_sync():
            index.sync(scan.skills)
            self._synced[id(index)] = scan.signature
        return index, scan.offered

    def _full_scan(self, library: SkillStore, generation: str, clock: float) -> _Scan:
        token = library.changes_since("")[0]  # read before the scan, as the generation is
        skills = library.skills()
        self.scans += 1
        by_name = {s.name: s for s in skills}
        signature = library_signature(skills)
        return _Scan(generation, skills, by_name, routable(by_name), signature, clock, token)

    def _changed(self, library: SkillStore, scan: _Scan, generation: str, clock: float) -> _Scan:
        """`scan` brought up to date by reloading only the skills written since it."""
        token, names = library.changes_since(scan.token)
        if names is None:
            return self._full_scan(library, generation, clock)
        by_name, offered = dict(scan.by_name), Routable(scan.offered)
        members, content = False, False
        for name in names:
            old = by_name.pop(name, None)
            offered.pop(name, None)
            try:
                new = library.get(name)
            except SkillError:  # deleted, renamed away or malformed: as a scan would, skip it
                new = None
            if new is not None:
                by_name[name] = new
                offered.update(routable({name: new}))
            if (old is None) != (new is None):
                members = True
            elif old is not None and new is not None and old.content_hash != new.content_hash:
                content = True
        if members:  # in the order a scan gives
            by_name, offered = dict(sorted(by_name.items())), Routable(sorted(offered.items()))
        skills = list(by_name.values())
        signature = library_signature(skills) if members or content else scan.signature
        self.reloads += len(names)
        # the full rescan for edits outside the library stays due from the last one
        return _Scan(generation, skills, by_name, offered, signature, scan.at, token)


def library_signature(skills: list[Any]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for s in sorted(skills, key=lambda s: s.name):
        digest.update(f"{s.name}\0{s.content_hash}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class _Scan:
    """What synced_index last saw of a library: the generation read before, its skills."""

    generation: str
    skills: list[Skill]
    by_name: dict[str, Skill]
    offered: Routable  # by_name less the deprecated: what route_skill ranks
    signature: str
    at: float  # when the last full scan ran
    token: str  # the library's change-log position read before it
