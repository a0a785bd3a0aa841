"""The agent's tools, invoked as the agent invokes them: a tool call in, a ToolMessage out."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from memento_skills.nodes.execution import tools as tools_module
from memento_skills.nodes.execution.sandbox import SandboxLimits, Workspace
from memento_skills.nodes.execution.tools import TOOL_NAMES, make_tools, submitted_answer

FAST = SandboxLimits(wall_s=5, memory_mb=512)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def skill_dir(tmp_path: Path) -> Path:
    skill = tmp_path / "skills" / "demo"
    (skill / "scripts").mkdir(parents=True)
    (skill / "references").mkdir()
    (skill / "SKILL.md").write_text("---\nname: demo\ndescription: d\n---\nbody\n")
    (skill / "references" / "guide.md").write_text("# Guide\nstep one\n")
    (skill / "scripts" / "hello.py").write_text(
        "import sys\nprint('hello', *sys.argv[1:])\nopen('made-by-script.txt', 'w').write('ok')\n"
    )
    (skill / "scripts" / "count.sh").write_text('echo "$#" args\n')
    (tmp_path / "outside.txt").write_text("outside-secret\n")
    (skill / "references" / "leak.md").symlink_to(tmp_path / "outside.txt")
    return skill


def by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {t.name: t for t in tools}


def call(tools: list[BaseTool], name: str, **args: object) -> ToolMessage:
    message = by_name(tools)[name].invoke(
        {"type": "tool_call", "id": "call-1", "name": name, "args": args}
    )
    assert isinstance(message, ToolMessage)
    return message


def ok(tools: list[BaseTool], name: str, **args: object) -> str:
    message = call(tools, name, **args)
    assert message.status == "success", message.content
    return str(message.content)


def err(tools: list[BaseTool], name: str, **args: object) -> str:
    message = call(tools, name, **args)
    assert message.status == "error", message.content
    assert str(message.content).startswith("error: ")
    return str(message.content)


@pytest.fixture
def tools(ws: Workspace, skill_dir: Path) -> list[BaseTool]:
    return make_tools(ws, skill_dir=skill_dir, limits=FAST)


# ------------------------------------------------------------------ the set of tools


def test_all_tools_in_order(tools: list[BaseTool]) -> None:
    assert tuple(t.name for t in tools) == TOOL_NAMES


def test_tools_have_schemas_a_chat_model_can_use(tools: list[BaseTool]) -> None:
    specs = {t.name: convert_to_openai_tool(t)["function"] for t in tools}
    assert specs["shell"]["parameters"]["required"] == ["command"]
    assert specs["run_skill_script"]["parameters"]["properties"]["args"]["type"] == "array"
    assert all(spec["description"] for spec in specs.values())


def test_allowed_tools_restricts_and_keeps_submit_answer(ws: Workspace, skill_dir: Path) -> None:
    chosen = make_tools(ws, skill_dir=skill_dir, allowed_tools=["read_file", "python"])
    assert [t.name for t in chosen] == ["python", "read_file", "submit_answer"]
    assert [t.name for t in make_tools(ws, allowed_tools=())] == [
        n for n in TOOL_NAMES if n not in ("read_skill_file", "run_skill_script")
    ]


def test_unknown_allowed_tool_is_a_clear_error(ws: Workspace) -> None:
    with pytest.raises(ValueError) as info:
        make_tools(ws, allowed_tools=["python", "Bash(git:*)", "browser"])
    message = str(info.value)
    assert "Bash(git:*), browser" in message
    assert all(name in message for name in TOOL_NAMES)


def test_switches_leave_tools_out(ws: Workspace) -> None:
    names = [t.name for t in make_tools(ws, web_search=False)]
    assert "web_search" not in names and "fetch_url" in names
    assert "read_skill_file" not in names and "run_skill_script" not in names


# ------------------------------------------------------------------ code


def test_shell_and_python(tools: list[BaseTool]) -> None:
    out = ok(tools, "shell", command="echo hi; echo bad >&2; exit 2")
    assert out.startswith("exit code: 2") and "stdout:\nhi" in out and "stderr:\nbad" in out
    assert ok(tools, "python", code="print(6 * 7)") == "exit code: 0\nstdout:\n42\n"


@pytest.mark.parametrize(
    ("code", "stdout"),
    [
        ("6 * 7", "42\n"),  # a final bare expression is shown, as in a REPL
        ("import math\nmath.comb(\n    5, 2)", "10\n"),
        ("'ab'.upper()", "'AB'\n"),
        ("x = 1\nprint(x)", "1\n"),  # print is not echoed twice
        ("None", ""),
        ("x = 3; x", ""),  # shares a line with another statement: left alone
    ],
)
def test_python_echoes_a_final_expression(tools: list[BaseTool], code: str, stdout: str) -> None:
    out = ok(tools, "python", code=code)
    assert out == "exit code: 0\n" + (f"stdout:\n{stdout}" if stdout else "(no output)")


def test_python_syntax_errors_keep_their_line_numbers(tools: list[BaseTool]) -> None:
    out = ok(tools, "python", code="x = 1\nx +* 2")
    assert out.startswith("exit code: 1") and "line 2" in out and "SyntaxError" in out


def test_a_killed_run_says_why(ws: Workspace) -> None:
    quick = make_tools(ws, limits=SandboxLimits(wall_s=1))
    out = ok(quick, "shell", command="sleep 30")
    assert "killed: wall time limit of 1 s exceeded" in out


# ------------------------------------------------------------------ files


def test_write_then_read_then_change_in_the_sandbox(tools: list[BaseTool], ws: Workspace) -> None:
    assert ok(tools, "write_file", path="notes/a.txt", content="first\n") == (
        "wrote 6 bytes to notes/a.txt"
    )
    assert ok(tools, "read_file", path="notes/a.txt") == "first\n"
    # The sandboxed code may change what the host-side tool wrote.
    ok(tools, "shell", command="echo second >> notes/a.txt")
    assert ok(tools, "read_file", path="./notes/../notes/a.txt") == "first\nsecond\n"
    if ws.uid is not None:
        assert (ws.root / "notes" / "a.txt").stat().st_uid == ws.uid


def test_read_file_pages_long_files(tools: list[BaseTool], ws: Workspace, monkeypatch) -> None:
    monkeypatch.setattr(tools_module, "READ_MAX_BYTES", 10)
    (ws.root / "long.txt").write_text("0123456789abcdefghij")
    first = ok(tools, "read_file", path="long.txt")
    assert first.startswith("0123456789\n[truncated: showed bytes 0-10 of 20")
    assert "offset=10" in first
    assert ok(tools, "read_file", path="long.txt", offset=10) == "abcdefghij"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "absolute"),
        ("../outside.txt", "goes outside the workspace"),
        ("sub/../../outside.txt", "goes outside the workspace"),
        ("~/.bashrc", "absolute"),
        ("missing.txt", "does not exist"),
        (".", "is a folder"),
    ],
)
def test_read_file_refusals(tools: list[BaseTool], path: str, why: str) -> None:
    assert why in err(tools, "read_file", path=path)


def test_symlinks_and_special_files_are_refused(tools: list[BaseTool], tmp_path: Path) -> None:
    target = tmp_path / "created-through-link.txt"
    ok(
        tools,
        "shell",
        command=f"ln -s {tmp_path}/outside.txt leak; ln -s / root; ln -s {target} drop; "
        "mkfifo pipe; printf 'a\\0b' > bin.dat",
    )
    assert "symlink" in err(tools, "read_file", path="leak")
    assert "symlink" in err(tools, "read_file", path=f"root{tmp_path}/outside.txt")
    assert "symlink" in err(tools, "write_file", path="drop", content="x")
    assert not target.exists()
    assert "not a regular file" in err(tools, "read_file", path="pipe")
    assert "binary" in err(tools, "read_file", path="bin.dat")
    assert "goes outside" in err(tools, "list_dir", path="root")
    listing = ok(tools, "list_dir", recursive=True)
    assert f"link leak -> {tmp_path}/outside.txt" in listing
    assert "etc" not in listing  # the link to / is shown, not followed


def test_write_file_refusals_and_cap(tools: list[BaseTool], ws: Workspace, monkeypatch) -> None:
    assert "absolute" in err(tools, "write_file", path="/tmp/x", content="x")
    assert "goes outside" in err(tools, "write_file", path="../x", content="x")
    monkeypatch.setattr(tools_module, "WRITE_MAX_BYTES", 5)
    assert "limit is 5" in err(tools, "write_file", path="big.txt", content="123456")
    assert not (ws.root / "big.txt").exists()


def test_list_dir(tools: list[BaseTool]) -> None:
    ok(tools, "write_file", path="a/b/c.txt", content="x")
    top = ok(tools, "list_dir")
    assert "dir  a/" in top and "c.txt" not in top
    assert "file a/b/c.txt (1 bytes)" in ok(tools, "list_dir", recursive=True)
    assert ok(tools, "list_dir", path="a/b") == "file c.txt (1 bytes)"
    assert "goes outside" in err(tools, "list_dir", path="..")


def test_bad_arguments_come_back_as_text(tools: list[BaseTool]) -> None:
    assert "invalid arguments: path: Field required" in err(tools, "read_file")
    assert "offset" in err(tools, "read_file", path="x", offset=-1)
    assert "NUL" in err(tools, "read_file", path="a\x00b")


# ------------------------------------------------------------------ skills


def test_read_skill_file(tools: list[BaseTool]) -> None:
    assert ok(tools, "read_skill_file", path="references/guide.md") == "# Guide\nstep one\n"
    assert "goes outside the skill folder" in err(tools, "read_skill_file", path="../../x")
    assert "symlink" in err(tools, "read_skill_file", path="references/leak.md")


def test_run_skill_script_in_the_workspace(tools: list[BaseTool], ws: Workspace) -> None:
    out = ok(tools, "run_skill_script", script="hello.py", args=["a", "b c"])
    assert "stdout:\nhello a b c" in out
    assert (ws.root / "made-by-script.txt").read_text() == "ok"
    assert "2 args" in ok(tools, "run_skill_script", script="scripts/count.sh", args=["x", "y"])
    assert "no script" in err(tools, "run_skill_script", script="missing.py")
    assert "goes outside" in err(tools, "run_skill_script", script="../references/guide.md")


def test_a_placeholder_copied_from_the_skill_is_refused_before_the_script_runs(
    tools: list[BaseTool], ws: Workspace, skill_dir: Path
) -> None:
    (skill_dir / "SKILL.md").write_text(
        "---\nname: demo\ndescription: d\n---\nrun_skill_script(script='scripts/hello.py', "
        'args=["<word>", "N2"])\n'
    )
    message = err(tools, "run_skill_script", script="hello.py", args=["<word>", "7"])
    assert "'<word>' is the skill's placeholder" in message
    assert not (ws.root / "made-by-script.txt").exists()
    assert "'N2'" in err(tools, "run_skill_script", script="hello.py", args=["lantern", "N2"])
    # the same shapes are values when the instructions do not show them
    assert "hello N1 <b>" in ok(tools, "run_skill_script", script="hello.py", args=["N1", "<b>"])


def test_skill_scripts_run_at_the_weaker_level_from_a_library_it_cannot_enter(
    skill_dir: Path,
) -> None:
    """Without a mount namespace the library (here under pytest's 0700 folder, like a run dir
    beside its golds) is out of the sandbox's reach; the script runs from a copy."""
    level = "uid" if os.geteuid() == 0 else "rlimits"
    base = Path(tempfile.mkdtemp(prefix="memento-tools-weak-"))
    try:
        base.chmod(0o711)
        weak = Workspace(base / "ws", isolation=level)
        tools = make_tools(weak, skill_dir=skill_dir, limits=FAST)
        out = ok(tools, "run_skill_script", script="hello.py", args=["a"])
        assert "stdout:\nhello a" in out
        assert (weak.root / "made-by-script.txt").read_text() == "ok"
        assert "1 args" in ok(tools, "run_skill_script", script="count.sh", args=["x"])
        assert "outside-secret" not in ok(tools, "shell", command="cat ../../*/outside.txt")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_untrusted_script_refused_then_approved(ws: Workspace, skill_dir: Path) -> None:
    asked: list[str] = []
    answer = [False]

    def approve(path: str) -> bool:
        asked.append(path)
        return answer[0]

    untrusted = make_tools(
        ws, skill_dir=skill_dir, skill_trusted=False, approve_script=approve, limits=FAST
    )
    refused = err(untrusted, "run_skill_script", script="hello.py")
    assert "'demo' is untrusted and the operator has not approved" in refused
    assert not (ws.root / "made-by-script.txt").exists()
    assert asked == [str(skill_dir.resolve() / "scripts" / "hello.py")]
    answer[0] = True
    assert "hello" in ok(untrusted, "run_skill_script", script="hello.py")
    assert (ws.root / "made-by-script.txt").exists()
    no_approver = make_tools(ws, skill_dir=skill_dir, skill_trusted=False)
    assert "not approved" in err(no_approver, "run_skill_script", script="hello.py")


@pytest.fixture
def pack_skill(tmp_path: Path) -> Path:
    """A skill that keeps its code in core/ (as slack-gif-creator does), a script importing it."""
    skill = tmp_path / "skills" / "gif-maker"
    (skill / "core").mkdir(parents=True)
    (skill / "references").mkdir()
    (skill / "SKILL.md").write_text("---\nname: gif-maker\ndescription: d\n---\nbody\n")
    (skill / "references" / "howto.md").write_text("make a gif\n")
    (skill / "core" / "helper.py").write_text(
        "def greet(*a):\n    return 'gif of ' + ' '.join(a)\n"
    )
    (skill / "core" / "make.py").write_text(
        "import sys\nfrom core.helper import greet\nprint(greet(*sys.argv[1:]))\n"
        "open('made.txt', 'w').write('ok')\n"
    )
    (skill / "core" / "run.sh").write_text('echo "sh got $1"\n')
    return skill


def test_scripts_in_any_folder_run_once_trusted(ws: Workspace, pack_skill: Path) -> None:
    trusted = make_tools(ws, skill_dir=pack_skill, limits=FAST)
    out = ok(trusted, "run_skill_script", script="core/make.py", args=["cats", "dogs"])
    assert "stdout:\ngif of cats dogs" in out  # it imported its neighbour from core/
    assert (ws.root / "made.txt").read_text() == "ok"
    assert "sh got x" in ok(trusted, "run_skill_script", script="core/run.sh", args=["x"])
    missing = err(trusted, "run_skill_script", script="core/nope.py")
    assert "no script 'core/nope.py'" in missing and "core/make.py" in missing


def test_script_paths_never_leave_the_skill_folder(
    ws: Workspace, pack_skill: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "evil.py"
    outside.write_text("open('escaped.txt', 'w').write('x')\n")
    (tmp_path / "evil-dir").mkdir()
    (tmp_path / "evil-dir" / "x.py").write_text("open('escaped.txt', 'w').write('x')\n")
    (pack_skill / "core" / "link.py").symlink_to(outside)
    (pack_skill / "linked").symlink_to(tmp_path / "evil-dir")
    tools = make_tools(ws, skill_dir=pack_skill, limits=FAST)
    for script, why in [
        ("../../evil.py", "'..' that leads outside"),
        ("core/../../../evil.py", "'..' that leads outside"),
        (str(outside), "is absolute"),
        ("core/link.py", "a symlink that points outside"),
        ("linked/x.py", "a symlink that points outside"),
    ]:
        assert why in err(tools, "run_skill_script", script=script), script
        assert why in err(tools, "read_skill_file", path=script), script
    assert not (ws.root / "escaped.txt").exists()


def test_untrusted_scripts_are_neither_run_nor_read(ws: Workspace, pack_skill: Path) -> None:
    untrusted = make_tools(ws, skill_dir=pack_skill, skill_trusted=False, limits=FAST)
    refused = err(untrusted, "run_skill_script", script="core/make.py", args=["cats"])
    assert refused == (
        "error: refused to run 'core/make.py': skill 'gif-maker' is untrusted and the operator "
        "has not approved this script. Do not reproduce what it does with other tools (that "
        "would run unapproved code); solve the task another way. Only the operator can allow "
        "it (`memento skills trust gif-maker`)"
    )
    assert "read" not in refused  # it no longer sends the model to read the script and redo it
    assert not (ws.root / "made.txt").exists()
    unread = err(untrusted, "read_skill_file", path="core/helper.py")
    assert "script of an untrusted skill" in unread and "greet" not in unread
    assert ok(untrusted, "read_skill_file", path="references/howto.md") == "make a gif\n"
    asked: list[str] = []

    def approve(path: str) -> bool:
        asked.append(path)
        return True

    asking = make_tools(
        ws, skill_dir=pack_skill, skill_trusted=False, approve_script=approve, limits=FAST
    )
    assert "it is not a script" in err(asking, "run_skill_script", script="references/howto.md")
    assert asked == []  # the operator is only ever asked about something that would run


# ------------------------------------------------------------------ web


class _Site(BaseHTTPRequestHandler):
    PAGE = (
        b"<!doctype html><html><head><title>T</title><script>var hidden = 1;</script></head>"
        b"<body><h1>Widget facts</h1><p>The widget weighs <b>42 kg</b>.</p>"
        b"<a href='/more'>more</a></body></html>"
    )

    def do_GET(self) -> None:
        routes = {
            "/page": ("text/html; charset=utf-8", self.PAGE),
            "/big": ("text/plain", b"x" * 3_000_000),
            "/image": ("image/png", b"\x89PNG\r\n\x1a\n"),
        }
        redirects = {
            "/redirect": "/page",
            "/redirect-metadata": "http://169.254.169.254/latest/meta-data/",
            "/redirect-loop": "/redirect-loop",
        }
        if self.path in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[self.path])
            self.end_headers()
            return
        if self.path not in routes:
            self.send_error(404)
            return
        ctype, body = routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def do_POST(self) -> None:  # a Tavily-compatible /search endpoint
        length = int(self.headers.get("Content-Length", 0))
        query = json.loads(self.rfile.read(length) or b"{}").get("query", "")
        body = json.dumps(
            {
                "query": query,
                "results": [
                    {"title": "Widget wiki", "url": "https://w.example/1", "content": "42 kg"},
                    {"title": "Other", "url": "https://w.example/2", "content": "nothing"},
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fetcher(ws: Workspace, site: str) -> list[BaseTool]:
    """Tools whose fetch_url may reach the loopback test site, as an operator allows a host."""
    return make_tools(ws, limits=FAST, fetch_allow_hosts=[site.removeprefix("http://")])


def test_fetch_url_reaches_public_addresses_only(
    tools: list[BaseTool], fetcher: list[BaseTool], site: str
) -> None:
    # the agent's only way out of a sandbox without network must not reach the machine itself
    port = site.rsplit(":", 1)[1]
    for url in (
        f"{site}/page",
        f"http://localhost:{port}/page",
        f"http://[::1]:{port}/page",
        f"http://[::ffff:127.0.0.1]:{port}/page",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://0.0.0.0/",
    ):
        refused = err(tools, "fetch_url", url=url)
        assert "refused to fetch" in refused and "MEMENTO_FETCH_ALLOW_HOSTS" in refused, url
    # an allowed host is fetched, but a redirect from it to another private address is not
    assert "# Widget facts" in ok(fetcher, "fetch_url", url=f"{site}/page")
    refused = err(fetcher, "fetch_url", url=f"{site}/redirect-metadata")
    assert "refused to fetch http://169.254.169.254/latest/meta-data/" in refused
    assert "more than 5 redirects" in err(fetcher, "fetch_url", url=f"{site}/redirect-loop")
    # the host allowed is host:port: the same host on another port stays refused
    assert "refused to fetch" in err(fetcher, "fetch_url", url="http://127.0.0.1:9/")


def test_fetch_url_gives_readable_text(fetcher: list[BaseTool], site: str) -> None:
    tools = fetcher
    text = ok(tools, "fetch_url", url=f"{site}/page")
    assert "# Widget facts" in text
    assert "The widget weighs **42 kg**." in text
    assert "<p>" not in text and "var hidden" not in text
    assert "# Widget facts" in ok(tools, "fetch_url", url=f"{site}/redirect")


def test_fetch_url_is_bounded(fetcher: list[BaseTool], site: str, monkeypatch) -> None:
    tools = fetcher
    text = ok(tools, "fetch_url", url=f"{site}/big")
    assert len(text) < tools_module.FETCH_MAX_CHARS + 200
    assert "[truncated" in text
    monkeypatch.setattr(tools_module, "FETCH_MAX_BYTES", 100_000)
    assert "[stopped reading at 100000 bytes]" in ok(tools, "fetch_url", url=f"{site}/big")


def test_fetch_url_errors(ws: Workspace, fetcher: list[BaseTool], site: str) -> None:
    tools = fetcher
    assert "HTTP 404" in err(tools, "fetch_url", url=f"{site}/nope")
    assert "not text" in err(tools, "fetch_url", url=f"{site}/image")
    assert "not an http(s) URL" in err(tools, "fetch_url", url="file:///etc/passwd")
    assert "not an http(s) URL" in err(tools, "fetch_url", url="ftp://example.com/x")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    closed = make_tools(ws, limits=FAST, fetch_allow_hosts=[f"127.0.0.1:{closed_port}"])
    assert "ConnectError" in err(closed, "fetch_url", url=f"http://127.0.0.1:{closed_port}/")
    assert "cannot resolve" in err(tools, "fetch_url", url="http://no-such-host.invalid/")


def test_web_search_without_a_key(tools: list[BaseTool], monkeypatch) -> None:
    monkeypatch.delenv("TAVILY_API_KEY", raising=False)
    message = err(tools, "web_search", query="widgets")
    assert "set the TAVILY_API_KEY environment variable" in message
    assert "turn web search off" in message


def test_web_search_network_failure(tools: list[BaseTool], monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-test")
    monkeypatch.setenv("TAVILY_API_BASE_URL", f"http://127.0.0.1:{closed_port}")
    assert "web search failed" in err(tools, "web_search", query="widgets")


def test_web_search_results(tools: list[BaseTool], site: str, monkeypatch) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-test")
    monkeypatch.setenv("TAVILY_API_BASE_URL", site)
    out = ok(tools, "web_search", query="widget weight", max_results=2)
    assert out.startswith("1. Widget wiki\n   https://w.example/1\n   42 kg")
    assert "2. Other" in out
    assert "less than or equal to 10" in err(tools, "web_search", query="x", max_results=50)


# ------------------------------------------------------------------ the answer


def test_submit_answer_is_recorded(tools: list[BaseTool], ws: Workspace) -> None:
    assert submitted_answer(tools) is None
    assert ok(tools, "submit_answer", answer="42 kg") == "answer recorded: 42 kg"
    assert submitted_answer(tools) == "42 kg"
    assert submitted_answer(make_tools(ws)) is None  # each make_tools records its own answers
