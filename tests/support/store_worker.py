"""A worker process on a skill store, for the tests that need real separate writers.

python store_worker.py SPEC count NAME N      N read-modify-write updates, +1 each
python store_worker.py SPEC update NAME BODY  one update of the body
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import `support`

from support.stores import open_spec

COUNTER = re.compile(r"count: (\d+)")


def bump(skill: object) -> dict[str, object]:
    """The next body: the counter in it plus one (computed from the live version given)."""
    body = skill.body  # type: ignore[attr-defined]
    n = int(COUNTER.search(body).group(1))  # type: ignore[union-attr]
    return {"body": COUNTER.sub(f"count: {n + 1}", body)}


def pause_mid_write(store: Any) -> None:
    """Make the store's next write stop inside itself, after the new version is written and
    before it is live: the Postgres store right after inserting the version row (its
    transaction open), the folder right after building the new folder (before its switch)."""
    name = "_insert_version" if hasattr(store, "_insert_version") else "_switch"
    real = getattr(store, name)

    def paused(*args: Any, **kwargs: Any) -> Any:
        if name == "_insert_version":
            real(*args, **kwargs)
        print("paused", flush=True)
        time.sleep(600)  # until killed
        raise SystemExit("not killed")

    setattr(store, name, paused)


def main() -> None:
    spec, command, *args = sys.argv[1:]
    store = open_spec(json.loads(spec))
    if command == "count":
        name, n = args[0], int(args[1])
        for _ in range(n):
            store.update(name, apply=bump)
    elif command == "update":
        store.update(args[0], body=args[1])
    elif command == "trial":
        name = args[0]
        base = store.get(name).version
        live = store.update(name, body="unvetted")
        with store.trial(name, live.version, base):
            print("on trial", flush=True)
            sys.stdin.readline()
    elif command == "change-trial":
        name = args[0]
        base = store.get(name).version
        with store.change_on_trial(name, base, "change-k1"):
            store.update(name, body="unvetted", change="change-k1")
            print("on trial", flush=True)
            sys.stdin.readline()
    elif command == "hold-lock":
        with store.lock(args[0]):
            print("locked", flush=True)
            sys.stdin.readline()
    elif command == "die-mid-write":
        pause_mid_write(store)
        store.update(args[0], body="torn?", files={"scripts/a.py": b"# torn?\n"})
    else:
        raise SystemExit(f"unknown command {command!r}")
    print("done", flush=True)


if __name__ == "__main__":
    main()
