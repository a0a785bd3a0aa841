"""Where the library and its indexes live, from the environment.

The seed skills ship read-only inside the package; the working library is a separate, writable
folder (default `~/.memento/skills`) seeded from them on first use, so learning never edits the
installed package and a user can point several projects at different libraries.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import SkillError
from memento_skills.stores.skill_store import SkillStore

CHROMA_URL_ENV = "MEMENTO_CHROMA_URL"
COLLECTION_ENV = "MEMENTO_CHROMA_COLLECTION"
STORE_URL_ENV = "MEMENTO_STORE_URL"
STORE_LIBRARY_ENV = "MEMENTO_STORE_LIBRARY"
DEFAULT_STORE_LIBRARY = "default"


def chroma_url_env() -> str:
    """$MEMENTO_CHROMA_URL as given, "" when unset: the default of Context and of SkillIndex."""
    return os.environ.get(CHROMA_URL_ENV, "")


def chroma_collection_env() -> str:
    """$MEMENTO_CHROMA_COLLECTION as given, "" when unset: the default of Context and SkillIndex."""
    return os.environ.get(COLLECTION_ENV, "")


def store_url_env() -> str:
    """$MEMENTO_STORE_URL as given, "" when unset (the folder library): Context's default."""
    return os.environ.get(STORE_URL_ENV, "")


def store_library_env() -> str:
    """$MEMENTO_STORE_LIBRARY, "default" when unset: the library's name within the store."""
    return os.environ.get(STORE_LIBRARY_ENV, "") or DEFAULT_STORE_LIBRARY


def memento_home() -> Path:
    return Path(os.environ.get("MEMENTO_HOME") or Path.home() / ".memento").expanduser()


def default_skills_dir() -> Path:
    env = os.environ.get("MEMENTO_SKILLS_DIR")
    return Path(env).expanduser() if env else memento_home() / "skills"


def default_index_dir() -> Path:
    env = os.environ.get("MEMENTO_INDEX_DIR")
    return Path(env).expanduser() if env else memento_home() / "index"


def seed_skills_dir() -> Path:
    return Path(str(files("memento_skills.seed_skills")))


def open_library(path: Path | str | None = None, *, seed: bool = True) -> SkillLibrary:
    """Open a library; a new (absent or empty) one is seeded with the packaged seed skills."""
    root = Path(path).expanduser() if path is not None else default_skills_dir()
    fresh = not root.exists() or not any(p for p in root.iterdir() if not p.name.startswith("."))
    library = SkillLibrary(root)
    if seed and fresh:
        from memento_skills.stores.packs import import_pack

        import_pack(library, seed_skills_dir(), provenance="seed", trusted=True)
    return library


def open_store(
    url: str,
    library: str = DEFAULT_STORE_LIBRARY,
    *,
    cache_dir: Path | str,
    skills_dir: Path | str | None = None,
    seed: bool = True,
) -> SkillStore:
    """The library a deployment names: the Postgres store library `library` at `url` (its
    local copy under `cache_dir`), or with an empty `url` the folder `skills_dir` as
    `open_library` opens it. A store library no write ever reached is seeded, once, however
    many workers open it at the same time."""
    if not url:
        return open_library(skills_dir, seed=seed)
    if not url.startswith(("postgresql://", "postgres://")):
        raise SkillError(
            f"store URL {url!r} is not a Postgres URL: give postgresql://USER@HOST:PORT/DB, "
            f"or unset {STORE_URL_ENV} to use the skills folder"
        )
    try:
        from memento_skills.stores.pg_store import PgSkillStore
    except ImportError:
        raise SkillError(
            f"{STORE_URL_ENV} names a Postgres store, but psycopg is not installed: "
            "pip install 'memento-skills[postgres]'"
        ) from None
    store = PgSkillStore(url, library=library, cache_dir=cache_dir)
    if seed:
        from memento_skills.stores.packs import import_pack

        seeds = seed_skills_dir()
        names = sorted(p.name for p in seeds.iterdir() if (p / "SKILL.md").is_file())
        # always through the seeds' locks: a worker opening while another seeds waits for
        # the whole seed, not only its first skills
        with store.lock(*names):
            if store.generation() == "0":
                import_pack(store, seeds, provenance="seed", trusted=True)
    return store
