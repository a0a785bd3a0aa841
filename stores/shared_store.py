"""A library kept in a shared store (Postgres), with everything its workers share.

`open_shared(url, library)` gives the skills (`PgSkillStore`, stores/pg_store.py), the regression
cases, the run log and the router weights of one library in one database, opened once per
process. The skills are mirrored into a local folder per worker (the store's `root`), where the
execute node, the sandbox and the index read files as they read a library folder; that copy holds
the library's id in the store, so every worker's index uses one Chroma collection for it.
"""

from __future__ import annotations

import hashlib
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


def database_key(url: str) -> str:
    """Which database `url` names (host, port, database; not who connects): a short hash."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(url)
    place = "\0".join(str(info.get(k, "")) for k in ("host", "hostaddr", "port", "dbname"))
    return hashlib.sha256(place.encode()).hexdigest()[:12]


def describe(url: str, library: str) -> str:
    """How messages name a store library: the database (no password) and the library's name."""
    from memento_skills.stores.store_url import redacted

    return f"library {library!r} in {redacted(url)}"


def default_cache_dir(url: str, library: str) -> Path:
    """Where this machine keeps its copy of the library's live skills, per database and library."""
    return memento_home() / "store-cache" / f"{database_key(url)}-{library}"


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
        from memento_skills.stores.pg_store import PgSkillStore
        from memento_skills.stores.router_weights import share_weights

        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(url, library)
        skills = PgSkillStore(url, library=library, cache_dir=cache)
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
        if seed and not skills.names():
            _seed(skills)
        _opened[key] = shared
        return shared


def _seed(skills: SkillStore) -> None:
    """Import the seed skills; another worker seeding at the same time only wins some of them."""
    from memento_skills.stores.packs import import_pack
    from memento_skills.stores.settings import seed_skills_dir
    from memento_skills.stores.skill import SkillExistsError

    for _ in range(3):
        try:
            import_pack(skills, seed_skills_dir(), provenance="seed", trusted=True)
            return
        except SkillExistsError:
            continue  # the other worker created one first: the next pass skips it
