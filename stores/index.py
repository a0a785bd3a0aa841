"""The skill index: a Chroma mirror (dense) and BM25 (lexical) of the library, synced and searched.

The folders are the truth of what should be indexed and Chroma is the truth of what is: a
sync reads what the collection holds (content hash per skill) and only embeds what differs, so
a deleted index folder, a killed process or an edit made while nothing was running is repaired
by the next sync. Each upsert chunk carries its embeddings and hashes together, so a crash
leaves Chroma consistent record by record.

Reading every record's metadata is too slow for the resync run before every task
(docs/decisions.md#index-sync-mark). So the collection also carries a mark: the signature of the
state it was last fully synced to. The mark is cleared before the first write and set after the
last, so a crash in between leaves no mark; a matching mark plus a matching count lets a resync
skip the read.

BM25 (stores/lexical.py) is rebuilt whole when the set of (name, hash) pairs changes.

Each library has its own collection (stores/chroma.py names it). Several processes, on one
machine or on several against one Chroma server, may use a collection: the mark is written with
the signature of the (name, hash) pairs synced, and every read first compares it (one metadata
read) with the BM25 snapshot it uses. When they differ, the snapshot is reloaded from disk or,
if no local sync wrote it (another machine synced), rebuilt from the documents in the collection;
the vector cache follows the snapshot. So a running process answers from what the collection
holds now.

Stored skill vectors are cached in memory (`vectors`): routing asks for a few on every query (the
lexical hits the dense top-k missed) and a Chroma read would cost about a millisecond of each
route (docs/decisions.md#vector-cache). A cached vector carries the content hash Chroma stored
with it and is used only while the live BM25 snapshot, whose pointer file names each skill's hash
and is written after Chroma, names the same hash; a sync by this or another process therefore
invalidates exactly the skills it changed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction
from chromadb.config import Settings
from chromadb.errors import NotFoundError
from filelock import FileLock, Timeout

from memento_skills.stores.chroma import (
    ChromaSettingError,
    check_collection_name,
    close_client,
    collection_name,
    http_client,
)
from memento_skills.stores.embedder import embed, embedder_id, make_embedder
from memento_skills.stores.lexical import LexicalSnapshot, LexicalStore, pairs_signature
from memento_skills.stores.settings import COLLECTION_ENV, chroma_collection_env, chroma_url_env
from memento_skills.stores.skill import Skill

DEFAULT_COLLECTION = "memento-skills"  # base name of an index opened without a library
EMBED_CHUNK = 256  # embedded and upserted together: the most a crash can lose is one chunk
READ_PAGE = 5000
SYNCED_KEY = "memento-synced"  # collection metadata: signature of the state last fully synced
CONTENT_KEY = "memento-content"  # and of its (name, content hash) pairs, as the BM25 snapshot's
EMBEDDER_KEY = "memento-embedder"  # what made the vectors: a collection holds one embedder's
LIBRARY_KEY = "memento-library"  # the id of the library the collection was named after
REFRESH_WAIT_S = 30.0  # a read waits this long for a local sync to finish writing BM25


@dataclass(frozen=True)
class SyncReport:
    added: int
    updated: int
    removed: int
    unchanged: int
    embedded: int
    seconds: float
    lexical_rebuilt: bool = False


@dataclass(frozen=True)
class Hit:
    """One candidate skill. `dense` is cosine similarity, `lexical` the BM25 score (0: no overlap).

    Either is None only when that index does not hold the skill (e.g. mid-repair).
    """

    name: str
    dense: float | None
    lexical: float | None
    rank: int


class SkillIndex:
    """Dense (Chroma) plus lexical (BM25) retrieval over skills, kept in sync by content hash.

    Reads (search, names, count) may run from many threads while one thread syncs.

    The collection: `collection` (or $MEMENTO_CHROMA_COLLECTION) exactly as given; else the one
    of the library at `library`; else (no library: tests, benchmarks) `memento-skills-<embedder>`.
    """

    def __init__(
        self,
        index_dir: Path,
        *,
        embedder: EmbeddingFunction[Documents] | None = None,
        chroma_url: str | None = None,
        collection: str | None = None,
        library: Path | str | None = None,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.chroma_url = chroma_url or chroma_url_env() or None
        override = collection or chroma_collection_env() or None
        if override is not None:
            check_collection_name(override)  # before loading a model for nothing
        self.embedder = embedder if embedder is not None else make_embedder()
        self.library_id: str | None = None
        if override is not None:
            self.collection_name = override
        elif library is not None:
            from memento_skills.stores.library_id import library_id

            self.library_id = library_id(library)
            self.collection_name = collection_name(f"memento-{self.library_id}", self.embedder)
        else:
            self.collection_name = collection_name(DEFAULT_COLLECTION, self.embedder)
        self._identity: dict[str, str] = {EMBEDDER_KEY: embedder_id(self.embedder)}
        if self.library_id is not None:
            self._identity[LIBRARY_KEY] = self.library_id
        self._synced_to: str | None = None  # the mark this object's last sync left
        self._rebuilt_for: tuple[str, str] | None = None  # (mark content, snapshot) rebuilt
        self._lock = threading.RLock()
        # Per collection: two libraries (or embedders) may share one index folder.
        self._lexical_store = LexicalStore(self.index_dir / "bm25" / self.collection_name)
        self._lexical: LexicalSnapshot | None = None
        self._client: ClientAPI | None = None
        self._collection: Collection | None = None
        # the embedded store's files when its metadata was last read, and that metadata
        self._meta_read: tuple[tuple[int, ...], dict[str, Any]] | None = None
        self._chunk_size: int | None = None
        # name -> (content hash Chroma holds with it, vector); see `vectors`
        self._vector_cache: dict[str, tuple[str, np.ndarray]] = {}
        self._vector_signature: str | None = None  # the BM25 snapshot the cache was pruned to
        self._vector_lock = threading.Lock()  # not self._lock: a sync holds that for minutes
        self._open()

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> None:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        if self.chroma_url:
            self._client = http_client(self.chroma_url)
        else:
            self._client = chromadb.PersistentClient(
                path=str(self.index_dir / "chroma"),
                settings=Settings(anonymized_telemetry=False),
            )
        try:
            self._collection = self._client.get_or_create_collection(
                self.collection_name,
                embedding_function=cast(Any, self.embedder),
                configuration={"hnsw": {"space": "cosine"}},
                metadata=dict(self._identity),
            )
        except ValueError as e:  # Chroma refuses another embedder than the one it persisted
            if "embedding function conflict" not in str(e).lower():
                raise
            held = str(e).rpartition("persisted:")[2].strip() or "another embedder"
            self._refuse_embedder(held, e)
        held_by = (self.collection.metadata or {}).get(EMBEDDER_KEY)
        if held_by is not None and held_by != self._identity[EMBEDDER_KEY]:
            self._refuse_embedder(str(held_by), None)

    def _refuse_embedder(self, held_by: str, cause: Exception | None) -> None:
        if self._client is not None:
            close_client(self._client)
        self._client = self._collection = None
        raise ChromaSettingError(
            f"the Chroma collection {self.collection_name!r} holds vectors of the embedder "
            f"{held_by!r}, not {self._identity[EMBEDDER_KEY]!r}: set {COLLECTION_ENV}/"
            "chroma_collection to another name, or unset it to use the library's own collection"
        ) from cause

    def _reopen(self) -> None:
        old = self._client
        self._client = self._collection = None
        self._chunk_size = None
        self._drop_vectors()
        self._meta_read = None
        if old is not None:
            close_client(old)  # drops Chroma's per-path cache, so a deleted folder is recreated
        self._open()

    def _live(self) -> tuple[Collection, dict[str, Any]]:
        """The collection (reopened if its folder or itself vanished) and its metadata now."""
        if not self.chroma_url and not (self.index_dir / "chroma" / "chroma.sqlite3").exists():
            self._reopen()
        meta = self._fresh_metadata()
        if meta is None:  # deleted by another client
            self._reopen()
            return self.collection, {}
        return self.collection, meta

    def _fresh_metadata(self) -> dict[str, Any] | None:
        """The collection's metadata read now (another process may have synced since), or None
        when it is gone. A collection deleted and made again elsewhere is switched to."""
        client, current = self._client, self._collection
        if client is None or current is None:
            raise RuntimeError("this SkillIndex is closed")
        files = None if self.chroma_url else self._store_files_sig()
        if files is not None and self._meta_read is not None and self._meta_read[0] == files:
            return dict(self._meta_read[1])  # the embedded store's files did not change
        try:
            fresh = client.get_collection(
                self.collection_name, embedding_function=cast(Any, self.embedder)
            )
        except NotFoundError:
            self._meta_read = None
            return None
        if fresh.id != current.id:
            self._collection = fresh
            self._drop_vectors()
        meta = dict(fresh.metadata or {})
        self._meta_read = (files, meta) if files is not None else None
        return dict(meta)

    def _store_files_sig(self) -> tuple[int, ...] | None:
        """What a stat of the embedded store's SQLite files says (any write by any process,
        WAL included, changes it): far cheaper than a metadata read
        (docs/decisions.md#index-sync-mark)."""
        sig: list[int] = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(self.index_dir / "chroma" / f"chroma.sqlite3{suffix}")
            except FileNotFoundError:
                if not suffix:
                    return None
                sig += [0, 0, 0]
                continue
            sig += [st.st_ino, st.st_size, st.st_mtime_ns]
        return tuple(sig)

    def _mark(self, collection: Collection, state: str, content: str) -> None:
        """Write the sync mark (`state`, and `content` for readers); "" and "" clear it."""
        collection.modify(metadata={**self._identity, SYNCED_KEY: state, CONTENT_KEY: content})

    def changed_since_sync(self) -> bool:
        """Whether the collection's mark differs from what this object's last sync left (or it
        never synced): another process synced, cleared or deleted it since."""
        if self._synced_to is None:
            return True
        meta = self._fresh_metadata()
        return meta is None or meta.get(SYNCED_KEY) != self._synced_to

    @property
    def collection(self) -> Collection:
        if self._collection is None:
            raise RuntimeError("this SkillIndex is closed")
        return self._collection

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                close_client(self._client)
            self._client = self._collection = None
            self._drop_vectors()

    def __enter__(self) -> SkillIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sync ----------------------------------------------------------------------------

    def _indexed(self, collection: Collection) -> dict[str, tuple[str, int]]:
        """What the collection holds: name -> (content_hash, version)."""
        held: dict[str, tuple[str, int]] = {}
        offset = 0
        while True:
            page = collection.get(include=["metadatas"], limit=READ_PAGE, offset=offset)
            metadatas = page["metadatas"] or []
            for name, meta in zip(page["ids"], metadatas, strict=True):
                meta = meta or {}
                version = meta.get("version")
                held[name] = (
                    str(meta.get("content_hash", "")),
                    version if isinstance(version, int) else 0,
                )
            if len(page["ids"]) < READ_PAGE:
                return held
            offset += READ_PAGE

    def sync(self, skills: Iterable[Skill], *, verify: bool = False) -> SyncReport:
        """Make both indexes hold exactly `skills`, embedding only what changed.

        `updated` counts re-embedded skills plus those whose version alone changed. When the
        collection's mark equals the wanted state and its count agrees, the per-record read is
        skipped; `verify=True` reads every record anyway (e.g. after writes by other tools).
        """
        start = time.perf_counter()
        want: dict[str, Skill] = {}
        for skill in skills:
            if skill.name in want:
                raise ValueError(
                    f"two skills are named {skill.name!r}: names must be unique in a library"
                )
            want[skill.name] = skill
        hashes = {name: s.content_hash for name, s in want.items()}
        state = pairs_signature((n, f"{hashes[n]} {s.version}") for n, s in want.items())
        content = pairs_signature(hashes.items())
        with self._lock, FileLock(str(self.index_dir / ".sync.lock")):
            collection, meta = self._live()
            mark = str(meta.get(SYNCED_KEY, ""))
            held: dict[str, tuple[str, int]] = {}
            changed: list[Skill] = []
            retagged: list[Skill] = []
            removed: list[str] = []
            if verify or mark != state or collection.count() != len(want):
                held = self._indexed(collection)
                changed = [s for n, s in want.items() if held.get(n, ("", 0))[0] != hashes[n]]
                retagged = [
                    s
                    for n, s in want.items()
                    if n in held and held[n][0] == hashes[n] and held[n][1] != s.version
                ]
                removed = [n for n in held if n not in want]
            if changed or retagged or removed:
                self._mark(collection, "", "")  # a crash from here on leaves no mark: full read
            batch = self._chunk() if changed or retagged or removed else 1
            for i in range(0, len(removed), batch):
                collection.delete(ids=removed[i : i + batch])
            for i in range(0, len(retagged), batch):
                part = retagged[i : i + batch]
                collection.update(
                    ids=[s.name for s in part], metadatas=[self._meta(s) for s in part]
                )
            for i in range(0, len(changed), batch):
                part = changed[i : i + batch]
                docs = [s.document for s in part]
                collection.upsert(
                    ids=[s.name for s in part],
                    embeddings=embed(self.embedder, docs),
                    documents=docs,
                    metadatas=[self._meta(s) for s in part],
                )
            marked = {**self._identity, SYNCED_KEY: state, CONTENT_KEY: content}
            if changed or retagged or removed or any(meta.get(k) != v for k, v in marked.items()):
                self._mark(collection, state, content)
            self._synced_to = state
            rebuilt = self._sync_lexical(list(want.values()), content)
        added = sum(1 for s in changed if s.name not in held)
        return SyncReport(
            added=added,
            updated=len(changed) - added + len(retagged),
            removed=len(removed),
            unchanged=len(want) - len(changed) - len(retagged),
            embedded=len(changed),
            seconds=time.perf_counter() - start,
            lexical_rebuilt=rebuilt,
        )

    @staticmethod
    def _meta(skill: Skill) -> dict[str, str | int]:
        return {"content_hash": skill.content_hash, "version": skill.version}

    def _chunk(self) -> int:
        """Records per write: Chroma's batch limit, capped so a crash loses little work."""
        if self._chunk_size is None:
            assert self._client is not None
            self._chunk_size = max(1, min(int(self._client.get_max_batch_size()), EMBED_CHUNK))
        return self._chunk_size

    def _sync_lexical(self, skills: list[Skill], signature: str) -> bool:
        current = self._disk_lexical()
        if current is not None and current.signature == signature and current.hashes is not None:
            return False  # (a pointer written before hashes were kept is rewritten once)
        entries = [(s.name, s.document, s.content_hash) for s in skills]
        self._lexical = self._lexical_store.build(signature, entries)
        return True

    def _disk_lexical(self) -> LexicalSnapshot | None:
        """The BM25 snapshot on disk now; reloaded when another process or thread replaced it."""
        snapshot, stamp = self._lexical, self._lexical_store.stamp()
        if stamp is None:
            return None
        if snapshot is None or snapshot.stamp != stamp:
            snapshot = self._lexical = self._lexical_store.load()
        return snapshot

    def _current_lexical(self) -> LexicalSnapshot | None:
        """The BM25 snapshot of what the collection holds now (one metadata read to know).

        While a sync is writing (no mark) the last snapshot serves; Chroma answers dense reads.
        """
        snapshot = self._disk_lexical()
        meta = self._fresh_metadata()
        content = str((meta or {}).get(CONTENT_KEY, ""))
        if not content or (snapshot is not None and snapshot.signature == content):
            return snapshot
        if snapshot is not None and self._rebuilt_for == (content, snapshot.signature):
            return snapshot  # rebuilt for this mark already; writes that did not mark it differ
        lock = FileLock(str(self.index_dir / ".sync.lock"), timeout=REFRESH_WAIT_S)
        try:
            with lock:  # a local sync may be about to write it; else nobody else writes it
                snapshot = self._disk_lexical()
                if snapshot is None or snapshot.signature != content:
                    snapshot = self._lexical_from_collection()
                    self._rebuilt_for = (content, snapshot.signature)
        except Timeout:
            pass  # a sync holds the folder: serve the last snapshot rather than wait longer
        return snapshot

    def _lexical_from_collection(self) -> LexicalSnapshot:
        """Rebuild BM25 from the documents the collection holds (another machine synced it)."""
        entries: list[tuple[str, str, str]] = []
        offset = 0
        while True:
            page = self.collection.get(
                include=["documents", "metadatas"], limit=READ_PAGE, offset=offset
            )
            documents = page["documents"] or []
            metadatas = page["metadatas"] or []
            for i, name in enumerate(page["ids"]):
                doc = documents[i] if i < len(documents) else None
                meta = metadatas[i] if i < len(metadatas) else None
                entries.append((name, doc or "", str((meta or {}).get("content_hash", ""))))
            if len(page["ids"]) < READ_PAGE:
                break
            offset += READ_PAGE
        signature = pairs_signature((name, content_hash) for name, _, content_hash in entries)
        self._lexical = self._lexical_store.build(signature, entries)
        return self._lexical

    # -- reads ---------------------------------------------------------------------------

    def count(self) -> int:
        return self.collection.count()

    def names(self) -> list[str]:
        """Names Chroma holds, sorted."""
        return sorted(self.collection.get(include=[])["ids"])

    def embed_query(self, query: str) -> np.ndarray:
        return embed(self.embedder, [query])[0]

    def dense_search(
        self, query: str, k: int = 10, *, vector: np.ndarray | None = None
    ) -> list[tuple[str, float]]:
        """(name, cosine similarity) best first; pass `vector` to reuse a query embedding."""
        _check_k(k)
        if vector is None:
            vector = self.embed_query(query)
        result = self.collection.query(
            query_embeddings=[vector], n_results=k, include=["distances"]
        )
        ids = result["ids"][0] if result["ids"] else []
        distances = (result["distances"] or [[]])[0]
        return [(n, 1.0 - float(d)) for n, d in zip(ids, distances, strict=True)]

    def lexical_search(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        """(name, BM25 score) best first, only skills sharing at least one word with the query."""
        _check_k(k)
        lexical = self._current_lexical()
        scores = lexical.scores(query) if lexical is not None else None
        if lexical is None or scores is None:
            return []
        return _top(lexical.names, scores, k)

    def search(self, query: str, k: int = 10, *, vector: np.ndarray | None = None) -> list[Hit]:
        """The union of the dense and lexical top-k, each hit with both scores where known.

        Ordered by dense similarity (then BM25); fusing the two is the router's decision.
        Pass `vector` to reuse a query embedding.
        """
        _check_k(k)
        if vector is None:
            vector = self.embed_query(query)
        dense = dict(self.dense_search(query, k, vector=vector))
        lexical = self._current_lexical()
        scores = lexical.scores(query) if lexical is not None else None
        lexical_top = _top(lexical.names, scores, k) if lexical and scores is not None else []
        missing = [n for n, _ in lexical_top if n not in dense]
        if missing:
            dense.update(self._similarities(missing, vector, lexical))
        names = list(dict.fromkeys([*dense, *(n for n, _ in lexical_top)]))

        def lexical_of(name: str) -> float | None:
            if lexical is None or scores is None or name not in lexical.rows:
                return None
            return float(scores[lexical.rows[name]])

        rows = [(n, dense.get(n), lexical_of(n)) for n in names]
        rows.sort(
            key=lambda r: (
                r[1] is None,
                -(r[1] if r[1] is not None else 0.0),
                -(r[2] if r[2] is not None else 0.0),
            )
        )
        return [Hit(n, d, lx, i + 1) for i, (n, d, lx) in enumerate(rows)]

    def vectors(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors (float32, read-only) of those `names` the collection holds.

        From memory while the live BM25 snapshot names the content hash Chroma stored with the
        cached vector; the rest is read from Chroma and cached.
        """
        return self._vectors(names, self._current_lexical())

    def _vectors(
        self, names: Sequence[str], lexical: LexicalSnapshot | None
    ) -> dict[str, np.ndarray]:
        expected = lexical.hashes if lexical is not None else None
        wanted = list(dict.fromkeys(names))
        hits: dict[str, np.ndarray] = {}
        missing: list[str] = []
        with self._vector_lock:
            signature = lexical.signature if lexical is not None else None
            if signature != self._vector_signature:  # the library changed: drop what it changed
                self._vector_cache = {
                    n: hv
                    for n, hv in self._vector_cache.items()
                    if expected is not None and expected.get(n) == hv[0]
                }
                self._vector_signature = signature
            for name in wanted:
                hit = self._vector_cache.get(name)
                if hit is not None and expected is not None and expected.get(name) == hit[0]:
                    hits[name] = hit[1]
                else:
                    missing.append(name)
        fetched: dict[str, tuple[str, np.ndarray]] = {}
        for i in range(0, len(missing), READ_PAGE):
            got = self.collection.get(
                ids=missing[i : i + READ_PAGE], include=["embeddings", "metadatas"]
            )
            embeddings = got["embeddings"]
            if embeddings is None:
                continue
            metadatas = got["metadatas"] or []
            for j, (name, vec) in enumerate(zip(got["ids"], embeddings, strict=True)):
                meta = metadatas[j] if j < len(metadatas) else None
                v = np.array(vec, dtype=np.float32)
                v.flags.writeable = False  # shared by every caller
                fetched[name] = (str((meta or {}).get("content_hash", "")), v)
        if fetched and expected is not None:
            with self._vector_lock:
                if self._vector_signature == signature:
                    self._vector_cache.update(fetched)
        return {
            n: hits[n] if n in hits else fetched[n][1] for n in wanted if n in hits or n in fetched
        }

    def _drop_vectors(self) -> None:
        with self._vector_lock:
            self._vector_cache, self._vector_signature = {}, None

    def _similarities(
        self, names: list[str], vector: np.ndarray, lexical: LexicalSnapshot | None
    ) -> dict[str, float]:
        stored = self._vectors(names, lexical)
        if not stored:
            return {}
        ids = list(stored)
        matrix = np.stack([stored[n] for n in ids])
        norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(vector)), 1e-12)
        sims = matrix @ vector.astype(np.float32) / np.maximum(norms, 1e-12)
        return {n: float(s) for n, s in zip(ids, sims, strict=True)}


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}")


def _top(names: Sequence[str], scores: np.ndarray, k: int) -> list[tuple[str, float]]:
    positive = np.flatnonzero(scores > 0)
    if positive.size == 0:
        return []
    if positive.size > k:
        positive = positive[np.argpartition(-scores[positive], k - 1)[:k]]
    order = positive[np.argsort(-scores[positive], kind="stable")]
    return [(names[i], float(scores[i])) for i in order]
