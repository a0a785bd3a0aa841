"""A library kept in a shared store (Postgres), with everything its workers share.

`open_shared(url, library)` gives the skills (`PgSkillStore`, stores/pg_store.py), the regression
cases, the run log and the router weights of one library in one database, opened once per
process. The skills are mirrored into a local folder per worker (the store's `root`), where the
execute node, the sandbox and the index read files as they read a library folder; that copy holds
the library's id in the store, so every worker's index uses one Chroma collection for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from memento_skills.stores.settings import memento_home
from memento_skills.stores.store_url import check_library_name, connection_pool

if TYPE_CHECKING:
    from memento_skills.stores.pg_cases import PgCaseStore
    from memento_skills.stores.pg_router_weights import PgRouterWeights
    from memento_skills.stores.pg_run_log import PgRunLog
    from memento_skills.stores.skill_store import SkillStore


@dataclass(frozen=True)
class SharedLibrary:
    """One library of a shared store: its skills and what its workers learn from."""

    url: str
    library: str
    skills: SkillStore
    cases: PgCaseStore
    run_log: PgRunLog
    router_weights: PgRouterWeights

    @property
    def where(self) -> str:
        return describe(self.url, self.library)


_opened: dict[tuple[str, str], SharedLibrary] = {}
_lock = threading.Lock()


def describe(url: str, library: str) -> str:
    """How messages name a store library: the database (no password) and the library's name."""
    from memento_skills.stores.store_url import redacted

    return f"library {library!r} in {redacted(url)}"


def default_cache_dir() -> Path:
    """Where this machine keeps its copies of store libraries' live skills (one folder each,
    named by the library's id in its store)."""
    return memento_home() / "store-cache"


def open_shared(
    url: str, library: str, *, cache_dir: Path | str | None = None, seed: bool = True
) -> SharedLibrary:
    """The library `library` of the store at `url`, opened once per process; a new (empty) one
    is seeded with the packaged seed skills, as a new library folder is.

    Raises StoreUrlError (a URL or name that cannot be right) or StoreUnreachable (the database
    does not answer), each naming the setting to fix.
    """
    check_library_name(library)
    key = (url, library)
    with _lock:
        found = _opened.get(key)
        if found is not None:
            return found
        pool = connection_pool(url)
        from memento_skills.stores.pg_cases import PgCaseStore
        from memento_skills.stores.pg_router_weights import PgRouterWeights
        from memento_skills.stores.pg_run_log import PgRunLog
        from memento_skills.stores.router_weights import share_weights
        from memento_skills.stores.settings import open_store

        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        skills = open_store(url, library, cache_dir=cache, seed=seed)
        where = describe(url, library)
        shared = SharedLibrary(
            url=url,
            library=library,
            skills=skills,
            cases=PgCaseStore(pool, library, skills.root),
            run_log=PgRunLog(pool, library),
            router_weights=PgRouterWeights(pool, library, where=where),
        )
        share_weights(skills.root, shared.router_weights)
        _opened[key] = shared
        return shared
