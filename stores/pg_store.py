"""The skill library on Postgres: one source of truth that many workers read, write and learn into.

Postgres holds every version; each worker keeps a local folder of the live versions (its
materialised copy, under the worker's cache dir) so the code that reads files (the execute node,
the sandbox running skill scripts, the index) reads them exactly as it reads the folder library.
The copy is brought in line when `generation()` moves, for the skills whose row moved only
(stores/pg_copy.py keeps it).

Tables (one library per `library` value, so many libraries share one database):

    memento_skill_libraries (library, id, generation)   the counter every write bumps, last
    memento_skills          (library, name, version, successes, failures, outcomes, stamp)
                            the live row of each name (version NULL: deleted, history kept);
                            stamp = the generation of its last write, so a worker reads only
                            the rows moved since it last looked
    memento_skill_versions  (library, name, version, skill_md)  every version, unique per number
    memento_skill_files     (library, name, version, rel, sha256, mode)  a version's files
    memento_skill_blobs     (library, sha256, data)     file contents, stored once by hash
    memento_skill_trials    (library, name, record)     a change live while its gate vets it

Guarantees, as the folder's (tests/stores/test_store_contract.py runs on both):
- a write is one transaction: a version appears whole or not at all, and a writer killed
  mid-write leaves nothing (Postgres rolls its transaction back when its connection drops);
- optimistic concurrency: `update` reads the live version, computes its changes (`apply=`)
  without holding anything, then writes in a transaction that locks the live row (`SELECT ...
  FOR UPDATE`) and refuses the write if the live version is no longer the one it read; `update`
  then reads again and retries, so no concurrent update is lost;
- a utility count is one `UPDATE ... SET successes = successes + 1`, keyed like the folder's;
- `lock(names)` is a session advisory lock that every write of those names also takes (for the
  length of its transaction), so a caller holding it excludes other writers as the folder's file
  lock does; a trial holds an advisory lock of its own, which Postgres releases when the process
  dies, so `recover_trials` tells a running trial from a dead one without a timeout.

The generation counter is bumped as the last lock a write takes, so write transactions commit in
the order of their stamps and "rows with a stamp above the last generation seen" is exact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg_pool import ConnectionPool, PoolTimeout

from memento_skills.stores.library import (
    MAX_AUX_FILE_BYTES,
    META_DIR,
    OUTCOME_KEYS,
    LoadReport,
    SkillLockedError,
    VersionInfo,
    check_changes,
    check_files,
    content_changed,
    render_diff,
    version_info,
)
from memento_skills.stores.mcp_config import McpServer
from memento_skills.stores.paths import read_regular_file, resolve_inside, safe_relative
from memento_skills.stores.paths import safe_skill_dir as _safe_skill_dir
from memento_skills.stores.pg_copy import LiveRow, LocalCopy
from memento_skills.stores.skill import (
    LIFECYCLES,
    SKILL_FILE,
    Lifecycle,
    Lift,
    Skill,
    SkillError,
    SkillExistsError,
    SkillNotFoundError,
    SkillValidationError,
    Utility,
    check_name,
    now,
    parse_skill,
    serialise,
)
from memento_skills.stores.skill_folder import folder_files, folder_mcp_servers

LIBRARY_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62})$")
WRITE_LOCKS = 0x4D454D01
"""Advisory-lock class of the per-skill write locks (the other key: a hash of library/name)."""
TRIAL_LOCKS = 0x4D454D02
"""Advisory-lock class of the trials: held by the process vetting a change while it runs."""
SCHEMA_LOCK = 0x4D454D00
"""Advisory-lock class taken while creating the tables."""
POOL_WAIT_S = 30.0
"""How long a call waits for a free pooled connection (at least; a longer lock wait extends it)."""
APPLICATION_NAME = "memento-skill-store"
"""How the store's connections name themselves to the server (pg_stat_activity)."""
NEW_FILE_MODE = 0o644
"""The mode of a file a write adds (the folder's, under the usual umask)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS memento_skill_libraries (
    library text PRIMARY KEY,
    id text NOT NULL,
    generation bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS memento_skills (
    library text NOT NULL,
    name text NOT NULL,
    version integer,
    successes integer NOT NULL DEFAULT 0,
    failures integer NOT NULL DEFAULT 0,
    outcomes text[] NOT NULL DEFAULT '{}',
    stamp bigint NOT NULL,
    PRIMARY KEY (library, name)
);
CREATE INDEX IF NOT EXISTS memento_skills_stamp ON memento_skills (library, stamp);
CREATE TABLE IF NOT EXISTS memento_skill_versions (
    library text NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    skill_md bytea NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (library, name, version)
);
CREATE TABLE IF NOT EXISTS memento_skill_blobs (
    library text NOT NULL,
    sha256 text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (library, sha256)
);
CREATE TABLE IF NOT EXISTS memento_skill_files (
    library text NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    rel text NOT NULL,
    sha256 text NOT NULL,
    mode integer NOT NULL,
    PRIMARY KEY (library, name, version, rel),
    FOREIGN KEY (library, name, version)
        REFERENCES memento_skill_versions (library, name, version)
        ON DELETE CASCADE ON UPDATE CASCADE,
    FOREIGN KEY (library, sha256) REFERENCES memento_skill_blobs (library, sha256)
);
CREATE INDEX IF NOT EXISTS memento_skill_files_blob ON memento_skill_files (library, sha256);
CREATE TABLE IF NOT EXISTS memento_skill_trials (
    library text NOT NULL,
    name text NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (library, name)
);
"""

_T = TypeVar("_T")
FileRef = tuple[str, int]
"""A version's file: the sha256 of its bytes (in memento_skill_blobs) and its mode."""


class LostStoreError(SkillError):
    """The connection to the store broke (a restart, a network cut); what was in flight rolled
    back, or (for a write whose answer was lost) may have committed."""


class StaleWriteError(SkillError):
    """A write based on a version that is no longer live: refused whole (`update` retries)."""


class _Held(threading.local):
    """This thread's advisory write locks: one connection holds them, with a count per name."""

    def __init__(self) -> None:
        self.conn: psycopg.Connection[Any] | None = None
        self.exit: contextlib.ExitStack[Any] | None = None
        self.counts: dict[str, int] = {}


def safe_url(url: str) -> str:
    """`url` without its password, to name in messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PgSkillStore:
    """A skill library in Postgres, read through a local materialised folder (see module doc)."""

    def __init__(
        self,
        url: str,
        *,
        library: str = "default",
        cache_dir: Path | str,
        lock_timeout_s: float = 30.0,
        max_connections: int = 8,
    ):
        if not LIBRARY_NAME.match(library):
            raise SkillError(
                f"store library name {library!r} is not usable: give 1-63 lowercase letters, "
                "digits, '-' or '_', starting with a letter or digit"
            )
        self.url = url
        self.library = library
        self._where = f"store library {library!r} at {safe_url(url)}"
        self._lock_timeout_s = lock_timeout_s
        self._max_connections = max_connections
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                library_uid = self._ensure_schema(conn)
        except psycopg.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SkillError(
                f"cannot open the skill store at {safe_url(url)}: {first}; start Postgres there "
                "or fix MEMENTO_STORE_URL"
            ) from None
        self.library_id = library_uid
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
            open=False,
            timeout=max(lock_timeout_s, POOL_WAIT_S),
            name=f"memento-{library}",
        )
        try:
            self._pool.open(wait=True, timeout=30)
        except PoolTimeout:
            self._pool.close()
            raise SkillError(
                f"cannot open connections to the skill store at {safe_url(url)} within 30s: "
                "is it over its connection limit?"
            ) from None
        self.root = Path(cache_dir).expanduser().absolute() / library_uid
        self._copy = LocalCopy(self.root, library_uid)
        self._held = _Held()
        self._refresh_lock = threading.Lock()
        self._seen = -1  # the generation the copy is in line with
        self.errors: list[SkillValidationError] = []
        self._refresh()
        self.recovered = self.recover_trials()

    def __repr__(self) -> str:
        return f"PgSkillStore({self._where})"

    def close(self) -> None:
        """Close the connection pool (the materialised folder stays, for the next open)."""
        self._pool.close()

    def __enter__(self) -> PgSkillStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- setup

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> str:
        """Create the tables if missing (serialised: concurrent CREATE IF NOT EXISTS can clash)
        and this library's row; returns the library's id."""
        with conn.transaction():
            # DDL, even IF NOT EXISTS, locks the tables against writers: run it once only
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (SCHEMA_LOCK,))
            made = conn.execute("SELECT to_regclass('memento_skill_trials')").fetchone()
            if made is None or made[0] is None:
                conn.execute(SCHEMA)
            conn.execute(
                "INSERT INTO memento_skill_libraries (library, id) VALUES (%s, %s) "
                "ON CONFLICT (library) DO NOTHING",
                (self.library, f"{self.library}-{uuid.uuid4().hex[:12]}"),
            )
            row = conn.execute(
                "SELECT id FROM memento_skill_libraries WHERE library = %s", (self.library,)
            ).fetchone()
        assert row is not None
        return str(row[0])

    # ----------------------------------------------------------------- connections

    @contextlib.contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection holding this thread's write locks, else one from the pool; a lost
        server is a one-line SkillError (the write in flight rolled back whole)."""
        try:
            if self._held.conn is not None:
                yield self._held.conn
                return
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as e:
            if e.sqlstate is not None and not e.sqlstate.startswith(("08", "57P")):
                raise  # a server answer (a lock timeout, say), handled by the caller
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            with contextlib.suppress(Exception):
                self._pool.check()  # drop the other dead connections now, not one per call
            raise LostStoreError(
                f"lost the skill store at {safe_url(self.url)}: {first}; a write in flight "
                "landed whole or not at all: check and retry once the server is back"
            ) from None
        except PoolTimeout:
            raise SkillError(
                f"no connection to the skill store at {safe_url(self.url)} within "
                f"{max(self._lock_timeout_s, POOL_WAIT_S)}s: is the server up and not over its "
                "connection limit?"
            ) from None

    @contextlib.contextmanager
    def _tx(self, *names: str) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction holding the write locks of `names` until it ends."""
        try:
            with self._conn() as conn, conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{int(self._lock_timeout_s * 1000)}ms'")
                for name in sorted(set(names)):
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                        (WRITE_LOCKS, f"{self.library}/{name}"),
                    )
                yield conn
        except pg_errors.LockNotAvailable:
            raise SkillLockedError(
                f"timed out after {self._lock_timeout_s}s waiting to write {sorted(set(names))} "
                f"in the {self._where}: another worker holds it; retry"
            ) from None

    @contextlib.contextmanager
    def lock(self, *names: str, timeout: float | None = None) -> Iterator[None]:
        """Hold the write locks of `names` (re-entrant in a thread; every write takes them too)."""
        for name in names:
            self.skill_dir(name)
        held = self._held
        wait = self._lock_timeout_s if timeout is None else timeout
        if held.conn is None:
            stack = contextlib.ExitStack()
            held.conn = stack.enter_context(self._pool.connection())
            held.exit = stack
        conn = held.conn
        taken: list[str] = []
        try:
            for name in sorted(set(names) - set(held.counts)):
                conn.execute(f"SET lock_timeout = '{max(1, int(wait * 1000))}ms'")
                try:
                    conn.execute(
                        "SELECT pg_advisory_lock(%s, hashtext(%s))",
                        (WRITE_LOCKS, f"{self.library}/{name}"),
                    )
                except pg_errors.LockNotAvailable:
                    raise SkillLockedError(
                        f"timed out after {wait}s waiting for the write lock of {name!r} in the "
                        f"{self._where}: another worker is writing this skill; retry"
                    ) from None
                finally:
                    conn.execute("SET lock_timeout = 0")
                held.counts[name] = 0
                taken.append(name)
            for name in set(names):
                held.counts[name] += 1
            try:
                yield
            finally:
                for name in set(names):
                    held.counts[name] -= 1
        finally:
            for name in [n for n, c in held.counts.items() if c <= 0]:
                del held.counts[name]
                conn.execute(
                    "SELECT pg_advisory_unlock(%s, hashtext(%s))",
                    (WRITE_LOCKS, f"{self.library}/{name}"),
                )
            if not held.counts and held.exit is not None:
                exit_stack, held.conn, held.exit = held.exit, None, None
                exit_stack.close()

    # ----------------------------------------------------------------- reading

    def generation(self) -> str:
        """The library's write counter: one indexed SELECT."""

        def read() -> str:
            with self._conn() as conn:
                return str(self._generation(conn))

        return self._reading(read)

    def _reading(self, read: Callable[[], _T]) -> _T:
        """Run a read, again on a fresh connection if the server dropped the one it had (a
        restart): the pool discards each dead connection as it finds it. Writes are never
        run twice this way, since a lost answer may hide a commit."""
        for _ in range(self._max_connections):
            try:
                return read()
            except LostStoreError:
                continue
        return read()

    def changes_since(self, token: str) -> tuple[str, set[str] | None]:
        """The skills written (by any worker) since `token`, a generation this store gave: the
        names whose row is stamped after it, in one snapshot with the generation now. None for
        the names when only a full scan can tell (a token from elsewhere, a library made anew);
        "" asks for a first token. As the folder's change log (stores/change_log.py)."""

        def read() -> tuple[str, set[str] | None]:
            with self._conn() as conn, self._snapshot(conn):
                gen = self._generation(conn)
                held = int(token) if token.isdigit() else -1
                if held < 0 or held > gen:
                    return str(gen), None
                moved = conn.execute(
                    "SELECT name FROM memento_skills WHERE library = %s AND stamp > %s",
                    (self.library, held),
                ).fetchall()
                return str(gen), {str(r[0]) for r in moved}

        return self._reading(read)

    @contextlib.contextmanager
    def _snapshot(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Reads that agree with each other: one read-only repeatable-read transaction, unless
        the connection is already in one (a held write lock's)."""
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            yield
            return
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def _generation(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(
            "SELECT generation FROM memento_skill_libraries WHERE library = %s", (self.library,)
        ).fetchone()
        return int(row[0]) if row else 0

    def scan(self) -> LoadReport:
        """The live skills and the malformed ones, after bringing the local copy in line."""
        self._refresh()
        with self._refresh_lock:  # another thread's refresh may be changing the dict
            parsed = sorted(self._copy.parsed.items())
        return LoadReport([s for _, s in parsed if isinstance(s, Skill)], list(self.errors))

    def skills(self) -> list[Skill]:
        return self.scan().skills

    def names(self) -> list[str]:
        return [s.name for s in self.skills()]

    def get(self, name: str) -> Skill:
        """The live skill `name`. Raises SkillNotFoundError, or SkillValidationError if malformed."""
        self.skill_dir(name)
        self._refresh()
        result = self._copy.parsed.get(name)
        if result is None:
            raise SkillNotFoundError(f"no skill named {name!r} in the {self._where}")
        if isinstance(result, SkillValidationError):
            raise result
        return result

    def exists(self, name: str) -> bool:
        self.skill_dir(name)
        self._refresh()
        return name in self._copy.rows

    def skill_dir(self, name: str) -> Path:
        """The live skill's folder in the local copy (read it; never write it)."""
        return _safe_skill_dir(self.root, name)

    def mcp_servers(self, skill: Skill) -> list[McpServer]:
        return folder_mcp_servers(self.skill_dir(skill.name), skill)

    def list_files(self, name: str) -> list[str]:
        folder = self.skill_dir(name)
        self._refresh()
        return folder_files(folder)

    def read_file(self, name: str, rel: str) -> bytes:
        folder = self.skill_dir(name)
        self._refresh()
        path = resolve_inside(folder, rel)
        if not path.is_file():
            raise FileNotFoundError(f"skill {name!r} has no file {rel!r}")
        return read_regular_file(path, MAX_AUX_FILE_BYTES)

    # ----------------------------------------------------------------- the local copy

    def _refresh(self) -> None:
        """Bring the local copy in line with the store: nothing but one SELECT when the
        generation has not moved; else the rows moved since, and only their folders."""
        self._reading(self._refresh_once)

    def _refresh_once(self) -> None:
        with self._refresh_lock:
            with self._conn() as conn:
                if self._generation(conn) == self._seen:
                    return
                with self._snapshot(conn):  # the generation, its rows and their texts agree
                    gen = self._refresh_rows(conn)
            if self._seen < 0:  # the first look: folders of skills the store no longer has
                self._copy.drop_strays()
            self._seen = gen
            self.errors = list(self._copy.errors)

    def _refresh_rows(self, conn: psycopg.Connection[Any]) -> int:
        """Apply the rows moved since the generation last seen; returns the generation now."""
        gen = self._generation(conn)
        moved = conn.execute(
            "SELECT name, version, successes, failures, outcomes, stamp "
            "FROM memento_skills WHERE library = %s AND stamp > %s",
            (self.library, self._seen),
        ).fetchall()
        rows = {r[0]: LiveRow(r[1], r[2], r[3], tuple(r[4]), r[5]) for r in moved}
        live = {n: r.version for n, r in rows.items() if r.version is not None}
        texts = self._skill_texts(conn, live)
        self._copy.apply(rows, texts, lambda versions: self._file_contents(conn, versions))
        return gen

    def _skill_texts(
        self, conn: psycopg.Connection[Any], versions: Mapping[str, int | None]
    ) -> dict[str, bytes]:
        if not versions:
            return {}
        names = list(versions)
        found = conn.execute(
            "SELECT v.name, v.skill_md FROM memento_skill_versions v "
            "JOIN unnest(%s::text[], %s::int[]) AS w(name, version) "
            "ON v.name = w.name AND v.version = w.version WHERE v.library = %s",
            (names, [versions[n] for n in names], self.library),
        ).fetchall()
        return {str(n): bytes(md) for n, md in found}

    def _file_contents(
        self, conn: psycopg.Connection[Any], versions: Mapping[str, int]
    ) -> dict[str, dict[str, tuple[int, bytes]]]:
        names = list(versions)
        out: dict[str, dict[str, tuple[int, bytes]]] = {n: {} for n in names}
        for name, rel, mode, data in conn.execute(
            "SELECT f.name, f.rel, f.mode, b.data FROM memento_skill_files f "
            "JOIN unnest(%s::text[], %s::int[]) AS w(name, version) "
            "ON f.name = w.name AND f.version = w.version "
            "JOIN memento_skill_blobs b ON b.library = f.library AND b.sha256 = f.sha256 "
            "WHERE f.library = %s",
            (names, [versions[n] for n in names], self.library),
        ):
            out[str(name)][str(rel)] = (int(mode), bytes(data))
        return out

    # ----------------------------------------------------------------- store internals

    def _lock_row(self, conn: psycopg.Connection[Any], name: str) -> LiveRow | None:
        r = conn.execute(
            "SELECT version, successes, failures, outcomes, stamp FROM memento_skills "
            "WHERE library = %s AND name = %s FOR UPDATE",
            (self.library, name),
        ).fetchone()
        return None if r is None else LiveRow(r[0], r[1], r[2], tuple(r[3]), r[4])

    def _bump(self, conn: psycopg.Connection[Any]) -> int:
        """Count the write (the last lock a write takes: commits land in stamp order)."""
        row = conn.execute(
            "UPDATE memento_skill_libraries SET generation = generation + 1 "
            "WHERE library = %s RETURNING generation",
            (self.library,),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _put_row(
        self,
        conn: psycopg.Connection[Any],
        name: str,
        version: int | None,
        stamp: int,
        utility: Utility,
        outcomes: tuple[str, ...],
    ) -> None:
        conn.execute(
            "INSERT INTO memento_skills "
            "(library, name, version, successes, failures, outcomes, stamp) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (library, name) DO UPDATE SET "
            "version = EXCLUDED.version, successes = EXCLUDED.successes, "
            "failures = EXCLUDED.failures, outcomes = EXCLUDED.outcomes, stamp = EXCLUDED.stamp",
            (
                self.library,
                name,
                version,
                utility.successes,
                utility.failures,
                list(outcomes),
                stamp,
            ),
        )

    def _land(
        self,
        conn: psycopg.Connection[Any],
        name: str,
        version: int | None,
        utility: Utility,
        outcomes: tuple[str, ...],
    ) -> None:
        self._put_row(conn, name, version, self._bump(conn), utility, outcomes)

    def _max_version(self, conn: psycopg.Connection[Any], name: str) -> int:
        row = conn.execute(
            "SELECT coalesce(max(version), 0) FROM memento_skill_versions "
            "WHERE library = %s AND name = %s",
            (self.library, name),
        ).fetchone()
        return int(row[0]) if row else 0

    def _version_text(self, conn: psycopg.Connection[Any], name: str, version: int) -> bytes:
        row = conn.execute(
            "SELECT skill_md FROM memento_skill_versions "
            "WHERE library = %s AND name = %s AND version = %s",
            (self.library, name, version),
        ).fetchone()
        if row is None:
            raise SkillNotFoundError(f"skill {name!r} has no version {version} in its history")
        return bytes(row[0])

    def _file_refs(
        self, conn: psycopg.Connection[Any], name: str, version: int
    ) -> dict[str, FileRef]:
        return {
            str(rel): (str(sha), int(mode))
            for rel, sha, mode in conn.execute(
                "SELECT rel, sha256, mode FROM memento_skill_files "
                "WHERE library = %s AND name = %s AND version = %s",
                (self.library, name, version),
            )
        }

    def _insert_version(
        self,
        conn: psycopg.Connection[Any],
        name: str,
        version: int,
        skill_md: bytes,
        files: Mapping[str, FileRef],
        blobs: Mapping[str, bytes],
    ) -> None:
        """Insert a version row with its files (the unique number refuses a duplicate)."""
        with conn.cursor() as cur:
            if blobs:
                cur.executemany(
                    "INSERT INTO memento_skill_blobs (library, sha256, data) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [(self.library, sha, data) for sha, data in blobs.items()],
                )
            cur.execute(
                "INSERT INTO memento_skill_versions (library, name, version, skill_md) "
                "VALUES (%s, %s, %s, %s)",
                (self.library, name, version, skill_md),
            )
            if files:
                cur.executemany(
                    "INSERT INTO memento_skill_files (library, name, version, rel, sha256, mode) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    [(self.library, name, version, rel, s, m) for rel, (s, m) in files.items()],
                )

    def _archive(self, conn: psycopg.Connection[Any], skill: Skill, row: LiveRow) -> None:
        """Keep the live version's final counts in its history copy, as the folder does."""
        conn.execute(
            "UPDATE memento_skill_versions SET skill_md = %s "
            "WHERE library = %s AND name = %s AND version = %s",
            (
                serialise(skill.with_changes(utility=row.utility, outcomes=row.outcomes)),
                self.library,
                skill.name,
                skill.version,
            ),
        )

    def _scrub(self, conn: psycopg.Connection[Any], name: str, version: int) -> None:
        """Remove every copy of `version` (a taken-back change): its row, files and blobs."""
        shas = [s for s, _ in self._file_refs(conn, name, version).values()]
        conn.execute(
            "DELETE FROM memento_skill_versions WHERE library = %s AND name = %s AND version = %s",
            (self.library, name, version),
        )
        if shas:
            conn.execute(
                "DELETE FROM memento_skill_blobs b WHERE b.library = %s AND b.sha256 = ANY(%s) "
                "AND NOT EXISTS (SELECT 1 FROM memento_skill_files f "
                "WHERE f.library = b.library AND f.sha256 = b.sha256)",
                (self.library, shas),
            )

    def _live(self, conn: psycopg.Connection[Any], name: str, row: LiveRow | None) -> Skill | None:
        """The live skill as the store holds it (with its counts), None when deleted."""
        if row is None or row.version is None:
            return None
        skill = parse_skill(
            self._version_text(conn, name, row.version),
            self.root / name / SKILL_FILE,
            folder_name=name,
        )
        return skill.with_changes(utility=row.utility, outcomes=row.outcomes)

    def _read_row(self, conn: psycopg.Connection[Any], name: str) -> LiveRow | None:
        r = conn.execute(
            "SELECT version, successes, failures, outcomes, stamp FROM memento_skills "
            "WHERE library = %s AND name = %s",
            (self.library, name),
        ).fetchone()
        return None if r is None else LiveRow(r[0], r[1], r[2], tuple(r[3]), r[4])

    def _not_found(self, name: str) -> SkillNotFoundError:
        return SkillNotFoundError(f"no skill named {name!r} in the {self._where}")

    def _after_write(self, name: str) -> Skill:
        self._refresh()
        return self.get(name)

    # ----------------------------------------------------------------- writing

    def create(self, skill: Skill, files: Mapping[str, bytes] | None = None) -> Skill:
        """Add a new skill (version 1 unless `skill` says otherwise). Refuses an existing name;
        a deleted name with history continues its numbering."""
        serialise(skill)
        self.skill_dir(skill.name)
        staged = check_files(files or {})
        blobs = {_sha(data): data for data in staged.values()}
        with self._tx(skill.name) as conn:
            row = self._lock_row(conn, skill.name)
            if row is not None and row.version is not None:
                raise SkillExistsError(
                    f"skill {skill.name!r} already exists in the {self._where}; update it or "
                    "pick another name"
                )
            version = max(skill.version - 1, self._max_version(conn, skill.name)) + 1
            stamp = now()
            skill = skill.with_changes(
                version=version,
                created=stamp,
                updated=stamp,
                path=self.root / skill.name / SKILL_FILE,
            )
            refs = {rel: (_sha(data), NEW_FILE_MODE) for rel, data in staged.items()}
            self._insert_version(conn, skill.name, version, serialise(skill), refs, blobs)
            self._land(conn, skill.name, version, skill.utility, skill.outcomes)
        return self._after_write(skill.name)

    def put_exact(
        self,
        name: str,
        skill_md: bytes,
        files: Mapping[str, tuple[int, bytes]],
        *,
        replace: bool = False,
    ) -> Skill:
        """Write `name` exactly as a library folder holds it (`memento skills load`): its SKILL.md
        bytes with their version, counts and trust, its files (mode, bytes) with their modes.
        A live name is refused unless `replace`; a version number the history already holds
        (a replace) is written as the next number instead, the live one kept in history."""
        skill = parse_skill(skill_md, self.root / name / SKILL_FILE, folder_name=name)
        self.skill_dir(name)
        staged = check_files({rel: data for rel, (_mode, data) in files.items()})
        blobs = {_sha(data): data for data in staged.values()}
        refs = {rel: (_sha(data), files[rel][0] & 0o777) for rel, data in staged.items()}
        with self._tx(name) as conn:
            row = self._lock_row(conn, name)
            live = self._live(conn, name, row)
            if live is not None and not replace:
                raise SkillExistsError(
                    f"skill {name!r} already exists in the {self._where}; load it with "
                    "--replace, or rename it"
                )
            text = skill_md
            top = self._max_version(conn, name)
            if top >= skill.version:
                skill = skill.with_changes(
                    version=top + 1, parent_version=live.version if live else skill.parent_version
                )
                text = serialise(skill)
            if live is not None and row is not None:
                self._archive(conn, live, row)
            self._insert_version(conn, name, skill.version, text, refs, blobs)
            self._land(conn, name, skill.version, skill.utility, skill.outcomes)
        return self._after_write(name)

    def update(
        self,
        name: str,
        *,
        files: Mapping[str, bytes] | None = None,
        remove_files: tuple[str, ...] = (),
        apply: Callable[[Skill], Mapping[str, object]] | None = None,
        **changes: object,
    ) -> Skill:
        """Write a new version of `name` with `changes`; the old one stays in history.

        Optimistic: the live version is read and `apply(current)` runs holding nothing; the
        write then lands only if that version is still live, else it is read and applied
        again, so a concurrent update is never lost.
        """
        check_changes(name, changes)
        self.skill_dir(name)
        staged = check_files(files or {})
        removed = {str(safe_relative(rel)) for rel in remove_files}
        blobs = {_sha(data): data for data in staged.values()}
        deadline = time.monotonic() + self._lock_timeout_s
        while True:
            with self._conn() as conn:
                current = self._live(conn, name, self._read_row(conn, name))
                if current is None:
                    raise self._not_found(name)
                base_files = self._file_refs(conn, name, current.version)
            edits: dict[str, object] = dict(changes)
            if apply is not None:
                edits.update(apply(current))
                check_changes(name, edits)
            try:
                self._write_update(name, current, base_files, edits, staged, removed, blobs)
                break
            except StaleWriteError:
                if time.monotonic() > deadline:
                    raise SkillLockedError(
                        f"could not update {name!r} in the {self._where} within "
                        f"{self._lock_timeout_s}s: other workers kept writing it; retry"
                    ) from None
                time.sleep(random.uniform(0, 0.005))
        return self._after_write(name)

    def _write_update(
        self,
        name: str,
        current: Skill,
        base_files: Mapping[str, FileRef],
        edits: Mapping[str, object],
        staged: Mapping[str, bytes],
        removed: set[str],
        blobs: Mapping[str, bytes],
    ) -> None:
        with self._tx(name) as conn:
            row = self._lock_row(conn, name)
            if row is None or row.version != current.version:
                raise StaleWriteError(f"{name!r} v{current.version} is no longer live")
            version = max(current.version, self._max_version(conn, name)) + 1
            new = current.with_changes(
                **{"change": "", **edits},
                version=version,
                parent_version=current.version,
                updated=now(),
                utility=row.utility,
                outcomes=row.outcomes,
            )
            if "lift" not in edits and (staged or removed or content_changed(current, new)):
                new = new.with_changes(lift=None)  # it measured what is no longer there
            data = serialise(new)
            refs = {rel: ref for rel, ref in base_files.items() if rel not in removed}
            refs.update({rel: (_sha(d), NEW_FILE_MODE) for rel, d in staged.items()})
            self._archive(conn, current, row)
            self._insert_version(conn, name, version, data, refs, blobs)
            self._land(conn, name, version, row.utility, row.outcomes)

    def record_outcome(self, name: str, success: bool, *, key: str = "") -> Skill:
        """Count one judged use: one atomic UPDATE of the live row (no new version). With a
        `key`, counted once: a replayed run finds its key among the last counted ones."""
        self.skill_dir(name)
        with self._tx(name) as conn:
            counted = conn.execute(
                "UPDATE memento_skills SET successes = successes + %(s)s, "
                "failures = failures + %(f)s, outcomes = CASE WHEN %(key)s = '' THEN outcomes "
                "ELSE (outcomes || %(key)s::text)"
                "[greatest(1, cardinality(outcomes) + 2 - %(keep)s):] END "
                "WHERE library = %(lib)s AND name = %(name)s AND version IS NOT NULL "
                "AND (%(key)s = '' OR NOT (%(key)s = ANY(outcomes))) RETURNING version",
                {
                    "s": int(success),
                    "f": int(not success),
                    "key": key,
                    "keep": OUTCOME_KEYS,
                    "lib": self.library,
                    "name": name,
                },
            ).fetchone()
            if counted is None:
                row = self._read_row(conn, name)
                if row is None or row.version is None:
                    raise self._not_found(name)
            else:
                conn.execute(
                    "UPDATE memento_skills SET stamp = %s WHERE library = %s AND name = %s",
                    (self._bump(conn), self.library, name),
                )
        return self._after_write(name)

    def set_lifecycle(self, name: str, state: Lifecycle, *, reason: str = "") -> Skill:
        """Move `name` to lifecycle `state` as a new version, so `rollback` takes it back; the
        live skill unchanged when it is there already."""
        if state not in LIFECYCLES:
            raise SkillError(f"unknown lifecycle {state!r}; use one of {', '.join(LIFECYCLES)}")
        with self.lock(name):
            current = self.get(name)
            if current.lifecycle == state:
                return current
            return self.update(name, lifecycle=state, lifecycle_reason=reason[:300])

    def record_gate(self, name: str, version: int, state: Lifecycle, *, reason: str = "") -> Skill:
        """The gate's verdict on `version`, the change it just vetted, written in place on
        that version (as a count is), so it stays the version its change key names. Refused
        when `version` is no longer live."""
        if state not in LIFECYCLES:
            raise SkillError(f"unknown lifecycle {state!r}; use one of {', '.join(LIFECYCLES)}")
        self.skill_dir(name)
        with self._tx(name) as conn:
            row = self._lock_row(conn, name)
            current = self._live(conn, name, row)
            if current is None:
                raise self._not_found(name)
            if current.version != version:
                raise SkillError(f"{name!r} is at v{current.version}, not the vetted v{version}")
            if current.lifecycle != state:
                marked = current.with_changes(lifecycle=state, lifecycle_reason=reason[:300])
                conn.execute(
                    "UPDATE memento_skill_versions SET skill_md = %s "
                    "WHERE library = %s AND name = %s AND version = %s",
                    (serialise(marked), self.library, name, version),
                )
                conn.execute(
                    "UPDATE memento_skills SET stamp = %s WHERE library = %s AND name = %s",
                    (self._bump(conn), self.library, name),
                )
        return self._after_write(name)

    def record_lift(self, name: str, lift: Lift) -> Skill:
        """Keep `lift`, measured on `lift.version`, with the skill as a new version; unchanged
        when the same lift is there already; refused when the skill changed since."""
        with self.lock(name):
            with self._conn() as conn:
                current = self._live(conn, name, self._read_row(conn, name))
                if current is None:
                    raise self._not_found(name)
                if current.lift == lift:
                    return self.get(name)
                if lift.version > current.version:
                    raise SkillError(
                        f"lift of {name!r} v{lift.version} measured on a version after the live "
                        f"v{current.version}; measure the live skill"
                    )
                if lift.version != current.version and self._changed_since(
                    conn, name, lift.version, current.version
                ):
                    raise SkillError(
                        f"{name!r} changed since v{lift.version} was measured (live: "
                        f"v{current.version}); measure its lift again"
                    )
            return self.update(name, lift=lift)

    def _changed_since(
        self, conn: psycopg.Connection[Any], name: str, version: int, live: int
    ) -> bool:
        """Whether the live skill does something else than its `version` did."""
        try:
            old = self._version_files(conn, name, version)
        except SkillError:
            return True
        new = self._version_files(conn, name, live)
        was = parse_skill(old.pop(SKILL_FILE), f"<{name} v{version}>")
        now_ = parse_skill(new.pop(SKILL_FILE), f"<{name} live>")
        return old != new or content_changed(was, now_)

    def delete(self, name: str) -> None:
        """Remove the live skill; its versions stay in history, so `rollback` brings it back."""
        self.skill_dir(name)
        with self._tx(name) as conn:
            row = self._lock_row(conn, name)
            live = self._live(conn, name, row)
            if row is None or live is None:
                raise self._not_found(name)
            self._archive(conn, live, row)
            self._land(conn, name, None, row.utility, row.outcomes)
        self._refresh()

    def rename(self, old: str, new: str) -> Skill:
        """Rename a skill (its history goes along) as a new version."""
        for problem in check_name(new):
            raise SkillError(f"cannot rename to {new!r}: {problem}")
        self.skill_dir(old)
        with self._tx(old, new) as conn:
            rows = {n: self._lock_row(conn, n) for n in sorted({old, new})}
            row = rows[old]
            current = self._live(conn, old, row)
            if row is None or current is None:
                raise self._not_found(old)
            target = rows[new]
            if target is not None and target.version is not None:
                raise SkillExistsError(f"cannot rename {old!r}: {new!r} already exists")
            if self._max_version(conn, new):
                raise SkillExistsError(
                    f"cannot rename to {new!r}: a deleted skill of that name still has history "
                    f"in the {self._where}; roll it back and delete it properly, or choose "
                    "another name"
                )
            version = max(current.version, self._max_version(conn, old)) + 1
            renamed = current.with_changes(
                name=new, version=version, parent_version=current.version, updated=now()
            )
            data = serialise(renamed)
            refs = self._file_refs(conn, old, current.version)
            self._archive(conn, current, row)
            conn.execute(  # the files follow (ON UPDATE CASCADE)
                "UPDATE memento_skill_versions SET name = %s WHERE library = %s AND name = %s",
                (new, self.library, old),
            )
            self._insert_version(conn, new, version, data, refs, {})
            stamp = self._bump(conn)
            self._put_row(conn, old, None, stamp, Utility(), ())
            self._put_row(conn, new, version, stamp, row.utility, row.outcomes)
        return self._after_write(new)

    # ----------------------------------------------------------------- history

    def history(self, name: str) -> list[VersionInfo]:
        """Every recorded version of `name`, oldest first (the live one marked)."""
        self.skill_dir(name)
        with self._conn() as conn:
            row = self._read_row(conn, name)
            found = conn.execute(
                "SELECT version, skill_md FROM memento_skill_versions "
                "WHERE library = %s AND name = %s ORDER BY version",
                (self.library, name),
            ).fetchall()
        versions: list[VersionInfo] = []
        for version, text in found:
            live = row is not None and row.version == version
            try:
                skill = parse_skill(bytes(text), self._history_path(name, version))
            except SkillError:
                continue
            versions.append(version_info(skill, live=live))
        if not versions:
            raise SkillNotFoundError(f"no skill or history named {name!r} in the {self._where}")
        return versions

    def _history_path(self, name: str, version: int) -> Path:
        return Path(f"{self.root}/{META_DIR}/history/{name}/{version}/{SKILL_FILE}")

    def read_version(self, name: str, version: int) -> Skill:
        self.skill_dir(name)
        with self._conn() as conn:
            row = self._read_row(conn, name)
            if row is not None and row.version == version:
                live = self._live(conn, name, row)
                assert live is not None
                return live.with_changes(path=self.root / name / SKILL_FILE)
            text = self._version_text(conn, name, version)
        return parse_skill(text, self._history_path(name, version))

    def _version_files(self, conn: psycopg.Connection[Any], name: str, v: int) -> dict[str, bytes]:
        row = self._read_row(conn, name)
        if row is not None and row.version == v:
            live = self._live(conn, name, row)
            assert live is not None
            skill_md = serialise(live)
        else:
            skill_md = self._version_text(conn, name, v)
        files = {
            str(rel): bytes(data)
            for rel, data in conn.execute(
                "SELECT f.rel, b.data FROM memento_skill_files f JOIN memento_skill_blobs b "
                "ON b.library = f.library AND b.sha256 = f.sha256 "
                "WHERE f.library = %s AND f.name = %s AND f.version = %s",
                (self.library, name, v),
            )
        }
        files[SKILL_FILE] = skill_md
        return files

    def diff(self, name: str, a: int, b: int) -> str:
        """Unified diff of SKILL.md and the skill's files between versions `a` and `b`."""
        self.skill_dir(name)
        with self._conn() as conn:
            fa, fb = self._version_files(conn, name, a), self._version_files(conn, name, b)
        return render_diff(name, a, b, fa, fb)

    def rollback(self, name: str, version: int) -> Skill:
        """Make `version`'s content live again, as a new version (so the rollback is undoable)."""
        self.skill_dir(name)
        with self._tx(name) as conn:
            self._restore(conn, name, version, floor=version, keep_live=True)
        return self._after_write(name)

    def _restore(
        self, conn: psycopg.Connection[Any], name: str, version: int, *, floor: int, keep_live: bool
    ) -> None:
        """Write `version`'s content and files as a new live version above `floor`."""
        row = self._lock_row(conn, name)
        old = parse_skill(
            self._version_text(conn, name, version), self._history_path(name, version)
        )
        live = self._live(conn, name, row)
        new_version = max(floor, live.version if live else 0, self._max_version(conn, name)) + 1
        restored = old.with_changes(
            name=name,
            version=new_version,
            parent_version=version,
            updated=now(),
            utility=live.utility if live else old.utility,
            outcomes=live.outcomes if live else old.outcomes,
            change="",
        )
        data = serialise(restored)
        refs = self._file_refs(conn, name, version)
        if live is not None and row is not None:
            if keep_live:
                self._archive(conn, live, row)
            else:
                self._scrub(conn, name, live.version)
        self._insert_version(conn, name, new_version, data, refs, {})
        self._land(conn, name, new_version, restored.utility, restored.outcomes)

    # ----------------------------------------------------------------- trials

    @contextlib.contextmanager
    def trial(self, name: str, version: int, base_version: int | None) -> Iterator[None]:
        """Mark `version` (just written; `base_version` None for a new skill) as live on trial
        while the caller vets it; taken back on an exception, or by the next store to open
        after this process dies (`recover_trials`)."""
        record = {"skill": name, "version": version, "base_version": base_version}
        with self._trial_marker(name, record):
            try:
                yield
            except BaseException:
                self.take_back(name, version, base_version)
                raise

    @contextlib.contextmanager
    def change_on_trial(self, name: str, base_version: int | None, change: str) -> Iterator[None]:
        """Hold a trial for the change keyed `change` from before it is written until vetted."""
        record = {"skill": name, "base_version": base_version, "change": change}
        with self._trial_marker(name, record):
            try:
                yield
            except BaseException:
                found = self.find_change(name, change)
                if found is not None and found[1]:
                    self.take_back(name, found[0], base_version)
                raise

    @contextlib.contextmanager
    def _trial_marker(self, name: str, record: Mapping[str, object]) -> Iterator[None]:
        """Hold `name`'s trial lock (its own session: released by Postgres if we die) with
        `record` stored until the block ends."""
        self.skill_dir(name)
        key = f"{self.library}/{name}"
        with self._pool.connection() as conn:
            conn.execute(f"SET lock_timeout = '{int(self._lock_timeout_s * 1000)}ms'")
            try:
                conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (TRIAL_LOCKS, key))
            except pg_errors.LockNotAvailable:
                raise SkillLockedError(
                    f"timed out after {self._lock_timeout_s}s: another worker has a change to "
                    f"{name!r} on trial in the {self._where}; retry"
                ) from None
            finally:
                conn.execute("SET lock_timeout = 0")
            try:
                conn.execute(
                    "INSERT INTO memento_skill_trials (library, name, record) VALUES (%s, %s, %s) "
                    "ON CONFLICT (library, name) DO UPDATE SET record = EXCLUDED.record",
                    (self.library, name, json.dumps(record)),
                )
                try:
                    yield
                finally:
                    conn.execute(
                        "DELETE FROM memento_skill_trials WHERE library = %s AND name = %s",
                        (self.library, name),
                    )
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (TRIAL_LOCKS, key))

    def find_change(self, name: str, change: str) -> tuple[int, bool] | None:
        """The version the change keyed `change` wrote and whether it is live; None if none."""
        if not change:
            return None
        self.skill_dir(name)
        with self._conn() as conn:
            row = self._read_row(conn, name)
            candidates = conn.execute(
                "SELECT version, skill_md FROM memento_skill_versions "
                "WHERE library = %s AND name = %s AND position(%s IN skill_md) > 0 "
                "ORDER BY version",
                (self.library, name, change.encode("utf-8")),
            ).fetchall()
        live_version = row.version if row is not None else None
        found: tuple[int, bool] | None = None
        for version, text in candidates:
            with contextlib.suppress(SkillError):
                if parse_skill(bytes(text), self._history_path(name, version)).change == change:
                    if version == live_version:
                        return version, True
                    found = found or (int(version), False)
        return found

    def discard_change(self, name: str, change: str, base_version: int | None) -> bool:
        """Undo the unvetted live version the change keyed `change` wrote, as if never made:
        `base_version` live again under its own number, the discarded version gone for good;
        False when the live version is not that change's."""
        self.skill_dir(name)
        with self._tx(name) as conn:
            row = self._lock_row(conn, name)
            try:
                live = self._live(conn, name, row)
            except SkillError:
                return False
            if row is None or live is None or not change or live.change != change:
                return False
            if base_version is None:
                self._scrub(conn, name, live.version)
                self._land(conn, name, None, Utility(), ())
            else:
                old = parse_skill(
                    self._version_text(conn, name, base_version),
                    self._history_path(name, base_version),
                )
                restored = old.with_changes(
                    name=name, utility=row.utility, outcomes=row.outcomes, updated=now()
                )
                conn.execute(
                    "UPDATE memento_skill_versions SET skill_md = %s "
                    "WHERE library = %s AND name = %s AND version = %s",
                    (serialise(restored), self.library, name, base_version),
                )
                self._scrub(conn, name, live.version)
                self._land(conn, name, base_version, row.utility, row.outcomes)
        self._refresh()
        return True

    def take_back(self, name: str, version: int, base_version: int | None) -> bool:
        """Take back `version` (a change refused or never vetted) and restore `base_version`
        (None: remove the skill); False if a later write is live. No copy of the taken-back
        version stays anywhere, history included."""
        self.skill_dir(name)
        with self._tx(name) as conn:
            row = self._lock_row(conn, name)
            live_version = row.version if row is not None else None
            result = live_version is None or live_version == version
            if not result or base_version is None or live_version is None:
                self._scrub(conn, name, version)
            if not result:
                self._bump(conn)  # its history changed
            elif base_version is None:
                self._land(conn, name, None, Utility(), ())
            else:  # discards the live version (this one) as it restores
                self._restore(conn, name, base_version, floor=version, keep_live=False)
        self._refresh()
        return result

    def recover_trials(self) -> list[str]:
        """Undo the trials of processes that died mid-trial; returns the skills taken back."""
        with self._conn() as conn:
            markers = conn.execute(
                "SELECT name FROM memento_skill_trials WHERE library = %s ORDER BY name",
                (self.library,),
            ).fetchall()
        undone: list[str] = []
        for (name,) in markers:
            key = f"{self.library}/{name}"
            with self._pool.connection() as conn:
                got = conn.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (TRIAL_LOCKS, key)
                ).fetchone()
                if not (got and got[0]):
                    continue  # its trial is still running in another process
                try:
                    found = conn.execute(
                        "SELECT record FROM memento_skill_trials WHERE library = %s AND name = %s",
                        (self.library, name),
                    ).fetchone()
                    if found is None:
                        continue  # it finished meanwhile
                    if self._undo_trial(str(name), found[0]):
                        undone.append(str(name))
                    conn.execute(
                        "DELETE FROM memento_skill_trials WHERE library = %s AND name = %s",
                        (self.library, name),
                    )
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (TRIAL_LOCKS, key))
        return undone

    def _undo_trial(self, name: str, record: object) -> bool:
        try:
            assert isinstance(record, dict)
            change = str(record.get("change") or "")
            version = None if change else int(record["version"])
            base = record.get("base_version")
            base = None if base is None else int(base)
        except (AssertionError, ValueError, KeyError, TypeError):
            return False  # unreadable: nothing it names can be undone
        if change:
            return self.discard_change(name, change, base)
        return version is not None and self.take_back(name, version, base)
