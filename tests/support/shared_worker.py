"""A worker process on a shared store's cases, run log and router weights (not its skills).

python shared_worker.py URL LIBRARY ROOT write ID   add a case with two files, append run-log
                                                    records (one under a key every writer uses)
                                                    and save router weights, all tagged ID
python shared_worker.py URL LIBRARY ROOT read       print what the store holds, as JSON
python shared_worker.py URL LIBRARY ROOT race T N   from wall time T on, add the same N cases
                                                    another worker adds at the same time
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from memento_skills.stores.cases import Case
from memento_skills.stores.pg_cases import PgCaseStore
from memento_skills.stores.pg_router_weights import PgRouterWeights
from memento_skills.stores.pg_run_log import PgRunLog
from memento_skills.stores.store_url import connection_pool

RECORDS = 20
SHARED_KEY = "the-same-attempt"


def payload(tag: str) -> dict[str, bytes]:
    """The files a writer's case is given: text and binary bytes that name the writer."""
    return {
        "data.txt": f"reading of {tag}\n".encode(),
        "sheet/raw.bin": bytes(range(256)) + tag.encode() + b"\x00\xff",
    }


def write(url: str, library: str, root: Path, tag: str) -> None:
    pool = connection_pool(url)
    given = root / "given" / tag
    files = {}
    for name, data in payload(tag).items():
        (given / name).parent.mkdir(parents=True, exist_ok=True)
        (given / name).write_bytes(data)
        files[name] = given / name
    case = Case(task=f"what does the file of {tag} hold?", ground_truth=tag)
    added = PgCaseStore(pool, library, root / "copy").add("read-file", case, files)
    log = PgRunLog(pool, library)
    appended = sum(log.append({"writer": tag, "n": i}, key=f"{tag}-{i}") for i in range(RECORDS))
    appended += log.append({"writer": tag, "n": -1}, key=SHARED_KEY)
    weights = PgRouterWeights(pool, library)
    saved = weights.save({"w": np.full((3, 4), len(tag), np.float32)}, {"writer": tag})
    print(json.dumps({"added": added, "appended": appended, "version": saved.version}))


def read(url: str, library: str, root: Path) -> None:
    pool = connection_pool(url)
    store = PgCaseStore(pool, library, root / "copy")
    cases = store.load("read-file")
    files = {}
    for case in cases:
        for name, path in store.files_of(case).items():
            mode = path.stat().st_mode & 0o777
            files[f"{case.ground_truth}/{name}"] = {"hex": path.read_bytes().hex(), "mode": mode}
    loaded = PgRouterWeights(pool, library).load()
    assert loaded is not None
    arrays, header, version = loaded
    print(
        json.dumps(
            {
                "cases": sorted(str(c.ground_truth) for c in cases),
                "files": files,
                "log": PgRunLog(pool, library).records(),
                "weights": {
                    "version": version,
                    "writer": header["writer"],
                    "w": arrays["w"].tolist(),
                },
            }
        )
    )


def race(url: str, library: str, root: Path, start: float, n: int) -> None:
    store = PgCaseStore(connection_pool(url), library, root / "copy")
    time.sleep(max(0.0, start - time.time()))  # both workers begin together
    added = [store.add("raced", Case(task=f"task {i}", ground_truth=str(i))) for i in range(n)]
    print(json.dumps({"added": sum(added)}))


def main() -> None:
    url, library, root, command, *args = sys.argv[1:]
    if command == "write":
        write(url, library, Path(root), args[0])
    elif command == "read":
        read(url, library, Path(root))
    elif command == "race":
        race(url, library, Path(root), float(args[0]), int(args[1]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
