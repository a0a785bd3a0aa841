"""Two `langgraph dev` servers sharing one library: a skill learned through one is routed to by
the other, while both serve runs at the same time.

Everything is real: two dev servers (their own processes, ports and server state) on loopback,
one `chroma run` both mirror the library into, the library itself (one folder, or one Postgres
library from the `pgserver` wheel), the sandbox, the judge, the gate. Only the words of the
models are scripted, served over HTTP by one OpenAI-compatible endpoint on loopback: the
executor multiplies right only with the multiplication skill in its prompt, and the writer
writes that skill when a task fails.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client

from memento_skills.stores.settings import open_library

from support.scripted_endpoint import ScriptedEndpoint
from support.servers import serve_langgraph_dev

SKILL = "multiply-large-integers"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _tool_name(request: dict[str, Any]) -> str:
    tools = request.get("tools") or []
    return str(tools[0]["function"]["name"]) if tools else ""


def reply(request: dict[str, Any]) -> str | dict[str, Any]:
    """The scripted models, told apart by the model name each role's context names."""
    messages = request.get("messages") or []
    system = next((_text(m["content"]) for m in messages if m.get("role") == "system"), "")
    task = next((_text(m["content"]) for m in messages if m.get("role") == "user"), "")
    role = request.get("model")
    if role == "executor":
        if SKILL in system:
            a, b = re.findall(r"\d+", task)[:2]
            return str(int(a) * int(b))
        return "12345"  # a confident wrong guess
    if role == "writer":
        prompt = "\n".join(_text(m.get("content")) for m in messages)
        if "Work out why" in prompt:
            args: dict[str, Any] = {
                "cause": "no-skill",
                "failed_step": None,
                "action": "create",
                "tip": "Compute products exactly.",
            }
        elif "Write a new skill" in prompt:
            args = {
                "name": "Multiply Large Integers",
                "description": "Multiply large integers exactly by running Python. Use when a "
                "task asks for the product of two whole numbers.",
                "body": "# Multiplying\n1. Call the python tool with print(a * b).\n"
                "2. Submit the printed number.",
                "allowed_tools": ["python"],
            }
        else:
            args = {"edits": [], "append": None, "rationale": "nothing to change"}
        return {"tool": _tool_name(request), "arguments": args}
    if _tool_name(request) == "Equivalence":
        return {"tool": "Equivalence", "arguments": {"equivalent": False, "reason": "differs"}}
    return "no"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with ScriptedEndpoint(reply, models=("executor", "writer", "judge")) as served:
        yield served.base_url


def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The run context keys that put both servers on one library of the parametrized backend."""
    if request.param == "folder":
        root = tmp_path / "shared-skills"
        open_library(root)  # seeded once here, not by two servers racing
        return {"skills_dir": str(root)}
    if importlib.util.find_spec("memento_skills.stores.pg_store") is None:
        pytest.skip("the Postgres backend (stores/pg_store.py) is not in this checkout")
    url = request.getfixturevalue("postgres_url")  # fails the test if pgserver cannot start
    return {"store_url": url, "store_library": f"two-{uuid.uuid4().hex[:8]}"}


@pytest.fixture(params=["folder", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    return _backend(request, tmp_path)


def _context(endpoint: str, tmp: Path, server: str, chroma: str, **changes: Any) -> dict[str, Any]:
    return {
        "base_url": endpoint,
        "executor_model": "executor",
        "judge_model": "judge",
        "writer_model": "writer",
        "web_search": False,
        "max_attempts": 2,
        "chroma_url": chroma,
        "index_dir": str(tmp / f"index-{server}"),  # each server its own BM25 and state
        "workspace_dir": str(tmp / f"ws-{server}"),
        "run_log": str(tmp / f"runs-{server}.jsonl"),
        "library_rescan_s": 3600,  # only the library's generation can tell a server
        **changes,
    }


def _run(url: str, task: str, gold: str, task_id: str, context: dict[str, Any]) -> dict[str, Any]:
    client = get_sync_client(url=url)
    thread = client.threads.create()
    routes: list[dict[str, Any]] = []
    for part in client.runs.stream(
        thread["thread_id"],
        "memento",
        input={"task": task, "task_id": task_id, "ground_truth": gold},
        context=context,
        stream_mode=["custom"],
        stream_subgraphs=True,
    ):
        assert part.event != "error", part.data
        if isinstance(part.data, dict) and part.data.get("event") == "route":
            routes.append(part.data)
    values = client.threads.get_state(thread["thread_id"])["values"]
    assert isinstance(values, dict)
    return {"routes": routes, **values}


@pytest.mark.slow
def test_a_skill_learned_through_one_server_is_routed_to_by_the_other(
    endpoint: str, chroma_server: str, shared: dict[str, str], tmp_path: Path
) -> None:
    with (
        serve_langgraph_dev(tmp_path / "home-a", tmp_path / "a.log", own_dir=tmp_path / "a") as a,
        serve_langgraph_dev(tmp_path / "home-b", tmp_path / "b.log", own_dir=tmp_path / "b") as b,
    ):
        assert a != b
        learner = _context(endpoint, tmp_path, "a", chroma_server, **shared)
        reader = _context(endpoint, tmp_path, "b", chroma_server, write_policy="off", **shared)

        # b serves first: it has scanned and indexed the library, and fails a product
        before = _run(b, "What is the product of 4321 and 8765?", "37873565", "b-0", reader)
        assert not before["verdict"]["passed"]
        assert all(r["skill"] != SKILL for r in before["routes"])

        # a learns while b keeps serving (b's tasks: no product, no skill of a's)
        served: list[dict[str, Any]] = []
        errors: list[BaseException] = []

        def keep_serving() -> None:
            try:
                for i in range(3):
                    served.append(
                        _run(b, f"Summarize note {i} in one word.", "ok", f"b-busy-{i}", reader)
                    )
            except BaseException as e:  # reported below, with the thread's failure
                errors.append(e)

        busy = threading.Thread(target=keep_serving)
        busy.start()
        learned = _run(a, "What is the product of 1234 and 5678?", str(1234 * 5678), "a-1", learner)
        busy.join(timeout=600)
        assert not errors, errors
        assert len(served) == 3
        created = [w for w in learned["writes"] if w["action"] == "create"]
        assert created and created[0]["accepted"] and created[0]["skill"] == SKILL, learned[
            "writes"
        ]
        assert learned["verdict"]["passed"] and learned["selected_skill"] == SKILL

        # b routes to the skill a learned, at its next task
        after = _run(b, "What is the product of 4321 and 8765?", "37873565", "b-1", reader)
        assert after["selected_skill"] == SKILL, after["routes"]
        assert after["verdict"]["passed"] and after["answer"] == "37873565"
        assert after["selected_version"] == created[0]["version"]

    if "store_url" in shared:  # the servers wrote to Postgres, not to a folder of their own
        from memento_skills.stores.pg_store import PgSkillStore

        store = PgSkillStore(
            shared["store_url"], library=shared["store_library"], cache_dir=tmp_path / "check"
        )
        assert store.get(SKILL).version == created[0]["version"]
    else:
        assert (Path(shared["skills_dir"]) / SKILL / "SKILL.md").is_file()
