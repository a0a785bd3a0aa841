"""The connection to Chroma: collection names, the HTTP client, and the errors of a bad setting.

Each library has its own collection, named from the library's stable id (stores/library_id.py)
and the embedder, or a name the user sets; a server URL selects a Chroma server instead of the
embedded store. A malformed setting or an unreachable server is a one-line IndexSetupError that
names the setting to change.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.types import Documents, EmbeddingFunction
from chromadb.config import Settings

from memento_skills.stores.embedder import embedder_id
from memento_skills.stores.settings import CHROMA_URL_ENV, COLLECTION_ENV

_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]")


class IndexSetupError(Exception):
    """The index cannot open as configured; the message (one line) says which setting to change."""


class ChromaSettingError(IndexSetupError, ValueError):
    """A Chroma setting (server URL, collection name) is malformed or does not fit the index."""


class ChromaUnreachableError(IndexSetupError, ConnectionError):
    """No Chroma server answers at the configured URL."""


def collection_name(base: str, embedder: EmbeddingFunction[Documents]) -> str:
    """Collection name per embedder, so vectors of different models never share a collection."""
    raw = f"{base}-{embedder_id(embedder)}"
    name = _BAD_NAME_CHARS.sub("-", raw).strip("-._")[:200].rstrip("-._")
    if len(name) < 3:
        raise ChromaSettingError(f"collection name {raw!r} is too short: use at least 3 letters")
    return name


def check_collection_name(name: str) -> str:
    """`name` if Chroma accepts it as a collection name, else a ChromaSettingError saying why."""
    if not _COLLECTION_NAME.fullmatch(name) or ".." in name:
        raise ChromaSettingError(
            f"{COLLECTION_ENV}/chroma_collection {name!r} is not a Chroma collection name: set "
            "it to 3-512 characters from A-Z a-z 0-9 . _ -, starting and ending with a letter "
            "or digit (or unset it to use the library's own collection)"
        )
    return name


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def http_client(url: str) -> ClientAPI:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        port, parts = None, parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChromaSettingError(
            f"{CHROMA_URL_ENV}/chroma_url {url!r} is not a URL like http://127.0.0.1:8000: set "
            f"it to the address of a Chroma server, or unset {CHROMA_URL_ENV} to use the local "
            "index folder"
        )
    ssl = parts.scheme == "https"
    port = port or (443 if ssl else 8000)
    try:
        client = chromadb.HttpClient(
            host=parts.hostname,
            port=port,
            ssl=ssl,
            settings=Settings(anonymized_telemetry=False),
        )
        client.heartbeat()
    except Exception as e:
        raise ChromaUnreachableError(
            f"cannot reach the Chroma server at {url} ({_one_line(e)}): start one with "
            f"`chroma run --path DIR --host {parts.hostname} --port {port}`, set "
            f"{CHROMA_URL_ENV} to the URL of a running one, or unset it to use the local "
            "index folder"
        ) from e
    return client


def close_client(client: ClientAPI) -> None:
    close = getattr(client, "close", None)  # the persistent client has it; the protocol does not
    if callable(close):
        close()
