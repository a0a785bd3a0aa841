"""Versioned, checksummed storage for the learned router's weights, next to the library.

Layout under `<library>/.memento/router/`:

    v000001.npz, v000002.npz, ...   one file per saved state (arrays plus a JSON header)
    current.json                    names the live version and its sha256

A save writes the new file (temp, fsync, rename) before the pointer is switched the same way,
so a crash leaves the previous state live. The checksum in the pointer catches a truncated or
hand-edited weights file: loading it raises `RouterWeightsError`, which the router turns into a
warning and the untrained score, never a crash of the agent. Old versions are pruned to a few.

A library kept in a shared store (stores/pg_router_weights.py) keeps its weights there instead:
the store registers itself for the weights folder of its local copy with `share_weights`, and a
`RouterWeightsStore` made for that folder reads and writes the shared versions, so every worker
routes with the same learned state. The bytes and their checks are the same either way
(`encode`, `decode`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from filelock import FileLock

from memento_skills.stores.atomic import atomic_write

FORMAT = 1
KEEP_VERSIONS = 5
POINTER = "current.json"
_VERSION_FILE = re.compile(r"^v(\d{6,})\.npz$")


class RouterWeightsError(RuntimeError):
    """The stored router weights cannot be used (damaged, foreign format, other embedder)."""


def weights_dir(library_root: Path | str) -> Path:
    return Path(library_root).expanduser() / ".memento" / "router"


@dataclass(frozen=True)
class Saved:
    version: int
    path: Path | str
    """The file it went to, or where in the shared store (no password)."""
    sha256: str


class SharedWeights(Protocol):
    """Router weights kept in a shared store rather than in the library's folder."""

    def exists(self) -> bool: ...
    def live_version(self) -> int | None: ...
    def save(
        self, arrays: dict[str, np.ndarray], header: dict[str, Any], *, over: int | None = ...
    ) -> Saved: ...
    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any], int] | None: ...


_shared: dict[Path, SharedWeights] = {}


def share_weights(library_root: Path | str, store: SharedWeights) -> None:
    """Keep the router weights of the library whose local copy is `library_root` in `store`."""
    _shared[weights_dir(library_root).absolute()] = store


def encode(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> tuple[bytes, str]:
    """One saved state as bytes (an .npz with a JSON header) and their sha256."""
    buffer = io.BytesIO()
    head = json.dumps({**header, "format": FORMAT}).encode("utf-8")
    savez: Any = np.savez  # its stubs type **arrays as its own keyword flags
    savez(buffer, __header__=np.frombuffer(head, dtype=np.uint8), **arrays)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def decode(
    data: bytes, expected_sha256: str, where: str, fix: str, *, recorded_in: str
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, header) of a saved state; RouterWeightsError naming `where` when it is damaged."""
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise RouterWeightsError(
            f"{where} does not match the checksum recorded in {recorded_in} "
            f"(truncated or edited): {fix}"
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        header = json.loads(arrays.pop("__header__").tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise RouterWeightsError(f"{where} is not a router weights file ({e}): {fix}") from None
    if header.get("format") != FORMAT:
        raise RouterWeightsError(
            f"{where} has format {header.get('format')!r}, this version reads {FORMAT}: {fix}"
        )
    return arrays, header


class StaleWeights(RuntimeError):
    """A checked save found that another worker saved since the version it was built on: the
    saver reloads, adds its change again and saves once more, so no worker's case is lost."""


ANY_VERSION = -1
"""`save(over=ANY_VERSION)`: replace whatever is live (a retrain from scratch)."""


def check_over(live: int | None, over: int | None, where: str) -> None:
    """StaleWeights unless `live` is the version `over` the save was built on."""
    if over != ANY_VERSION and live != over:
        raise StaleWeights(f"{where}: v{live} is live, the save was built on v{over}")


class RouterWeightsStore:
    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser()
        self.pointer = self.root / POINTER
        self.shared = _shared.get(self.root.absolute())
        """The shared store that keeps this library's weights, None for the folder."""

    def exists(self) -> bool:
        if self.shared is not None:
            return self.shared.exists()
        return self.pointer.exists()

    def save(
        self,
        arrays: dict[str, np.ndarray],
        header: dict[str, Any],
        *,
        over: int | None = ANY_VERSION,
    ) -> Saved:
        """Write a new version and make it live; returns where it went. With `over` (the version
        the arrays were built on, None for none), StaleWeights if another save came first."""
        if self.shared is not None:
            return self.shared.save(arrays, header, over=over)
        self.root.mkdir(parents=True, exist_ok=True)
        data, digest = encode(arrays, header)
        with FileLock(str(self.root / ".lock")):
            check_over(self.live_version(), over, str(self.root))
            version = max(self._versions(), default=0) + 1
            path = self.root / f"v{version:06d}.npz"
            atomic_write(path, data)
            pointer = {"version": version, "file": path.name, "sha256": digest, "format": FORMAT}
            atomic_write(self.pointer, json.dumps(pointer).encode("utf-8"))
            for old in sorted(self._versions())[:-KEEP_VERSIONS]:
                with contextlib.suppress(OSError):
                    (self.root / f"v{old:06d}.npz").unlink()
        return Saved(version, path, digest)

    def live_version(self) -> int | None:
        """The live version (one small read); None when unsaved or unreadable."""
        if self.shared is not None:
            return self.shared.live_version()
        try:
            return int(json.loads(self.pointer.read_bytes())["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load(self) -> tuple[dict[str, np.ndarray], dict[str, Any], int] | None:
        """(arrays, header, version) of the live state; None when nothing was ever saved."""
        if self.shared is not None:
            return self.shared.load()
        if not self.pointer.exists():
            return None
        fix = f"delete {self.root} to start untrained, or rebuild it with `memento router train`"
        try:
            pointer = json.loads(self.pointer.read_text("utf-8"))
            name, expected, version = pointer["file"], pointer["sha256"], int(pointer["version"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RouterWeightsError(f"{self.pointer} is unreadable ({e}): {fix}") from None
        path = self.root / str(name)
        if not _VERSION_FILE.match(path.name):
            raise RouterWeightsError(f"{self.pointer} names {name!r}, not a weights file: {fix}")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise RouterWeightsError(f"cannot read {path} ({e.strerror or e}): {fix}") from None
        arrays, header = decode(data, expected, str(path), fix, recorded_in=POINTER)
        return arrays, header, version

    def _versions(self) -> list[int]:
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.iterdir():
            m = _VERSION_FILE.match(p.name)
            if m:
                out.append(int(m.group(1)))
        return out
