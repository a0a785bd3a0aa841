"""Creating the shared store's tables: once per database and process, serialised across processes.

Each module that keeps something in Postgres owns its `CREATE ... IF NOT EXISTS` statements and
hands them to `ensure`; two workers starting at once must not both create a table (Postgres
raises a unique violation on its catalog then), so the statements run under one advisory lock.
"""

from __future__ import annotations

import threading
from typing import Any

_SCHEMA_LOCK = 0x6D656D656E746F  # "memento": the advisory lock every schema change takes
_done: set[tuple[int, str]] = set()
_lock = threading.Lock()


def ensure(pool: Any, name: str, statements: tuple[str, ...]) -> None:
    """Run `statements` (idempotent DDL) on the pool's database unless this process did."""
    key = (id(pool), name)
    with _lock:
        if key in _done:
            return
        with pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in statements:
                conn.execute(statement)
        _done.add(key)
