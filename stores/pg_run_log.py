"""The run log of a library kept in Postgres: every worker appends to and learns from one log.

The same contract as the file (stores/run_log.py): records come back in the order they were
appended, and a record appended with a key is appended once, whichever worker replays it (a
unique index on the key, so two workers racing on one key cannot both win). Records are kept as
the JSON text the file would hold, so a record reads back with its keys in their order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from memento_skills.stores import pg_schema
from memento_skills.stores.store_url import connection

PAGE = 1000
"""Records read per query when iterating the log."""

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS memento_run_log (
        library text NOT NULL,
        seq bigserial,
        key text,
        record text NOT NULL,
        PRIMARY KEY (library, seq)
    )""",
    """CREATE UNIQUE INDEX IF NOT EXISTS memento_run_log_key
        ON memento_run_log (library, key) WHERE key IS NOT NULL""",
)


class PgRunLog:
    """The run log of library `library` in the database of `pool`."""

    def __init__(self, pool: Any, library: str):
        self.pool = pool
        self.library = library
        pg_schema.ensure(pool, "run_log", SCHEMA)

    def append(self, record: dict[str, Any], *, key: str = "") -> bool:
        """Append `record`; with a `key` (stored in the record as "key"), only if no record
        holds it yet. True when appended."""
        if key:
            record = {**record, "key": key}
        line = json.dumps(record, ensure_ascii=False, default=str)
        with connection(self.pool) as conn:
            cur = conn.execute(
                "INSERT INTO memento_run_log (library, key, record) VALUES (%s, %s, %s) "
                "ON CONFLICT (library, key) WHERE key IS NOT NULL DO NOTHING",
                (self.library, key or None, line),
            )
            return bool(cur.rowcount)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The records in order, read a page at a time (a log of a million runs is not held in
        memory, and no connection is held while the caller works on a page)."""
        last = 0
        while True:
            with connection(self.pool) as conn:
                rows = conn.execute(
                    "SELECT seq, record FROM memento_run_log WHERE library = %s AND seq > %s "
                    "ORDER BY seq LIMIT %s",
                    (self.library, last, PAGE),
                ).fetchall()
            for seq, line in rows:
                last = int(seq)
                yield json.loads(line)
            if len(rows) < PAGE:
                return

    def records(self) -> list[dict[str, Any]]:
        return list(self)
