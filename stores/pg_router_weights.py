"""The learned router's weights of a library kept in Postgres, shared by every worker.

The bytes are the folder's (stores/router_weights.py `encode`/`decode`, checksummed); a save is
one transaction that inserts the next version under a per-library advisory lock (two workers
saving at once get two versions, never one torn row), and the live state is the newest version.
Old versions are pruned to the folder's KEEP_VERSIONS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from memento_skills.stores import pg_schema
from memento_skills.stores.router_weights import (
    ANY_VERSION,
    KEEP_VERSIONS,
    Saved,
    check_over,
    decode,
    encode,
)
from memento_skills.stores.store_url import connection

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS memento_router_weights (
        library text NOT NULL,
        version integer NOT NULL,
        sha256 text NOT NULL,
        data bytea NOT NULL,
        saved_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (library, version)
    )""",
)


class PgRouterWeights:
    """The router weights of library `library` in the database of `pool` (`where` names it)."""

    def __init__(self, pool: Any, library: str, *, where: str = ""):
        self.pool = pool
        self.library = library
        self.where = where or f"library {library!r}"
        pg_schema.ensure(pool, "router_weights", SCHEMA)

    def exists(self) -> bool:
        with connection(self.pool) as conn:
            row = conn.execute(
                "SELECT 1 FROM memento_router_weights WHERE library = %s LIMIT 1", (self.library,)
            ).fetchone()
        return row is not None

    def live_version(self) -> int | None:
        """The live version (one indexed read); None when nothing was ever saved."""
        with connection(self.pool) as conn:
            row = conn.execute(
                "SELECT max(version) FROM memento_router_weights WHERE library = %s",
                (self.library,),
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def save(
        self,
        arrays: dict[str, np.ndarray],
        header: dict[str, Any],
        *,
        over: int | None = ANY_VERSION,
    ) -> Saved:
        """Insert a new version and make it live; returns where it went. With `over`, the
        folder's check (StaleWeights if another save came first), under the same lock."""
        data, digest = encode(arrays, header)
        with connection(self.pool) as conn, conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('memento_router_weights'), hashtext(%s))",
                (self.library,),
            )
            row = conn.execute(
                "SELECT max(version) FROM memento_router_weights WHERE library = %s",
                (self.library,),
            ).fetchone()
            live = None if row is None or row[0] is None else int(row[0])
            check_over(live, over, f"{self.where} router weights")
            version = (live or 0) + 1
            conn.execute(
                "INSERT INTO memento_router_weights (library, version, sha256, data) "
                "VALUES (%s, %s, %s, %s)",
                (self.library, version, digest, data),
            )
            conn.execute(
                "DELETE FROM memento_router_weights WHERE library = %s AND version <= %s",
                (self.library, version - KEEP_VERSIONS),
            )
        return Saved(version, f"{self.where} router weights v{version:06d}", digest)

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any], int] | None:
        """(arrays, header, version) of the live state; None when nothing was ever saved."""
        with connection(self.pool) as conn:
            row = conn.execute(
                "SELECT version, sha256, data FROM memento_router_weights WHERE library = %s "
                "ORDER BY version DESC LIMIT 1",
                (self.library,),
            ).fetchone()
        if row is None:
            return None
        version, digest, data = int(row[0]), str(row[1]), bytes(row[2])
        where = f"{self.where} router weights v{version:06d}"
        fix = "rebuild them with `memento router train`"
        arrays, header = decode(data, digest, where, fix, recorded_in="the store")
        return arrays, header, version
