"""The BM25 lexical index over the skill library, kept on disk as immutable snapshots.

BM25 is small and cheap to rebuild: it is rebuilt whole when the set of (name, hash) pairs
changes, written to a fresh folder and switched to with an atomic pointer file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

_TOKEN = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lowercase words and numbers without English stopwords; no stemmer (nothing to download)."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


def pairs_signature(pairs: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for name, content_hash in sorted(pairs):
        digest.update(f"{name}\0{content_hash}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class LexicalSnapshot:
    """An immutable BM25 snapshot; readers take a reference, sync swaps in a new one."""

    signature: str
    names: tuple[str, ...]
    retriever: bm25s.BM25 | None  # None when the library is empty
    rows: dict[str, int]
    stamp: tuple[int, int, int] | None  # of current.json when loaded: another process may sync
    hashes: dict[str, str] | None = None  # content hash per name; None in an older pointer file

    def scores(self, query: str) -> np.ndarray | None:
        if self.retriever is None:
            return None
        tokens = [t for t in tokenize(query) if t in self.retriever.vocab_dict]
        if not tokens:
            return np.zeros(len(self.names), dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)


class LexicalStore:
    """BM25 on disk: `<dir>/<signature>/` folders and a `current.json` naming the live one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pointer = root / "current.json"

    def stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.pointer.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def load(self) -> LexicalSnapshot | None:
        stamp = self.stamp()
        try:
            current = json.loads(self.pointer.read_text("utf-8"))
            signature, names = current["signature"], tuple(current["names"])
            hashes = current.get("hashes")
            if not isinstance(hashes, dict) or len(hashes) != len(names):
                hashes = None  # written before hashes were kept: vectors are not cached
            retriever = None
            if names:
                retriever = bm25s.BM25.load(
                    str(self.root / signature[:32]), show_progress=False, verbosity=0
                )
                if retriever.scores["num_docs"] != len(names):
                    return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: the next sync rebuilds it
        rows = {n: i for i, n in enumerate(names)}
        return LexicalSnapshot(signature, names, retriever, rows, stamp, hashes)

    def build(self, signature: str, entries: Sequence[tuple[str, str, str]]) -> LexicalSnapshot:
        """Index (name, document, content hash) `entries` as the snapshot `signature`."""
        names = tuple(name for name, _, _ in entries)
        retriever = None
        self.root.mkdir(parents=True, exist_ok=True)
        if names:
            retriever = bm25s.BM25()
            retriever.index([tokenize(doc) for _, doc, _ in entries], show_progress=False)
            folder = self.root / signature[:32]
            tmp = self.root / f".tmp-{os.getpid()}-{threading.get_ident()}"
            shutil.rmtree(tmp, ignore_errors=True)
            retriever.save(str(tmp), show_progress=False)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        pointer = self.root / f".current-{os.getpid()}-{threading.get_ident()}.json"
        hashes = {name: content_hash for name, _, content_hash in entries}
        pointer.write_text(
            json.dumps({"signature": signature, "names": list(names), "hashes": hashes}), "utf-8"
        )
        os.replace(pointer, self.pointer)
        for stale in self.root.iterdir():
            if stale.is_dir() and stale.name != signature[:32]:
                shutil.rmtree(stale, ignore_errors=True)
        rows = {n: i for i, n in enumerate(names)}
        return LexicalSnapshot(signature, names, retriever, rows, self.stamp(), hashes)
