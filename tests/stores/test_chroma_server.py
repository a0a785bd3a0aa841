"""Chroma server mode: one collection per library, and running processes notice other syncs.

Against one real `chroma run` server (the `chroma_server` fixture of tests/conftest.py);
libraries are real folders, the syncs of "another process" are real `memento skills sync`
subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings

import memento_skills
from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.nodes.routing.service import LearnedRouter
from memento_skills.stores.chroma import (
    ChromaSettingError,
    ChromaUnreachableError,
    IndexSetupError,
)
from memento_skills.stores.embedder import make_embedder
from memento_skills.stores.index import CONTENT_KEY, SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.settings import open_library
from memento_skills.stores.skill import Skill

from support.commands import MEMENTO, QUIET
from support.servers import free_port

PDF = Skill(
    name="pdf",
    description="Make PDF documents from text or markdown, and read text and tables out of PDFs.",
    body="Use reportlab to write the PDF.",
)
OTHER_LIBRARY = [
    Skill(
        name="email-draft",
        description="Draft short, polite emails from a few bullet points.",
        body="Be brief.",
    ),
    Skill(
        name="csv-plot",
        description="Plot charts from CSV spreadsheets with matplotlib.",
        body="Label the axes.",
    ),
]
KELVIN = Skill(
    name="temperature-convert",
    description="Convert temperatures between celsius, fahrenheit and kelvin scales.",
    body="K = C + 273.15.",
)


def _env(tmp: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMENTO_")}
    return {**env, **QUIET, "MEMENTO_HOME": str(tmp / "home"), "MEMENTO_CHROMA_URL": url, **extra}


def _sync(tmp: Path, url: str, library: Path, **extra: str) -> dict[str, object]:
    """`memento skills sync --json` in a subprocess, as another process would run it."""
    done = subprocess.run(
        [MEMENTO, "skills", "sync", "--dir", str(library), "--json"],
        env=_env(tmp, url, **extra),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert isinstance(report, dict)
    return report


def _library(root: Path, skills: list[Skill], *, seed: bool) -> SkillLibrary:
    library = open_library(root, seed=seed)
    for skill in skills:
        library.create(skill)
    return library


def _counts(url: str) -> dict[str, int]:
    port = int(url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(
        host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False)
    )
    return {c.name: c.count() for c in client.list_collections()}


def _route(resources: Resources, ctx: Context, query: str) -> tuple[str, float]:
    """What route_skill does before it picks: sync if needed, then rank."""
    index, skills = resources.synced_index(ctx)
    ranked = LearnedRouter().rank(query, skills, index, 5, "hybrid")
    return ranked[0]["name"], ranked[0]["score"]


@pytest.mark.slow
def test_two_libraries_keep_their_own_collections(
    chroma_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _library(tmp_path / "first", [PDF], seed=True)
    second = _library(tmp_path / "second", OTHER_LIBRARY, seed=False)
    n_first = len(first.skills())
    assert n_first >= 5
    one = _sync(tmp_path, chroma_server, first.root)
    assert (one["added"], one["removed"]) == (n_first, 0)
    two = _sync(tmp_path, chroma_server, second.root)  # the same index folder ($MEMENTO_HOME/index)
    assert (two["added"], two["removed"]) == (2, 0)
    assert (
        two["collection"] != one["collection"] and one["chroma"] == two["chroma"] == chroma_server
    )
    again = _sync(tmp_path, chroma_server, first.root)
    assert (again["embedded"], again["removed"], again["unchanged"]) == (0, 0, n_first)

    ours = (str(one["collection"]), str(two["collection"]))
    counts = _counts(chroma_server)
    assert (counts[ours[0]], counts[ours[1]]) == (n_first, 2), counts
    first_id = json.loads((first.root / ".memento" / "library.json").read_text())["id"]
    assert ours[0].startswith(f"memento-{first_id}-"), (first_id, ours)

    for var, value in _env(tmp_path, chroma_server).items():
        if var.startswith("MEMENTO_"):
            monkeypatch.setenv(var, value)
    resources = Resources()
    in_first = Context(skills_dir=str(first.root), index_dir=str(tmp_path / "own-index"))
    in_second = Context(skills_dir=str(second.root), index_dir=str(tmp_path / "own-index"))
    name, score = _route(resources, in_first, "make a PDF from this text")
    assert name == "pdf" and score > 0.4, (name, score)
    assert _route(resources, in_second, "write an email to my landlord")[0] == "email-draft"
    assert _route(resources, in_first, "make a PDF from this text")[0] == "pdf"
    counts = _counts(chroma_server)
    assert (counts[ours[0]], counts[ours[1]]) == (n_first, 2), counts


@pytest.mark.slow
def test_a_running_process_notices_a_sync_by_another(chroma_server: str, tmp_path: Path) -> None:
    library = _library(tmp_path / "lib", [PDF], seed=True)
    _sync(tmp_path, chroma_server, library.root)
    reader = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from memento_skills.nodes.routing.hybrid import HybridRouter
        from memento_skills.stores.index import SkillIndex
        from memento_skills.stores.library import SkillLibrary

        library = SkillLibrary(Path(sys.argv[2]))
        index = SkillIndex(Path(sys.argv[1]), library=library.root)  # never syncs
        router = HybridRouter()
        print("ready", flush=True)
        for line in sys.stdin:
            skills = {s.name: s for s in library.skills()}
            top = router.rank(line.strip(), skills, index, 3, "hybrid")[0]
            print(json.dumps(top), flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", reader, str(tmp_path / "reader-index"), str(library.root)],
        env=_env(tmp_path, chroma_server),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def ask(query: str) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(query + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        answer = json.loads(line)
        assert isinstance(answer, dict)
        return answer

    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        query = "convert 300 kelvin to celsius"
        before = ask(query)
        assert before["name"] != KELVIN.name
        pdf = ask("make a PDF from this text")  # its BM25 was rebuilt from the collection
        assert pdf["name"] == "pdf" and (pdf["lexical"] or 0) > 0, pdf

        library.create(KELVIN)
        report = _sync(
            tmp_path, chroma_server, library.root
        )  # another process, its own index folder
        assert (report["added"], report["removed"]) == (1, 0)
        after = ask(query)
        assert after["name"] == KELVIN.name, after
        assert (after["lexical"] or 0) > 0, after  # BM25 too, not only Chroma's dense answer

        library.delete(KELVIN.name)
        _sync(tmp_path, chroma_server, library.root)
        assert ask(query)["name"] != KELVIN.name
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


@pytest.mark.slow
def test_a_running_process_resyncs_a_collection_changed_under_it(
    chroma_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: another library synced into this library's collection."""
    first = _library(tmp_path / "first", [PDF], seed=True)
    second = _library(tmp_path / "second", OTHER_LIBRARY, seed=False)
    for var, value in _env(tmp_path, chroma_server).items():
        if var.startswith("MEMENTO_"):
            monkeypatch.setenv(var, value)
    resources = Resources()
    ctx = Context(skills_dir=str(first.root), index_dir=str(tmp_path / "running"))
    assert _route(resources, ctx, "make a PDF from this text")[0] == "pdf"
    index = resources.index(ctx)
    n_first = index.count()

    # Another process, told to use the same collection, syncs a different library into it.
    clash = _sync(
        tmp_path, chroma_server, second.root, MEMENTO_CHROMA_COLLECTION=index.collection_name
    )
    assert (clash["added"], clash["removed"]) == (2, n_first)
    assert index.changed_since_sync()
    name, score = _route(resources, ctx, "make a PDF from this text")
    assert name == "pdf" and score > 0.4, (name, score)
    assert index.count() == n_first and not index.changed_since_sync()


@pytest.mark.slow
def test_an_index_without_local_state_reads_what_the_server_holds(
    chroma_server: str, tmp_path: Path
) -> None:
    library = _library(tmp_path / "lib", [PDF], seed=True)
    with SkillIndex(tmp_path / "a", library=library.root, chroma_url=chroma_server) as writer:
        writer.sync(library.skills())
        meta = writer.collection.metadata or {}
        assert meta.get(CONTENT_KEY)
    with (
        SkillIndex(tmp_path / "b", library=library.root, chroma_url=chroma_server) as reader,
        SkillIndex(tmp_path / "c", library=library.root, chroma_url=chroma_server) as elsewhere,
    ):
        assert reader.collection_name == writer.collection_name == elsewhere.collection_name
        assert reader.lexical_search("pdf reportlab")[0][0] == "pdf"
        assert reader.changed_since_sync()  # it never synced: the route path will sync once
        cached = reader.vectors(["pdf"])["pdf"]
        assert reader.vectors(["pdf"])["pdf"] is cached  # from memory while nothing changed

        # Another machine (its own index folder) changes the skill and syncs.
        changed = library.update(
            "pdf", apply=lambda cur: {"description": "Count zebras in photos.", "body": "Look."}
        )
        assert elsewhere.sync(library.skills()).embedded == 1
        fresh = reader.vectors(["pdf"])["pdf"]
        stored = elsewhere.collection.get(ids=["pdf"], include=["embeddings"])["embeddings"]
        assert stored is not None and np.allclose(fresh, stored[0])
        assert not np.allclose(fresh, cached)
        assert reader.lexical_search("zebras")[0][0] == changed.name
        assert reader.lexical_search("reportlab") == []


def test_a_copied_library_gets_its_own_collection_a_moved_one_keeps_it(tmp_path: Path) -> None:
    library = _library(tmp_path / "lib", [PDF], seed=False)
    with SkillIndex(tmp_path / "index", library=library.root) as ix:
        name = ix.collection_name
        ix.sync(library.skills())
    assert name.startswith("memento-lib-") and name.endswith("-memento-minilm-int8")
    with SkillIndex(tmp_path / "index", library=library.root) as same:
        assert same.collection_name == name and same.count() == 1

    copy = tmp_path / "copy"
    shutil.copytree(library.root, copy, symlinks=True)  # as `memento eval --library-from` does
    with SkillIndex(tmp_path / "index", library=copy) as copied:
        assert copied.collection_name != name
        assert copied.sync(SkillLibrary(copy).skills()).added == 1
    record = json.loads((copy / ".memento" / "library.json").read_text())
    assert record["copied_from"] in name

    moved = tmp_path / "moved"
    os.rename(library.root, moved)
    with SkillIndex(tmp_path / "index", library=moved) as renamed:
        assert renamed.collection_name == name
        report = renamed.sync(SkillLibrary(moved).skills())
        assert (report.embedded, report.unchanged) == (0, 1)
    with SkillIndex(tmp_path / "index", library=moved, collection=name) as chosen:
        assert chosen.collection_name == name  # an override is used exactly as given


def test_collection_override_is_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ["ab", "-abc", "abc-", "a b c", "caf\u00e9s", "x" * 513, "a..b"]:
        with pytest.raises(ChromaSettingError) as err:
            SkillIndex(tmp_path, collection=bad)
        message = str(err.value)
        assert "\n" not in message and "MEMENTO_CHROMA_COLLECTION" in message, message
    monkeypatch.setenv("MEMENTO_CHROMA_COLLECTION", "no spaces please")
    with pytest.raises(ChromaSettingError, match="not a Chroma collection name"):
        SkillIndex(tmp_path, library=tmp_path)
    monkeypatch.setenv("MEMENTO_CHROMA_COLLECTION", "team.shared_skills-1")
    with SkillIndex(tmp_path / "index", library=tmp_path) as ix:
        assert ix.collection_name == "team.shared_skills-1"
        ix.sync([PDF])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-used")  # nothing is embedded: no request
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ChromaSettingError, match="holds vectors of the embedder") as err:
        SkillIndex(tmp_path / "index", library=tmp_path, embedder=make_embedder("openai"))
    assert "\n" not in str(err.value) and "openai" in str(err.value)
    with SkillIndex(tmp_path / "index", library=tmp_path) as again:  # nothing was harmed
        assert again.names() == ["pdf"]


def test_closed_or_malformed_server_url_is_a_one_line_error(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChromaUnreachableError) as err:
        SkillIndex(tmp_path, chroma_url=closed)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"cannot reach the Chroma server at {closed}")
    assert "MEMENTO_CHROMA_URL" in message and "chroma run --path DIR" in message
    assert isinstance(err.value, IndexSetupError) and isinstance(err.value, ConnectionError)
    assert memento_skills.IndexSetupError is IndexSetupError  # the public name to catch
    for bad in ["127.0.0.1:8000", "http://", "ftp://host:8000", "http://host:port"]:
        with pytest.raises(ChromaSettingError) as bad_err:
            SkillIndex(tmp_path, chroma_url=bad)
        text = str(bad_err.value)
        assert "\n" not in text and "MEMENTO_CHROMA_URL" in text and "http://127.0.0.1:8000" in text


def test_skills_sync_says_what_to_set_on_one_line(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    cases = [  # exit 3: unreachable; 2: a bad setting
        ({"MEMENTO_CHROMA_URL": closed}, 3, f"cannot reach the Chroma server at {closed}"),
        ({"MEMENTO_CHROMA_URL": "localhost:8000"}, 2, "is not a URL like http://127.0.0.1:8000"),
        ({"MEMENTO_CHROMA_COLLECTION": "a b"}, 2, "is not a Chroma collection name"),
    ]
    for extra, code, expected in cases:
        env = {**_env(tmp_path, closed), **extra}
        if "MEMENTO_CHROMA_URL" not in extra:
            del env["MEMENTO_CHROMA_URL"]
        done = subprocess.run(
            [MEMENTO, "skills", "sync"], env=env, capture_output=True, text=True, timeout=120
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == code and len(lines) == 1, done.stderr
        assert lines[0].startswith("error: ") and expected in lines[0], lines
        assert "MEMENTO_CHROMA_" in lines[0]


def test_a_run_with_a_bad_chroma_context_is_refused_before_it_starts() -> None:
    from memento_skills.graph.validation import RunRefused, check_context

    for key, bad in [("chroma_collection", "a b"), ("chroma_url", "localhost:8000")]:
        with pytest.raises(RunRefused, match=f"context field '{key}' is '{bad}'"):
            check_context({key: bad})
    ok = check_context({"chroma_collection": "team.shared-1", "chroma_url": "http://h:8000"})
    assert ok is not None and ok.chroma_collection == "team.shared-1"
    assert check_context({"chroma_collection": "", "chroma_url": ""}) is not None
