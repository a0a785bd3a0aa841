"""End to end through `langgraph dev`: the graph as LangGraph Studio and the SDK see it.

A real dev server is started from the repo root (it reads langgraph.json), a real run is
streamed through `langgraph_sdk`, and every model call goes over HTTP to an OpenAI-compatible
server on loopback that always answers "42" — the cheapest real endpoint that needs neither
network nor key. Nothing in between is replaced. One dev server serves the session (the
`langgraph_dev` fixture of tests/conftest.py: starting it costs seconds) and one stub the module;
each test clears the stub's request log first.

Besides a run, the module checks what Studio reads (the served input, output and context
schemas) and that a run with a wrong context or input is refused before any model request.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import UnprocessableEntityError
from pydantic import TypeAdapter
from typing_extensions import is_typeddict

from memento_skills.graph.context import Context

from support.commands import REPO
from support.scripted_endpoint import ScriptedEndpoint

ANSWER = "42"


@pytest.fixture(scope="module")
def openai_stub() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Chat completions that always answer ANSWER, plain or streamed; records every request."""
    with ScriptedEndpoint(lambda request: ANSWER, models=("m",)) as endpoint:
        yield endpoint.base_url, endpoint.requests


@pytest.fixture
def stub(openai_stub: tuple[str, list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    """The module's stub, its request log emptied for this test."""
    openai_stub[1].clear()
    return openai_stub


def _context(base_url: str, tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A run context pointing every model at the stub and every file under tmp_path."""
    return {
        "base_url": base_url,
        "executor_model": "m",
        "judge_model": "m",
        "writer_model": "m",
        "write_policy": "off",
        "web_search": False,
        "skills_dir": str(tmp_path / "skills"),
        "index_dir": str(tmp_path / "index"),
        "workspace_dir": str(tmp_path / "ws"),
        "run_log": str(tmp_path / "runs.jsonl"),
        **changes,
    }


@pytest.mark.slow
def test_run_streams_through_langgraph_dev(
    langgraph_dev: str, stub: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    base_url, requests = stub
    client = get_sync_client(url=langgraph_dev)
    assistants = client.assistants.search(graph_id="memento")
    assert assistants, "langgraph.json must register the graph as 'memento'"

    thread = client.threads.create()
    context = _context(base_url, tmp_path)
    parts = list(
        client.runs.stream(
            thread["thread_id"],
            "memento",
            input={"task": "What is 6 times 7?", "task_id": "studio-1", "ground_truth": ANSWER},
            context=context,
            stream_mode=["custom", "updates"],
            # execute and reflect_write are subgraphs: their events reach the client only with this
            stream_subgraphs=True,
        )
    )
    errors = [p.data for p in parts if p.event == "error"]
    assert not errors, errors

    custom = [p.data for p in parts if p.event.split("|")[0] == "custom"]
    nodes = {event.get("node") for event in custom}
    assert {"route_skill", "execute", "judge"} <= nodes, custom
    updates = [p.data for p in parts if p.event.split("|")[0] == "updates"]
    assert any("route_skill" in u for u in updates) and any("judge" in u for u in updates)

    # the executor reached the loopback model over HTTP, with the routed skill in its prompt
    assert requests, "no request reached the OpenAI-compatible server"
    routed = next(e for e in custom if e.get("node") == "route_skill")
    system = requests[0]["messages"][0]["content"]
    assert routed["skill"] and f"Use this skill ({routed['skill']}" in system

    state = client.threads.get_state(thread["thread_id"])
    values = state["values"]
    assert isinstance(values, dict)
    assert values["answer"] == ANSWER
    assert values["verdict"]["passed"] and values["verdict"]["method"] == "exact"
    assert not state["next"]  # the run finished

    # the library was seeded where the run's context said, and write_policy "off" left it unused
    assert (tmp_path / "skills" / routed["skill"] / "SKILL.md").is_file()
    assert (tmp_path / "runs.jsonl").is_file()


@pytest.mark.slow
def test_studio_gets_the_input_output_and_context_schemas(langgraph_dev: str) -> None:
    """What Studio renders its form from, fetched over HTTP (null on Python 3.11 before the fix)."""
    found = httpx.post(
        f"{langgraph_dev}/assistants/search", json={"graph_id": "memento"}, timeout=30
    )
    found.raise_for_status()
    assistant_id = found.json()[0]["assistant_id"]
    served = httpx.get(f"{langgraph_dev}/assistants/{assistant_id}/schemas", timeout=60)
    served.raise_for_status()
    schemas = served.json()

    inputs = schemas["input_schema"]
    assert inputs is not None, schemas
    assert {"task", "task_id", "ground_truth", "rubric", "messages"} <= set(inputs["properties"])
    assert all(spec.get("description") for spec in inputs["properties"].values()), inputs
    outputs = schemas["output_schema"]
    assert outputs is not None, schemas
    assert {"answer", "verdict", "selected_skill", "writes"} <= set(outputs["properties"])

    assert schemas["state_schema"] is not None, schemas  # what Studio's state view reads

    context = schemas["context_schema"]
    assert context is not None, schemas
    fields = context["properties"]
    assert set(fields) == {f.name for f in dataclasses.fields(Context)}
    undescribed = [name for name, spec in fields.items() if not spec.get("description")]
    assert not undescribed, f"context fields Studio would show without a description: {undescribed}"
    assert fields["write_policy"]["enum"] == ["off", "create", "refine", "full"]
    assert fields["router_mode"]["enum"] == ["hybrid", "dense", "lexical"]
    assert fields["max_attempts"]["minimum"] == 1  # the bounds the validator enforces, shown too


PACKAGES = (
    "memento_skills",
    "memento_skills.graph",
    "memento_skills.nodes",
    "memento_skills.stores",
    "memento_skills.evals",
)


def test_every_typeddict_in_the_package_gives_a_json_schema() -> None:
    """pydantic refuses `typing.TypedDict` on Python < 3.12, and the server then serves null for
    every schema built from it (the input form, a subgraph's state): each must come from
    typing_extensions."""
    found: dict[str, type] = {}
    for package in PACKAGES:
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            name = f"{package}.{module.name}"
            for attr, value in vars(importlib.import_module(name)).items():
                if is_typeddict(value) and value.__module__ == name:
                    found[f"{name}.{attr}"] = value
    assert "memento_skills.graph.state.InputState" in found and len(found) >= 10, found
    for name, cls in found.items():
        schema = TypeAdapter(cls).json_schema()  # raises PydanticUserError on typing.TypedDict
        assert schema.get("properties"), name


REFUSED = [
    pytest.param(
        {"write_policy": "bogus"},
        {"task": "What is 6 times 7?"},
        ["'write_policy'", "'bogus'", "'off', 'create', 'refine' or 'full'", "set write_policy"],
        id="context-value-not-allowed",
    ),
    pytest.param(
        {"max_attempt": 3},
        {"task": "What is 6 times 7?"},
        ["unknown context key 'max_attempt'", "did you mean 'max_attempts'?", "rename it"],
        id="context-key-unknown",
    ),
    pytest.param(
        {"top_k": 0},
        {"task": "What is 6 times 7?"},
        ["'top_k' is 0", "at least 1", "raise top_k"],
        id="context-value-out-of-range",
    ),
    pytest.param(
        {},
        {"question": "What is 6 times 7?"},
        ["unknown input key 'question'", "valid keys are task,", 'put the task under "task"'],
        id="input-key-unknown",
    ),
    pytest.param(
        {},
        {"task": "   "},
        ["input has no task", 'put the task under "task"'],
        id="input-task-empty",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("changes", "payload", "expected"), REFUSED)
def test_a_bad_run_is_refused_before_any_model_call(
    langgraph_dev: str,
    stub: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
    changes: dict[str, Any],
    payload: dict[str, Any],
    expected: list[str],
) -> None:
    base_url, requests = stub
    client = get_sync_client(url=langgraph_dev)
    thread = client.threads.create()
    with pytest.raises(UnprocessableEntityError) as refused:
        list(
            client.runs.stream(
                thread["thread_id"],
                "memento",
                input=payload,
                context=_context(base_url, tmp_path, **changes),
                stream_mode=["updates"],
            )
        )
    detail = refused.value.response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail, detail  # one line
    for part in expected:
        assert part in detail, detail
    assert requests == [], "a model was called for a run that should have been refused"
    assert client.runs.list(thread["thread_id"]) == [], "a refused run must not be queued"


@pytest.mark.slow
def test_a_stateless_run_a_batch_and_an_assistant_are_refused_the_same_way(
    langgraph_dev: str, stub: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    base_url, requests = stub
    client = get_sync_client(url=langgraph_dev)
    with pytest.raises(httpx.HTTPStatusError) as refused:  # runs.wait raises httpx's own error
        client.runs.wait(
            None,
            "memento",
            input={"task": "What is 6 times 7?"},
            context=_context(base_url, tmp_path, router_mode="semantic"),
        )
    assert refused.value.response.status_code == 422
    assert "'router_mode'" in refused.value.response.json()["detail"]
    # a batch is refused whole when one of its runs is wrong
    batch = httpx.post(
        f"{langgraph_dev}/runs/batch",
        json=[
            {"assistant_id": "memento", "input": {"task": "What is 6 times 7?"}},
            {"assistant_id": "memento", "input": {"question": "What is 6 times 7?"}},
        ],
        timeout=30,
    )
    assert batch.status_code == 422 and "unknown input key 'question'" in batch.json()["detail"]
    # an assistant saved with a bad context would refuse every run started from it later
    with pytest.raises(UnprocessableEntityError) as saved:
        client.assistants.create("memento", context={"writepolicy": "off"})
    assert "did you mean 'write_policy'?" in saved.value.response.json()["detail"]
    assert requests == []


@pytest.mark.slow
def test_a_bad_value_in_the_legacy_configurable_fails_the_run_before_any_model_call(
    langgraph_dev: str, stub: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The server mirrors `config.configurable` into the context when none is given: that path
    passes the HTTP check, and the graph's own check (the same validator) stops the run."""
    base_url, requests = stub
    client = get_sync_client(url=langgraph_dev)
    thread = client.threads.create()
    parts = list(
        client.runs.stream(
            thread["thread_id"],
            "memento",
            input={"task": "What is 6 times 7?"},
            config={"configurable": _context(base_url, tmp_path, write_policy="bogus")},
            stream_mode=["updates"],
        )
    )
    errors = [p.data for p in parts if p.event == "error"]
    assert errors, parts
    assert "'write_policy'" in str(errors[0]) and "'off', 'create', 'refine' or 'full'" in str(
        errors[0]
    )
    assert not [p for p in parts if p.event == "updates"], "no node may run"
    assert requests == []


def test_dev_server_state_is_git_ignored() -> None:
    """`langgraph dev` keeps its state in .langgraph_api/ under the repo root: never commit it."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(
        ["git", "check-ignore", "-q", ".langgraph_api/"], cwd=REPO, check=False, timeout=30
    )
    assert result.returncode == 0, ".langgraph_api/ must be listed in .gitignore"
