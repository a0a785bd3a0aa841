"""SkillIndex against real Chroma (persistent and a real `chroma run` server) and real BM25."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from memento_skills.evals.bench_store import run_store_bench, synthetic_skill
from memento_skills.stores.index import EMBED_CHUNK, SYNCED_KEY, Hit, SkillIndex
from memento_skills.stores.lexical import tokenize
from memento_skills.stores.skill import Skill

from support.servers import free_port

ENV = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "ANONYMIZED_TELEMETRY": "False"}
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

HANDFUL = [
    Skill(
        name="pdf-tables",
        description="Extract tables and text from PDF documents and save them as CSV.",
        body="Use pdfplumber.",
    ),
    Skill(
        name="python-calc",
        description="Run Python code to compute exact numeric answers.",
        body="Write a script.",
    ),
    Skill(
        name="web-search",
        description="Search the web and read pages to answer questions about current facts.",
        body="Search, then fetch.",
    ),
    Skill(
        name="send-email",
        description="Draft and send short, polite emails from a few bullet points.",
        body="Be brief.",
    ),
    Skill(
        name="image-resize",
        description="Resize, crop and convert images between PNG and JPEG.",
        body="Use Pillow.",
    ),
    Skill(
        name="csv-plot",
        description="Plot charts from CSV spreadsheets with matplotlib.",
        body="Label the axes.",
    ),
]


def synthetic(n: int, seed: int = 0) -> list[Skill]:
    rng = random.Random(seed)
    return [synthetic_skill(i, rng) for i in range(n)]


def held(index: SkillIndex) -> dict[str, str]:
    got = index.collection.get(include=["metadatas"])
    return {
        i: str(m["content_hash"]) for i, m in zip(got["ids"], got["metadatas"] or [], strict=True)
    }


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SkillIndex]:
    with SkillIndex(tmp_path / "index") as ix:
        yield ix


def test_build_then_noop_resync(index: SkillIndex) -> None:
    skills = synthetic(40)
    first = index.sync(skills)
    assert (first.added, first.embedded, first.removed, first.lexical_rebuilt) == (40, 40, 0, True)
    again = index.sync(skills)
    assert (again.embedded, again.unchanged, again.added, again.updated) == (0, 40, 0, 0)
    assert not again.lexical_rebuilt
    assert index.count() == 40 and index.names() == sorted(s.name for s in skills)
    assert held(index) == {s.name: s.content_hash for s in skills}


def test_edits_embed_exactly_what_changed(index: SkillIndex) -> None:
    skills = synthetic(30)
    index.sync(skills)
    edited = list(skills)
    for i in (3, 11, 27):
        edited[i] = skills[i].with_changes(
            description=f"Transcribe walrus songs number {i}.", version=2
        )
    edited[5] = skills[5].with_changes(version=7, body="new body, same description")
    report = index.sync(edited)
    assert (report.embedded, report.updated, report.added, report.unchanged) == (3, 4, 0, 26)
    assert report.lexical_rebuilt
    assert index.collection.get(ids=[skills[5].name])["metadatas"] == [
        {"content_hash": skills[5].content_hash, "version": 7}
    ]
    assert index.dense_search("transcribe walrus songs", k=3)[0][0] in {
        skills[i].name for i in (3, 11, 27)
    }
    assert {n for n, _ in index.lexical_search("walrus", k=10)} == {
        skills[i].name for i in (3, 11, 27)
    }
    assert index.sync(edited).embedded == 0


def test_deleted_skills_are_removed(index: SkillIndex) -> None:
    skills = synthetic(20)
    index.sync(skills)
    report = index.sync(skills[5:])
    assert (report.removed, report.embedded, report.unchanged) == (5, 0, 15)
    assert index.names() == sorted(s.name for s in skills[5:])
    gone = {s.name for s in skills[:5]}
    hits = index.search(skills[0].description, k=20)
    assert gone.isdisjoint(h.name for h in hits)
    assert index.sync([]).removed == 15 and index.count() == 0


def test_index_folder_deleted_is_rebuilt(tmp_path: Path) -> None:
    skills = synthetic(25)
    with SkillIndex(tmp_path / "ix") as ix:
        ix.sync(skills)
        shutil.rmtree(tmp_path / "ix")
        report = ix.sync(skills)  # same object: notices and reopens
        assert (report.added, report.embedded) == (25, 25)
        assert ix.count() == 25 and ix.lexical_search(skills[0].description, 1)
    shutil.rmtree(tmp_path / "ix")
    with SkillIndex(tmp_path / "ix") as fresh:
        assert fresh.count() == 0 and fresh.search("anything") == []
        assert fresh.sync(skills).embedded == 25


def test_bm25_rebuilds_only_on_change_and_survives_loss(tmp_path: Path) -> None:
    skills = synthetic(15)
    with SkillIndex(tmp_path) as ix:
        assert ix.sync(skills).lexical_rebuilt
        assert not ix.sync(skills).lexical_rebuilt
        shutil.rmtree(tmp_path / "bm25")
        # gone from disk: rebuilt from the documents the collection holds, not served from memory
        assert ix.lexical_search(skills[0].description)[0][0] == skills[0].name
        assert (tmp_path / "bm25" / ix.collection_name / "current.json").exists()
        report = ix.sync(skills)
        assert not report.lexical_rebuilt and report.embedded == 0
        assert ix.lexical_search("zebra quagga") == []
        renamed = [*skills[1:], skills[0].with_changes(description="Count zebra and quagga.")]
        assert ix.sync(renamed).lexical_rebuilt
        assert ix.lexical_search("zebra quagga")[0][0] == skills[0].name
        # Another instance (as another process would) sees the new BM25 without a sync.
        with SkillIndex(tmp_path) as other:
            assert other.lexical_search("zebra")[0][0] == skills[0].name
            other.sync(skills)
        assert ix.lexical_search("zebra quagga") == []
    assert tokenize("The PDF-to-CSV tool, v2!") == ["pdf", "csv", "tool", "v2"]


def test_relevance_pdf_first(index: SkillIndex) -> None:
    index.sync(HANDFUL)
    query = "I have a PDF report, pull the tables out of it"
    hits = index.search(query, k=3)
    assert hits[0].name == "pdf-tables" and hits[0].rank == 1
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(isinstance(h, Hit) and h.dense is not None for h in hits)
    assert hits[0].lexical is not None and hits[0].lexical > 0
    assert [h.dense for h in hits] == sorted((h.dense or 0.0 for h in hits), reverse=True)
    assert index.dense_search(query, 1)[0][0] == "pdf-tables"
    assert index.lexical_search(query, 1)[0][0] == "pdf-tables"
    vector = index.embed_query(query)
    assert index.dense_search("", 1, vector=vector)[0][0] == "pdf-tables"
    # A lexical-only hit still gets its dense similarity, for the router to fuse.
    both = index.search("matplotlib", k=1)
    assert "csv-plot" in {h.name for h in both}
    assert all(h.dense is not None and h.lexical is not None for h in both)


def _stored(index: SkillIndex, name: str) -> np.ndarray:
    got = index.collection.get(ids=[name], include=["embeddings"])
    return np.asarray(got["embeddings"], np.float32)[0]


def test_stored_vectors_are_cached_until_their_skill_changes(tmp_path: Path) -> None:
    """`vectors` serves Chroma's vectors from memory; a sync here or by another instance (as
    another process) drops exactly the skills it changed; an old pointer file disables it."""
    with SkillIndex(tmp_path) as ix:
        ix.sync(HANDFUL)
        warm = ix.search("search emails", k=1)
        assert [h.name for h in warm] == ["send-email", "web-search"]  # the second: lexical only
        assert "web-search" in ix._vector_cache  # its similarity came through the cache
        ix._drop_vectors()
        assert ix.search("search emails", k=1) == warm
        first = ix.vectors(["pdf-tables", "csv-plot", "no-such-skill"])
        assert sorted(first) == ["csv-plot", "pdf-tables"]
        for name, v in first.items():
            assert np.array_equal(v, _stored(ix, name)) and not v.flags.writeable
        again = ix.vectors(["csv-plot", "pdf-tables"])
        assert all(again[n] is first[n] for n in first)  # served from memory

        changed = HANDFUL[0].with_changes(description="Count zebras and quaggas in photos.")
        ix.sync([changed, *HANDFUL[1:]])
        after = ix.vectors(["pdf-tables", "csv-plot"])
        assert after["csv-plot"] is first["csv-plot"]  # unchanged skills stay cached
        assert not np.array_equal(after["pdf-tables"], first["pdf-tables"])
        assert np.array_equal(after["pdf-tables"], _stored(ix, "pdf-tables"))

        with SkillIndex(tmp_path) as other:  # another process syncs the old text back
            other.sync(HANDFUL)
        back = ix.vectors(["pdf-tables", "csv-plot"])
        assert np.allclose(back["pdf-tables"], first["pdf-tables"], atol=1e-6)
        assert back["csv-plot"] is first["csv-plot"]

        ix.sync([*HANDFUL[:-1]])  # a removed skill is no longer served
        assert "csv-plot" not in ix.vectors(["csv-plot"])

        pointer = next((tmp_path / "bm25").glob("*/current.json"))
        current = json.loads(pointer.read_text("utf-8"))
        del current["hashes"]  # as written before hashes were kept
        pointer.write_text(json.dumps(current), "utf-8")
        old = ix.vectors(["pdf-tables"])["pdf-tables"]
        assert np.array_equal(old, _stored(ix, "pdf-tables"))
        assert ix.vectors(["pdf-tables"])["pdf-tables"] is not old  # read, never cached
        assert ix.sync([*HANDFUL[:-1]]).lexical_rebuilt  # the next sync rewrites the pointer
        cached = ix.vectors(["pdf-tables"])["pdf-tables"]
        assert ix.vectors(["pdf-tables"])["pdf-tables"] is cached


def test_empty_index_and_bad_input(index: SkillIndex) -> None:
    assert index.search("pdf") == [] and index.dense_search("pdf") == []
    assert index.lexical_search("pdf") == []
    index.sync([])
    assert index.search("pdf") == [] and index.count() == 0
    with pytest.raises(ValueError, match="k must be"):
        index.search("pdf", k=0)
    with pytest.raises(ValueError, match="two skills are named 'pdf-tables'"):
        index.sync([HANDFUL[0], HANDFUL[0]])


def test_reads_while_syncing(index: SkillIndex) -> None:
    skills = synthetic(60)
    index.sync(skills)
    stop = threading.Event()

    def reader(n: int) -> int:
        done = 0
        while not stop.is_set() or done < 5:
            hits = index.search(f"please extract pdf tables {n}", k=5)
            assert hits and all(isinstance(h, Hit) for h in hits)
            index.lexical_search("pdf tables", 5)
            done += 1
        return done

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(reader, n) for n in range(4)]
        for round_ in range(3):
            changed = [s.with_changes(description=f"{s.description} r{round_}") for s in skills]
            assert index.sync(changed[: 40 + round_]).embedded == 40 + round_
        stop.set()
        assert all(f.result() >= 5 for f in futures)


def _run(code: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_fresh_process_reopens_the_collection(tmp_path: Path) -> None:
    with SkillIndex(tmp_path) as ix:
        ix.sync(HANDFUL)
        name = ix.collection_name
    code = """
        import json, sys
        from pathlib import Path
        import chromadb
        from chromadb.config import Settings
        from memento_skills.stores.index import SkillIndex

        root = Path(sys.argv[1])
        with SkillIndex(root) as ix:
            hits = [h.name for h in ix.search("tables inside a pdf", k=2)]
        # Plain Chroma, no embedding function passed: the stored config rebuilds ours.
        client = chromadb.PersistentClient(
            path=str(root / "chroma"), settings=Settings(anonymized_telemetry=False)
        )
        col = client.get_collection(sys.argv[2])
        got = col.query(query_texts=["tables inside a pdf"], n_results=1)
        print(json.dumps({"hits": hits, "plain": got["ids"][0]}))
    """
    result = json.loads(_run(code, str(tmp_path), name))
    assert result["hits"][0] == "pdf-tables" and result["plain"] == ["pdf-tables"]
    with SkillIndex(tmp_path) as again:
        assert again.sync(HANDFUL).embedded == 0


_SYNC_THEN_DIE = """
    import random, sys
    from pathlib import Path
    from memento_skills.evals.bench_store import synthetic_skill
    from memento_skills.stores.embedder import LocalMiniLM
    from memento_skills.stores.index import SkillIndex

    class Announcing(LocalMiniLM):
        def encode(self, texts):
            print("chunk", len(texts), flush=True)
            return super().encode(texts)

    rng = random.Random(0)
    skills = [synthetic_skill(i, rng) for i in range(int(sys.argv[2]))]
    skills = [s.with_changes(description=s.description + sys.argv[3]) for s in skills]
    SkillIndex(Path(sys.argv[1]), embedder=Announcing()).sync(skills)
    print("finished", flush=True)
"""


def _sync_and_kill(index_dir: Path, n: int, suffix: str = "") -> None:
    """Sync N synthetic skills in a subprocess; SIGKILL it once two chunks are written."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SYNC_THEN_DIE), str(index_dir), str(n), suffix],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    chunks = 0
    for line in proc.stdout:
        assert not line.startswith("finished")
        chunks += line.startswith("chunk")
        if chunks == 3:  # two chunks upserted, the third being embedded
            proc.send_signal(signal.SIGKILL)
            break
    assert proc.wait(timeout=60) == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""


def _mark(index_dir: Path) -> str:
    with SkillIndex(index_dir) as ix:
        return str((ix.collection.metadata or {}).get(SYNCED_KEY, ""))


@pytest.mark.slow
def test_crash_mid_build_is_repaired(tmp_path: Path) -> None:
    """SIGKILL a process while it indexes 2,000 skills; the next sync agrees exactly."""
    _sync_and_kill(tmp_path, 2000)
    assert _mark(tmp_path) == ""
    skills = synthetic(2000)
    # The library moved on meanwhile: edits, deletions, additions.
    skills = [
        s.with_changes(description=s.description + " v2") if i % 400 == 0 else s
        for i, s in enumerate(skills)
    ][3:]
    skills += [synthetic_skill(5000 + i, random.Random(9)) for i in range(2)]
    with SkillIndex(tmp_path) as ix:
        partial = ix.count()
        assert 2 * EMBED_CHUNK <= partial < 2000
        report = ix.sync(skills)
        assert report.embedded == len(skills) - report.unchanged
        assert report.unchanged >= partial - 3 - 5
        assert held(ix) == {s.name: s.content_hash for s in skills}
        assert ix.sync(skills).embedded == 0
        probe = skills[100]
        assert ix.search(probe.description, k=3)[0].name == probe.name


@pytest.mark.slow
def test_crash_mid_resync_clears_the_mark(tmp_path: Path) -> None:
    """Killed while re-embedding edits: the count still matches, so only the mark can tell."""
    skills = synthetic(600)
    with SkillIndex(tmp_path) as ix:
        ix.sync(skills)
    assert _mark(tmp_path) != ""
    _sync_and_kill(tmp_path, 600, " Edited.")
    assert _mark(tmp_path) == ""
    edited = [s.with_changes(description=s.description + " Edited.") for s in skills]
    with SkillIndex(tmp_path) as ix:
        assert ix.count() == 600
        report = ix.sync(edited)
        assert (report.embedded, report.unchanged) == (600 - 2 * EMBED_CHUNK, 2 * EMBED_CHUNK)
        assert held(ix) == {s.name: s.content_hash for s in edited}


def test_foreign_writes(index: SkillIndex) -> None:
    """Writes made behind the index's back: a count change is noticed; verify reads all."""
    skills = synthetic(12)
    index.sync(skills)
    index.collection.delete(ids=[skills[0].name])
    assert index.sync(skills).embedded == 1
    index.collection.update(ids=[skills[1].name], metadatas=[{"content_hash": "x", "version": 1}])
    assert index.sync(skills, verify=True).embedded == 1
    assert held(index) == {s.name: s.content_hash for s in skills}
    assert index._client is not None
    index._client.delete_collection(index.collection_name)
    report = index.sync(skills)
    assert (report.added, report.embedded) == (12, 12) and index.count() == 12


@pytest.mark.slow
def test_http_chroma_server(
    chroma_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SkillIndex(tmp_path / "a", chroma_url=chroma_server) as ix:
        assert ix.sync(HANDFUL).embedded == len(HANDFUL)
        assert ix.search("pull the tables out of a pdf", k=2)[0].name == "pdf-tables"
    assert not (tmp_path / "a" / "chroma").exists()  # vectors live on the server
    monkeypatch.setenv("MEMENTO_CHROMA_URL", chroma_server)
    with SkillIndex(tmp_path / "b") as again:  # another client, same server: nothing to embed
        report = again.sync(HANDFUL[1:])
        assert (report.embedded, report.removed, report.unchanged) == (0, 1, len(HANDFUL) - 1)
        assert again.names() == sorted(s.name for s in HANDFUL[1:])


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match="cannot reach the Chroma server") as err:
        SkillIndex(tmp_path, chroma_url=url)
    assert "chroma run" in str(err.value)
    with pytest.raises(ValueError, match="not a URL"):
        SkillIndex(tmp_path, chroma_url="127.0.0.1:8000")


def test_store_bench_runs_on_a_real_library(tmp_path: Path) -> None:
    result = run_store_bench(60, tmp_path)
    assert set(result) == {
        "n",
        "build_s",
        "noop_resync_s",
        "reembedded_after_edits",
        "query_p50_ms",
        "query_p95_ms",
        "peak_rss_mb",
    }
    assert result["n"] == 60 and result["reembedded_after_edits"] == 10
    assert len(list((tmp_path / "skills").glob("*/SKILL.md"))) == 60
    assert 0 < result["query_p50_ms"] <= result["query_p95_ms"]
