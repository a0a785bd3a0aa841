"""MCP tools for skills: real FastMCP servers (stdio and streamable HTTP) started by the tests.

Each server is a script written into a temp folder and run as its own process; the agent's
side goes through the real graph (build_graph or the execute subgraph) with a scripted model
that calls the MCP tools, so what reaches the trajectory is what the server computed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.graph.resources import Resources
from memento_skills.nodes.execute import build_execute_graph
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.mcp_config import McpConfigError, load_file
from memento_skills.stores.settings import open_library
from memento_skills.stores.skill import SkillValidationError
from memento_skills.testing import ScriptedChatModel

from support.scripted_endpoint import ScriptedEndpoint, offered_tools, tool_results

REPO = Path(__file__).resolve().parents[2]

SERVER = """
import os, sys, time

mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
if mode == "crash":
    print("boom: the server cannot start", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "hang":
    time.sleep(600)
from mcp.server.fastmcp import FastMCP
starts = os.environ.get("STARTS_LOG")
if starts:
    with open(starts, "a") as f:
        f.write(f"{os.getpid()}\\n")
app = FastMCP("strings")

@app.tool()
def reverse(s: str) -> str:
    \"\"\"Reverse a string.\"\"\"
    return s[::-1]

@app.tool()
def whoami() -> str:
    \"\"\"Where and as whom this server runs.\"\"\"
    secret = os.environ.get("MEMENTO_TEST_SECRET_KEY", "none")
    return f"pid={os.getpid()} uid={os.getuid()} home={os.environ.get('HOME')} secret={secret}"

@app.tool()
async def slow(seconds: float) -> str:
    \"\"\"Sleep, then answer.\"\"\"
    import asyncio
    await asyncio.sleep(seconds)
    return "slept"

@app.tool()
def die() -> str:
    \"\"\"End the server process in the middle of a call.\"\"\"
    os._exit(1)

if mode == "http":
    app.settings.port = int(sys.argv[2])
    app.run(transport="streamable-http")
else:
    app.run()
"""

SKILL_MD = """---
name: {name}
description: Reverse strings and other text tricks with the strings MCP server.
{extra}---

Call the strings server's reverse tool with the text, then submit what it returns.
"""


def call(name: str, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


def write_server(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "server.py"
    script.write_text(SERVER, encoding="utf-8")
    return script


def write_skill(
    root: Path,
    name: str = "strings",
    *,
    mcp_json: dict[str, Any] | None = None,
    frontmatter: str = "",
) -> Path:
    folder = root / name
    write_server(folder)
    (folder / "SKILL.md").write_text(SKILL_MD.format(name=name, extra=frontmatter))
    if mcp_json is not None:
        (folder / "mcp.json").write_text(json.dumps(mcp_json))
    return folder


STDIO_SKILL = {"mcpServers": {"strings": {"command": "python", "args": ["server.py"]}}}


def run_execute(
    library: SkillLibrary,
    tmp_path: Path,
    script: list[Any],
    *,
    skill: str | None = "strings",
    approve: Any = None,
    **ctx: Any,
) -> tuple[dict[str, Any], ScriptedChatModel]:
    model = ScriptedChatModel(script=script)
    graph = build_execute_graph(
        Resources(chat_models={"executor": model}, library=library, approve_script=approve)
    )
    context = Context(workspace_dir=str(tmp_path / "ws"), web_search=False, **ctx)
    out = graph.invoke({"task": "Reverse 'memento'.", "selected_skill": skill}, context=context)
    return out, model


def offered(model: ScriptedChatModel) -> set[str]:
    return {t["function"]["name"] for t in model.bound_tools}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------- stdio, declared by a skill


@pytest.mark.parametrize("form", ["mcp.json", "frontmatter"])
def test_a_skill_declared_stdio_server_serves_the_run_through_build_graph(
    tmp_path: Path, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMENTO_TEST_SECRET_KEY", "s3cret")
    library = open_library(tmp_path / "skills", seed=False)
    if form == "mcp.json":
        write_skill(library.root, mcp_json=STDIO_SKILL)
    else:
        inline = json.dumps(STDIO_SKILL)
        write_skill(library.root, frontmatter=f"metadata:\n  memento-mcp-servers: '{inline}'\n")
    assert [s.name for s in library.mcp_servers(library.get("strings"))] == ["strings"]
    executor = ScriptedChatModel(
        script=[
            call("mcp__strings__reverse", s="memento"),
            call("mcp__strings__whoami"),
            call("submit_answer", answer="otnemem"),
        ]
    )
    graph = build_graph(
        InMemorySaver(),
        chat_models={"executor": executor, "judge": ScriptedChatModel()},
        library=library,
        index=SkillIndex(tmp_path / "index"),
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"),
        run_log=str(tmp_path / "runs.jsonl"),
        web_search=False,
        write_policy="off",
        min_route_score=0.0,
    )
    thread: RunnableConfig = {"configurable": {"thread_id": "mcp"}}
    out = graph.invoke(
        {"task": "Reverse the string 'memento' with the strings tools.", "ground_truth": "otnemem"},
        thread,
        context=ctx,
    )
    assert out["selected_skill"] == "strings"
    steps = graph.get_state(thread).values["trajectory"]
    assert [s["tool"] for s in steps] == [
        "mcp__strings__reverse",
        "mcp__strings__whoami",
        "submit_answer",
    ]
    assert steps[0]["output"] == "otnemem" and not steps[0]["error"]
    # a skill's stdio server is model-reachable code: it ran in the sandbox, as the sandbox's
    # uid, with the workspace as HOME and none of the host's secrets
    who = dict(kv.split("=", 1) for kv in steps[1]["output"].split())
    assert who["secret"] == "none"
    assert Path(who["home"]).parent == tmp_path / "ws" / "memento-workspaces"
    if os.geteuid() == 0:
        assert int(who["uid"]) != 0
        assert who["pid"] == "2"  # in its own PID namespace (1 is the sandbox's launcher)
    assert _wait_gone(str(tmp_path / "skills"))  # closed with the attempt: no process is left
    assert out["verdict"]["passed"]
    # offered next to ours, namespaced
    tools = offered(executor)
    assert {"mcp__strings__reverse", "mcp__strings__whoami", "python", "submit_answer"} <= tools


def _mentioning(text: str) -> list[int]:
    """The processes whose command line mentions `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _wait_gone(text: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _mentioning(text):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_allowed_tools_can_name_one_mcp_tool_and_exclude_the_rest(tmp_path: Path) -> None:
    library = open_library(tmp_path / "skills", seed=False)
    write_skill(
        library.root, mcp_json=STDIO_SKILL, frontmatter="allowed-tools: mcp__strings__reverse\n"
    )
    out, model = run_execute(
        library,
        tmp_path,
        [call("mcp__strings__whoami"), call("mcp__strings__reverse", s="ab"), "done"],
    )
    assert offered(model) == {"mcp__strings__reverse", "submit_answer"}
    whoami, reverse = out["trajectory"]
    assert whoami["error"] and "no tool named 'mcp__strings__whoami'" in whoami["output"]
    assert reverse["output"] == "ba"


def test_allowed_tools_without_mcp_names_never_start_the_server(tmp_path: Path) -> None:
    library = open_library(tmp_path / "skills", seed=False)
    starts = tmp_path / "starts.log"
    config = tmp_path / "operator-mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "strings": {
                        "command": sys.executable,
                        "args": [str(write_server(tmp_path / "srv"))],
                        "env": {"STARTS_LOG": str(starts)},
                    }
                }
            }
        )
    )
    write_skill(library.root, frontmatter="allowed-tools: python\n")
    _out, model = run_execute(library, tmp_path, ["done"], mcp_config=str(config))
    assert offered(model) == {"python", "submit_answer"}
    assert not starts.exists()  # not offered, so not even started


def test_an_untrusted_skills_stdio_server_needs_approval(tmp_path: Path) -> None:
    library = open_library(tmp_path / "skills", seed=False)
    write_skill(
        library.root,
        mcp_json=STDIO_SKILL,
        frontmatter="metadata:\n  memento-trusted: 'false'\n  memento-provenance: imported\n",
    )
    out, model = run_execute(library, tmp_path, ["done"])
    assert not any(t.startswith("mcp__") for t in offered(model))
    (note,) = out["trajectory"]
    assert note["tool"] == "mcp" and note["error"]
    assert "untrusted skill and was not approved" in note["output"]
    system = next(m for m in model.calls[0].messages if isinstance(m, SystemMessage)).text
    assert "MCP servers unavailable in this attempt: strings" in system

    asked: list[str] = []

    def approve(what: str) -> bool:
        asked.append(what)
        return True

    out, model = run_execute(
        library, tmp_path, [call("mcp__strings__reverse", s="xyz"), "done"], approve=approve
    )
    assert asked == [str((library.root / "strings" / "server.py").resolve())]  # shown to approve
    assert out["trajectory"][0]["output"] == "zyx"


# ---------------------------------------------------------------- the operator's global servers


def test_the_operators_config_offers_its_servers_to_every_skill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = tmp_path / "starts.log"
    config = tmp_path / "operator-mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "strings": {
                        "command": sys.executable,
                        "args": [str(write_server(tmp_path / "srv"))],
                        "env": {"STARTS_LOG": str(starts)},
                    },
                    "off": {"command": "nonexistent-server", "disabled": True},
                }
            }
        )
    )
    monkeypatch.setenv("MEMENTO_MCP_CONFIG", str(config))
    library = open_library(tmp_path / "skills", seed=False)
    out, model = run_execute(
        library,
        tmp_path,
        [
            call("mcp__strings__reverse", s="operator"),
            call("mcp__strings__reverse", s="again"),
            call("mcp__strings__whoami"),
            call("submit_answer", answer="rotarepo"),
        ],
        skill=None,  # no skill fits: the operator's tools are offered all the same
    )
    outputs = [s["output"] for s in out["trajectory"]]
    assert outputs[:2] == ["rotarepo", "niaga"]
    assert out["answer"] == "rotarepo"
    # one session for the whole attempt, closed at its end
    pids = starts.read_text().split()
    assert len(pids) == 1
    assert f"pid={pids[0]}" in outputs[2]
    assert _wait_dead(int(pids[0]))
    # the operator's server runs as configured (outside the sandbox), but its tools are still
    # namespaced and never replace ours
    assert "mcp__strings__reverse" in offered(model) and "python" in offered(model)


def test_a_skill_server_shadowed_by_the_operators_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "operator-mcp.json"
    srv = write_server(tmp_path / "srv")
    config.write_text(
        json.dumps({"mcpServers": {"strings": {"command": sys.executable, "args": [str(srv)]}}})
    )
    library = open_library(tmp_path / "skills", seed=False)
    write_skill(library.root, mcp_json=STDIO_SKILL)
    out, _model = run_execute(
        library,
        tmp_path,
        [call("mcp__strings__reverse", s="ab"), "done"],
        mcp_config=str(config),
    )
    note, reverse = out["trajectory"]
    assert "the operator's is used" in note["output"]
    assert reverse["output"] == "ba"


def test_a_broken_operator_config_is_reported_and_the_attempt_goes_on(tmp_path: Path) -> None:
    config = tmp_path / "operator-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"x": {"type": "websocket", "url": "ws://h"}}}))
    library = open_library(tmp_path / "skills", seed=False)
    write_skill(library.root)
    out, _ = run_execute(library, tmp_path, ["42"], mcp_config=str(config))
    (note,) = out["trajectory"]
    assert note["error"] and "unknown transport 'websocket'" in note["output"]
    assert out["answer"] == "42"

    env = {**os.environ, "MEMENTO_MCP_CONFIG": str(config), "MEMENTO_HOME": str(tmp_path / "h")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "memento"), "run", "What is 6*7?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2  # bad input
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "MEMENTO_MCP_CONFIG" in lines[0] and "unknown transport" in lines[0]
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- failures and timeouts


def test_crashing_and_hung_servers_cost_their_tools_not_the_run(tmp_path: Path) -> None:
    srv = write_server(tmp_path / "srv")
    config = tmp_path / "operator-mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "crash": {"command": sys.executable, "args": [str(srv), "crash"]},
                    "hang": {"command": sys.executable, "args": [str(srv), "hang"]},
                    "missing": {"command": str(tmp_path / "no-such-program")},
                    "good": {"command": sys.executable, "args": [str(srv)]},
                }
            }
        )
    )
    library = open_library(tmp_path / "skills", seed=False)
    write_skill(library.root)
    started = time.monotonic()
    out, model = run_execute(
        library,
        tmp_path,
        [
            call("mcp__good__slow", seconds=30),
            call("mcp__good__reverse", s="still here"),
            call("mcp__good__die"),
            call("mcp__good__reverse", s="gone"),
            call("submit_answer", answer="ok"),
        ],
        mcp_config=str(config),
        mcp_timeout_s=8,
    )
    assert time.monotonic() - started < 45  # neither the hung server nor the slow call waited
    notes = {s["args"]["server"]: s["output"] for s in out["trajectory"] if s["tool"] == "mcp"}
    assert set(notes) == {"crash", "hang", "missing"}, notes
    assert "boom: the server cannot start" in notes["crash"]
    assert "within 8 s" in notes["hang"]
    assert "no-such-program" in notes["missing"] or "No such file" in notes["missing"]
    assert {t for t in offered(model) if t.startswith("mcp__")} == {
        "mcp__good__reverse",
        "mcp__good__whoami",
        "mcp__good__slow",
        "mcp__good__die",
    }
    steps = [s for s in out["trajectory"] if s["tool"] != "mcp"]
    slow, reverse, die, after, _submit = steps
    assert slow["error"] and "did not answer slow within 8 s" in slow["output"]
    assert reverse["output"] == "ereh llits"
    assert die["error"] and after["error"]  # the server died mid-call: errors, not a crash
    assert out["answer"] == "ok"


# ---------------------------------------------------------------- streamable HTTP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "http-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(write_server(tmp_path / "http")), "http", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the HTTP MCP server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_streamable_http_server_from_the_operator(tmp_path: Path, http_server: str) -> None:
    config = tmp_path / "operator-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"remote": {"type": "http", "url": http_server}}}))
    library = open_library(tmp_path / "skills", seed=False)
    write_skill(library.root)
    out, model = run_execute(
        library,
        tmp_path,
        [call("mcp__remote__reverse", s="over http"), call("submit_answer", answer="x")],
        mcp_config=str(config),
    )
    assert out["trajectory"][0]["output"] == "ptth revo"
    assert "mcp__remote__reverse" in offered(model)


def test_a_skills_http_server_on_loopback_needs_the_operators_allow_list(
    tmp_path: Path, http_server: str
) -> None:
    library = open_library(tmp_path / "skills", seed=False)
    write_skill(library.root, mcp_json={"mcpServers": {"remote": {"url": http_server}}})
    out, model = run_execute(library, tmp_path, ["done"])
    (note,) = out["trajectory"]
    assert "non-public address" in note["output"]
    assert not any(t.startswith("mcp__") for t in offered(model))

    host = http_server.split("/")[2]
    out, _ = run_execute(
        library,
        tmp_path,
        [call("mcp__remote__reverse", s="allowed"), "done"],
        fetch_allow_hosts=host,
    )
    assert out["trajectory"][0]["output"] == "dewolla"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "grpc", "url": "http://x"}, "unknown transport 'grpc'"),
        ({"args": ["server.py"]}, "missing command"),
        ({"type": "http"}, "missing url"),
        ({"command": "python", "env": {"K": "${OPENAI_API_KEY}"}}, "host variable"),
        ({"command": "python", "port": 3}, "unknown field(s) port"),
    ],
)
def test_a_bad_mcp_declaration_makes_the_skill_invalid(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    library = open_library(tmp_path / "skills", seed=False)
    folder = write_skill(library.root, mcp_json={"mcpServers": {"s": entry}})
    with pytest.raises(SkillValidationError) as info:
        library.get("strings")
    (problem,) = info.value.problems
    assert message in str(problem) and "\n" not in str(problem)
    # the same in the frontmatter form
    (folder / "mcp.json").unlink()
    inline = json.dumps({"s": entry})
    write_skill(library.root, frontmatter=f"metadata:\n  memento-mcp-servers: '{inline}'\n")
    with pytest.raises(SkillValidationError) as info:
        library.get("strings")
    assert message in str(info.value.problems[0])
    # and through the command line: exit 1, the problem on one line
    (folder / "mcp.json").write_text(json.dumps({"mcpServers": {"s": entry}}))
    write_skill(library.root)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "memento"), "skills", "validate", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and message in result.stdout + result.stderr


def test_allowed_tools_accepts_mcp_names_and_refuses_others(tmp_path: Path) -> None:
    library = open_library(tmp_path / "skills", seed=False)
    write_skill(library.root, frontmatter="allowed-tools: python mcp__strings mcp__x__y\n")
    assert library.get("strings").allowed_tools == ("python", "mcp__strings", "mcp__x__y")
    write_skill(library.root, frontmatter="allowed-tools: python mcp_strings\n")
    with pytest.raises(SkillValidationError, match="unknown tool"):
        library.get("strings")


def test_operator_config_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    with pytest.raises(McpConfigError, match="does not exist"):
        load_file(path, owner="operator")
    path.write_text("{not json")
    with pytest.raises(McpConfigError, match="not valid JSON"):
        load_file(path, owner="operator")
    path.write_text(json.dumps({"servers": {}}))
    with pytest.raises(McpConfigError, match="no `mcpServers`"):
        load_file(path, owner="operator")
    path.write_text(json.dumps({"mcpServers": {"a__b": {"command": "x"}}}))
    with pytest.raises(McpConfigError, match="single '_'"):  # it would blur mcp__<server>__<tool>
        load_file(path, owner="operator")
    path.write_text(
        json.dumps({"mcpServers": {"a": {"url": "http://h/mcp"}, "b": {"command": "x"}}})
    )
    servers = load_file(path, owner="operator")
    assert [(s.name, s.transport) for s in servers] == [("a", "http"), ("b", "stdio")]


# ---------------------------------------------------------------- through `langgraph dev`


def call_the_mcp_tool_once(request: dict[str, Any]) -> str | dict[str, Any]:
    """Calls the MCP tool once, then answers with its output (text "42" when it is not offered)."""
    results = tool_results(request)
    if "mcp__strings__reverse" in offered_tools(request) and not results:
        return {"tool": "mcp__strings__reverse", "arguments": {"s": "langgraph"}}
    return results[-1] if results else "42"


@pytest.fixture
def tool_calling_stub() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with ScriptedEndpoint(call_the_mcp_tool_once) as endpoint:
        yield endpoint.base_url, endpoint.requests


@pytest.mark.slow
def test_a_run_through_langgraph_dev_uses_a_skills_mcp_server(
    langgraph_dev: str,
    tool_calling_stub: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    from langgraph_sdk import get_sync_client

    base_url, requests = tool_calling_stub
    skills = tmp_path / "skills"
    write_skill(skills, mcp_json=STDIO_SKILL)
    client = get_sync_client(url=langgraph_dev)
    thread = client.threads.create()
    context: dict[str, Any] = {
        "base_url": base_url,
        "executor_model": "m",
        "judge_model": "m",
        "writer_model": "m",
        "write_policy": "off",
        "web_search": False,
        "min_route_score": 0.0,
        "skills_dir": str(skills),
        "index_dir": str(tmp_path / "index"),
        "workspace_dir": str(tmp_path / "ws"),
        "run_log": str(tmp_path / "runs.jsonl"),
    }
    parts = list(
        client.runs.stream(
            thread["thread_id"],
            "memento",
            input={"task": "Reverse the string 'langgraph'.", "ground_truth": "hparggnal"},
            context=context,
            stream_mode=["custom"],
            stream_subgraphs=True,
        )
    )
    assert not [p.data for p in parts if p.event == "error"]
    custom = [p.data for p in parts if p.event.split("|")[0] == "custom"]
    assert not [e for e in custom if e.get("event") == "mcp_unavailable"], custom
    values = client.threads.get_state(thread["thread_id"])["values"]
    assert isinstance(values, dict)
    assert values["selected_skill"] == "strings"
    step = values["trajectory"][0]
    assert step["tool"] == "mcp__strings__reverse" and step["output"] == "hparggnal"
    assert values["answer"] == "hparggnal" and values["verdict"]["passed"]
    # the MCP tool was offered to the model over HTTP, next to ours
    assert {"mcp__strings__reverse", "submit_answer"} <= set(offered_tools(requests[0]))
    assert _wait_gone(str(skills))  # the server ended with the attempt


def test_a_refined_tool_list_keeps_the_skills_mcp_tools(tmp_path: Path) -> None:
    from memento_skills.nodes.writing.prompts import SkillEdit, SkillPatch
    from memento_skills.nodes.writing.proposals import apply_patch

    library = open_library(tmp_path / "skills", seed=False)
    write_skill(library.root, mcp_json=STDIO_SKILL, frontmatter="allowed-tools: mcp__strings\n")
    skill = library.get("strings")
    patch = SkillPatch(
        edits=[SkillEdit(old="then submit", new="then check and submit")],
        allowed_tools=["python"],  # the writer is shown our tools only
    )
    proposal = apply_patch(skill, patch, "", None)
    assert "allowed-tools: python mcp__strings" in proposal["skill_md"]
