"""A real Postgres for tests, from the `pgserver` wheel (it ships the server's binaries).

The server listens on a unix socket in its throwaway data folder (no port to collide on) and
stops when the session ends; each test gets a database of its own with `fresh_database`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def serve_postgres(data_dir: Path) -> Iterator[Any]:
    """A running Postgres in `data_dir`; yields the pgserver handle (`get_uri(db)`)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent))  # platformdirs warns without
    import pgserver

    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()


def fresh_database(server: Any) -> str:
    """The URL of a new, empty database on `server`."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return str(server.get_uri(name))
