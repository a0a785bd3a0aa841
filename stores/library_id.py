"""A library's stable identity, so each library gets a Chroma collection of its own.

The id is made once, on first use, and kept in `<library>/.memento/library.json` with the folder's
real path and its (device, inode). Reading it back:

- same path: the same library (also after a restore from a backup);
- another path, same (device, inode): the folder was renamed or moved on its disk, it keeps its id
  (and its collection); the new path is written down;
- another path and another inode: a copy (`cp -r`, `shutil.copytree`, `git clone`, a move to
  another disk, `memento eval --library-from`): it gets a new id, hence its own collection, so
  syncing the copy never removes the original's vectors. To share one collection on purpose, set
  the collection name (MEMENTO_CHROMA_COLLECTION / Context.chroma_collection).

A library that cannot be written (a read-only folder) gets an id derived from its real path.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import uuid
from pathlib import Path

from filelock import FileLock, Timeout

from memento_skills.stores.atomic import atomic_write
from memento_skills.stores.library import META_DIR

ID_FILE = "library.json"
_LABEL = re.compile(r"[^a-z0-9]+")


def _label(root: Path) -> str:
    """A readable part for the id: the folder's name, as lowercase letters, digits and hyphens."""
    return _LABEL.sub("-", root.name.lower()).strip("-")[:40] or "library"


def _read(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        return None
    return data


def library_id(root: Path | str) -> str:
    """The stable id of the library at `root` (created on first use); see the module docstring."""
    root = Path(root).expanduser()
    real = os.path.realpath(root)
    if not os.path.isdir(real):
        raise FileNotFoundError(
            errno.ENOENT, "No library folder here (create it, or name another one)", str(root)
        )
    st = os.stat(real)
    here = [st.st_dev, st.st_ino]
    path = root / META_DIR / ID_FILE
    known = _read(path)
    if known is not None and known.get("path") == real:
        return str(known["id"])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / META_DIR / f"{ID_FILE}.lock"), timeout=30):
            known = _read(path)  # another process may have written it meanwhile
            if known is not None and known.get("path") == real:
                return str(known["id"])
            if known is not None and known.get("inode") == here:
                record = {**known, "path": real}  # renamed or moved on the same disk
            else:
                record = {"id": f"{_label(root)}-{uuid.uuid4().hex[:12]}", "path": real}
                if known is not None:
                    record["copied_from"] = known["id"]
                record["inode"] = here
            atomic_write(path, (json.dumps(record, indent=1) + "\n").encode())
            return str(record["id"])
    except Timeout:
        raise
    except OSError:  # read-only: an id that depends on the place only
        return f"{_label(root)}-{hashlib.sha256(real.encode()).hexdigest()[:12]}"
