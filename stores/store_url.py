"""Where a shared library lives: $MEMENTO_STORE_URL read, checked and connected to, one pool per
process, with errors that say which setting is wrong and how to fix it.

Empty means the folder library, as before (stores/settings.py reads the variables). A URL names
a Postgres database (`postgresql://user@host:5432/memento`); several libraries share one
database by name (`Context.store_library`, default $MEMENTO_STORE_LIBRARY or "default"). psycopg and psycopg-pool
are the optional extra `postgres` (`pip install memento-skills[postgres]`): a folder user never
needs them.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

from memento_skills.stores.settings import STORE_LIBRARY_ENV, STORE_URL_ENV

LIBRARY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""The name of a library within a store (Context.store_library's pattern)."""
CONNECT_TIMEOUT_S = 10.0
APPLICATION_NAME = "memento-shared"
"""How these connections show in pg_stat_activity."""
_EXAMPLE = "postgresql://user@127.0.0.1:5432/memento"
_UNSET = f"or unset {STORE_URL_ENV} to use the library folder"


class StoreUrlError(ValueError):
    """The store URL or library name is unusable as written (a bad input: exit 2)."""


class StoreUnreachable(ConnectionError):
    """The database the store URL names does not answer (exit 3, like an unreachable model)."""


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"^([a-z]+://[^:/@]*):[^@/]*@", r"\1:***@", url)


def check_store_url(url: str) -> str:
    """`url` if it names a Postgres database; StoreUrlError saying how to write one otherwise."""
    shown = redacted(url)
    if not re.match(r"^postgres(ql)?://", url):
        raise StoreUrlError(
            f"{STORE_URL_ENV}={shown!r} is not a Postgres URL: write it as {_EXAMPLE}, {_UNSET}"
        )
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise StoreUrlError(
            f"{STORE_URL_ENV} is set but psycopg is not installed: "
            f"`pip install 'memento-skills[postgres]'`, {_UNSET}"
        ) from None
    try:
        conninfo_to_dict(url)
    except Exception as e:  # psycopg.ProgrammingError: its message names the bad part
        detail = " ".join(str(e).split())
        raise StoreUrlError(
            f"{STORE_URL_ENV}={shown!r} cannot be read ({detail}): write it as {_EXAMPLE}"
        ) from None
    return url


def check_library_name(name: str) -> str:
    if not LIBRARY_NAME.fullmatch(name):
        raise StoreUrlError(
            f"{STORE_LIBRARY_ENV}={name!r} is not a library name: use 1-63 lowercase letters, "
            "digits, '_' or '-', starting with a letter or digit"
        )
    return name


_pools: dict[str, ConnectionPool[Any]] = {}
_pools_lock = threading.Lock()


def connection_pool(url: str) -> ConnectionPool[Any]:
    """The process's pool of connections to `url`, opened (and checked) on first use.

    Raises StoreUrlError for a URL that cannot name a database and StoreUnreachable, naming the
    variable and the fix, when the database does not answer within CONNECT_TIMEOUT_S.
    """
    check_store_url(url)
    with _pools_lock:
        pool = _pools.get(url)
        if pool is not None:
            return pool
        import psycopg
        from psycopg_pool import ConnectionPool

        try:  # one direct connection first: its error says why (a pool's wait() only times out)
            psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S)).close()
        except psycopg.Error as e:
            raise unreachable(url, e) from None
        pool = ConnectionPool(
            url,
            min_size=1,
            max_size=4,
            timeout=CONNECT_TIMEOUT_S,
            kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
            # a connection the server dropped (a restart, a failover) is replaced before use
            check=ConnectionPool.check_connection,
            name="memento-store",
            open=True,
        )
        _pools[url] = pool
        return pool


@contextlib.contextmanager
def connection(pool: ConnectionPool[Any]) -> Iterator[Any]:
    """A connection of `pool`; the database lost mid-use (or no connection free in time) is
    StoreUnreachable in one line, not a driver traceback."""
    import psycopg
    from psycopg_pool import PoolTimeout

    url = pool.conninfo if isinstance(pool.conninfo, str) else ""
    try:
        with pool.connection() as conn:
            yield conn
    except PoolTimeout as e:
        raise unreachable(url, e) from None
    except psycopg.OperationalError as e:
        if e.sqlstate is not None and not e.sqlstate.startswith("08"):
            raise  # a query's own failure (a deadlock, a cancel), not a lost database
        raise unreachable(url, e) from None


def unreachable(url: str, error: BaseException) -> StoreUnreachable:
    """The one-line error for a database that refused or did not answer."""
    detail = " ".join(str(error).split()) or type(error).__name__
    return StoreUnreachable(
        f"{STORE_URL_ENV}={redacted(url)!r}: cannot connect ({detail}): start Postgres there "
        f"or fix the URL (e.g. {_EXAMPLE}), {_UNSET}"
    )
