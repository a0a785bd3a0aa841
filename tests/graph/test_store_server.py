"""`langgraph dev` on a shared store: a run whose context names a store library (as
MEMENTO_STORE_URL does for every run of a server) learns into Postgres, not a folder — a real dev
server, a real Postgres (pgserver), runs through `langgraph_sdk`, an HTTP model that answers 42."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_sync_client

from memento_skills.stores.shared_store import open_shared

from support.scripted_endpoint import ScriptedEndpoint


@pytest.fixture(scope="module")
def answers_42() -> Iterator[str]:
    with ScriptedEndpoint(lambda request: "42", models=("m",)) as endpoint:
        yield endpoint.base_url


@pytest.mark.slow
def test_runs_through_langgraph_dev_learn_into_the_store_the_context_names(
    langgraph_dev: str, answers_42: str, postgres_url: str, tmp_path: Path
) -> None:
    library = f"t{uuid.uuid4().hex[:10]}"
    context: dict[str, Any] = {
        "base_url": answers_42,
        "executor_model": "m",
        "judge_model": "m",
        "writer_model": "m",
        "web_search": False,
        "store_url": postgres_url,
        "store_library": library,
        "workspace_dir": str(tmp_path / "ws"),
    }
    client = get_sync_client(url=langgraph_dev)
    for n in range(2):
        thread = client.threads.create()
        client.runs.wait(
            thread["thread_id"],
            "memento",
            input={"task": "What is 6 times 7?", "task_id": f"t{n}", "ground_truth": "42"},
            context=context,
        )
        values = client.threads.get_state(thread["thread_id"])["values"]
        assert isinstance(values, dict) and values["verdict"]["passed"], values
    shared = open_shared(postgres_url, library, cache_dir=tmp_path / "reader")
    log = shared.run_log.records()
    assert [r["task_id"] for r in log] == ["t0", "t1"]
    skill = log[0]["skill"]
    assert skill and shared.skills.get(skill).utility.successes == 2
    assert [c.ground_truth for c in shared.cases.load(skill)] == ["42"]
