"""Whether a gold value shows in a written file: as a whole number, since the bookkeeping hashes
in the front matter are random hex and may hold its digits."""

from __future__ import annotations

import re
from pathlib import Path


def holds_value(value: str, path: Path) -> bool:
    return re.search(rf"\b{re.escape(value)}\b", path.read_text()) is not None
