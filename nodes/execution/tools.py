"""The agent's tools: everything it can do to the world, each confined to a workspace or a skill.

Paths the model gives are always relative to the workspace (or the skill folder); absolute paths,
`..` and symlinks that lead outside are refused before anything is opened. Code runs only through
the sandbox (nodes/execution/sandbox/). A failing tool returns `error: ...` as its result so the
model can read what went wrong and try something else: no tool raises into the run.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import ipaddress
import os
import re
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import html2text
import httpx
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field, ValidationError

from memento_skills.nodes.execution.sandbox import (
    PathEscapeError,
    SandboxError,
    SandboxLimits,
    Workspace,
    confine,
    disk_usage,
)
from memento_skills.stores.skill import AGENT_TOOLS
from memento_skills.stores.trust import is_script, script_files

TOOL_NAMES: tuple[str, ...] = AGENT_TOOLS

READ_MAX_BYTES = 50_000
WRITE_MAX_BYTES = 2_000_000
LIST_MAX_ENTRIES = 500
FETCH_MAX_BYTES = 2_000_000
FETCH_TIMEOUT_S = 20.0
FETCH_MAX_CHARS = 20_000
SEARCH_TIMEOUT_S = 20.0
SEARCH_SNIPPET_CHARS = 600
TAVILY_BASE_URL_ENV = "TAVILY_API_BASE_URL"  # optional: a Tavily-compatible endpoint

RUN_PY_SCRIPT = (
    "import runpy, sys, os\n"
    "root, script = sys.argv[1], sys.argv[2]\n"
    "sys.argv = sys.argv[2:]\n"
    "sys.path[:0] = [os.path.dirname(script), root]\n"
    "runpy.run_path(script, run_name='__main__')\n"
)
"""Runs a skill's Python script isolated (-I) yet able to import its neighbours and the skill's
own packages (`from core.helpers import x`), as `python path/to/script.py` would."""


def _error_text(exc: ToolException) -> str:
    text = str(exc)
    return text if text.startswith("error:") else f"error: {text}"


def _validation_text(exc: ValidationError) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )
    return f"error: invalid arguments: {problems}"


def _guarded(name: str, fn: Callable[..., str]) -> Callable[..., str]:
    """Turn every failure into a ToolException so the model reads it instead of the run dying."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        try:
            return fn(*args, **kwargs)
        except ToolException:
            raise
        except (PathEscapeError, SandboxError, ValueError) as exc:
            raise ToolException(str(exc)) from exc
        except OSError as exc:
            raise ToolException(f"{exc.strerror or exc}: {exc.filename or ''}".strip()) from exc
        except Exception as exc:
            raise ToolException(f"{name} failed unexpectedly: {type(exc).__name__}: {exc}") from exc

    return wrapper


def _tool(name: str, description: str, schema: type[BaseModel], fn: Callable[..., str]) -> BaseTool:
    return StructuredTool.from_function(
        func=_guarded(name, fn),
        name=name,
        description=description,
        args_schema=schema,
        handle_tool_error=_error_text,
        handle_validation_error=_validation_text,
    )


def echo_last_expression(code: str) -> str:
    """Print the value of a program's final bare expression, as a REPL or notebook would.

    Models (small ones above all) write `23 * 47` and expect to see the result; without the echo
    the run prints nothing and they guess. Code that does not parse is returned unchanged so
    Python itself reports the error with its line numbers.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return code
    call = last.value
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print":
        return code
    lines = code.splitlines()
    start, end = last.lineno - 1, (last.end_lineno or last.lineno)
    if last.col_offset != 0 or (last.end_col_offset or 0) != len(lines[end - 1].rstrip()):
        return code  # shares a line with another statement: leave it alone
    expression = "\n".join(lines[start:end])
    echo = f"__memento_value = (\n{expression}\n)\nif __memento_value is not None:\n    print(repr(__memento_value))"
    return "\n".join([*lines[:start], echo, *lines[end:]])


# ---------------------------------------------------------------- argument schemas


class ShellArgs(BaseModel):
    command: str = Field(description="A bash command line, run in the workspace folder.")


class PythonArgs(BaseModel):
    code: str = Field(
        description="A complete Python program; print() what you need to see "
        "(the value of a final bare expression is shown too)."
    )


class ReadFileArgs(BaseModel):
    path: str = Field(description="Path relative to the workspace, e.g. 'data/input.csv'.")
    offset: int = Field(default=0, ge=0, description="Byte offset to start reading from.")


class WriteFileArgs(BaseModel):
    path: str = Field(description="Path relative to the workspace; parent folders are created.")
    content: str = Field(description="The whole new content of the file (UTF-8 text).")


class ListDirArgs(BaseModel):
    path: str = Field(default=".", description="Folder relative to the workspace.")
    recursive: bool = Field(default=False, description="List sub-folders too.")


class WebSearchArgs(BaseModel):
    query: str = Field(description="What to search the web for.")
    max_results: int = Field(default=5, ge=1, le=10, description="How many results (1-10).")


class FetchUrlArgs(BaseModel):
    url: str = Field(description="An http:// or https:// URL.")


class ReadSkillFileArgs(BaseModel):
    path: str = Field(description="Path inside the skill folder, e.g. 'references/guide.md'.")


class RunSkillScriptArgs(BaseModel):
    script: str = Field(
        description="A script's path in the skill folder, e.g. 'scripts/convert.py' or "
        "'core/build.py'."
    )
    args: list[str] = Field(default_factory=list, description="Command-line arguments.")


class SubmitAnswerArgs(BaseModel):
    answer: str = Field(description="The final answer to the task, as short as it can be.")


# ---------------------------------------------------------------- file helpers


def _open_regular(path: Path, shown: str) -> tuple[int, os.stat_result]:
    """Open a regular file without following links or blocking on FIFOs/devices."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ToolException(
            f"{shown!r} does not exist (use list_dir to see what is there)"
        ) from None
    except IsADirectoryError:
        raise ToolException(f"{shown!r} is a folder: use list_dir") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise ToolException(f"{shown!r} is a folder: use list_dir") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ToolException(f"{shown!r} is not a regular file (device, pipe or socket)")
    return fd, st


def _read_text(path: Path, shown: str, offset: int, foreign_uid_ok: Callable[[int], bool]) -> str:
    fd, st = _open_regular(path, shown)
    try:
        if st.st_nlink > 1 and not foreign_uid_ok(st.st_uid):
            raise ToolException(
                f"{shown!r} has {st.st_nlink} hard links and an unexpected owner; refusing to "
                "read it (a hard link can reach a file outside the workspace)"
            )
        if offset > st.st_size:
            raise ToolException(
                f"offset {offset} is past the end of {shown!r} ({st.st_size} bytes)"
            )
        os.lseek(fd, offset, os.SEEK_SET)
        data = os.read(fd, READ_MAX_BYTES)
    finally:
        os.close(fd)
    if b"\x00" in data:
        raise ToolException(
            f"{shown!r} is binary ({st.st_size} bytes); inspect it with the python tool instead"
        )
    text = data.decode("utf-8", errors="replace")
    end = offset + len(data)
    if end < st.st_size:
        text += (
            f"\n[truncated: showed bytes {offset}-{end} of {st.st_size}; "
            f"call read_file with offset={end} for more]"
        )
    return text if text else f"({shown!r} is empty)"


def _html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.ignore_images = True
    converter.body_width = 0
    return converter.handle(html).strip()


# ---------------------------------------------------------------- the tools


_PLACEHOLDER_ARG_RE = re.compile(r"N[1-9]\d?|<[A-Za-z_][\w-]{0,40}>")


def placeholder_args(args: Sequence[str], skill_root: Path) -> list[str]:
    """The `args` that are a placeholder of the skill's instructions copied as they stand (`N1`,
    `<word>`): a small model copies a worked call literally, and the script would fail on it."""
    try:
        instructions = (skill_root / "SKILL.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [
        a
        for a in args
        if _PLACEHOLDER_ARG_RE.fullmatch(str(a).strip()) and str(a).strip() in instructions
    ]


def make_tools(
    workspace: Workspace,
    *,
    skill_dir: Path | None = None,
    allowed_tools: Sequence[str] | None = None,
    skill_trusted: bool = True,
    approve_script: Callable[[str], bool] | None = None,
    limits: SandboxLimits | None = None,
    web_search: bool = True,
    fetch_allow_hosts: Sequence[str] = (),
) -> list[BaseTool]:
    """The tools for one run, in TOOL_NAMES order.

    `allowed_tools` is the skill's `allowed-tools` (None or empty: no restriction);
    `submit_answer` is always included. The skill tools are left out without a `skill_dir`,
    `web_search` when it is off. Scripts of an untrusted skill (in any of its folders) run
    only if `approve_script` approves their path, and their source cannot be read (see
    stores/trust.py). `fetch_url` reaches public addresses only, and the non-public
    hosts (`host` or `host:port`) in `fetch_allow_hosts`.
    """
    if allowed_tools:
        unknown = sorted(set(allowed_tools) - set(TOOL_NAMES))
        if unknown:
            raise ValueError(
                f"unknown tool name(s) in allowed-tools: {', '.join(unknown)}; "
                f"valid names are: {', '.join(TOOL_NAMES)}"
            )
    run_limits = limits or SandboxLimits()
    skill_root = Path(skill_dir).resolve() if skill_dir is not None else None
    answers: list[str] = []

    def may_read(owner: int) -> bool:
        return workspace.uid is None or owner == workspace.uid

    def shell(command: str) -> str:
        return workspace.run_shell(command, run_limits).to_text()

    def python(code: str) -> str:
        return workspace.run_python(echo_last_expression(code), run_limits).to_text()

    def read_file(path: str, offset: int = 0) -> str:
        return _read_text(workspace.resolve(path), path, offset, may_read)

    def write_file(path: str, content: str) -> str:
        data = content.encode("utf-8")
        if len(data) > WRITE_MAX_BYTES:
            raise ToolException(
                f"content is {len(data)} bytes, the limit is {WRITE_MAX_BYTES}; "
                "write it in parts or generate it with the python tool"
            )
        target = workspace.resolve(path)
        if target == workspace.root:
            raise ToolException("give a file name, not the workspace folder itself")
        replaced = target.lstat().st_blocks * 512 if target.is_file() else 0
        room = run_limits.disk_mb * 2**20 - disk_usage(workspace.root) + replaced
        if len(data) > room:
            raise ToolException(
                f"content is {len(data)} bytes and the workspace has {max(room, 0)} left of its "
                f"{run_limits.disk_mb} MB disk cap; delete files you no longer need first"
            )
        missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
        for folder in reversed(missing):
            folder.mkdir()
            workspace.adopt(folder)
        if target.exists() and not target.is_file():
            raise ToolException(f"{path!r} exists and is not a regular file")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        workspace.adopt(target)
        return f"wrote {len(data)} bytes to {target.relative_to(workspace.root)}"

    def list_dir(path: str = ".", recursive: bool = False) -> str:
        folder = workspace.root if path.strip() in (".", "./", "") else workspace.resolve(path)
        if not folder.is_dir():
            raise ToolException(f"{path!r} is not a folder (or does not exist)")
        lines: list[str] = []
        for current, dirnames, filenames in os.walk(folder):  # never follows symlinked folders
            dirnames.sort()
            for name in sorted([*dirnames, *filenames]):
                if len(lines) >= LIST_MAX_ENTRIES:
                    lines.append(f"[stopped after {LIST_MAX_ENTRIES} entries]")
                    return "\n".join(lines)
                entry = Path(current) / name
                rel = entry.relative_to(folder)
                if entry.is_symlink():
                    lines.append(f"link {rel} -> {os.readlink(entry)}")
                elif entry.is_dir():
                    lines.append(f"dir  {rel}/")
                else:
                    lines.append(f"file {rel} ({entry.lstat().st_size} bytes)")
            if not recursive:
                break
        return "\n".join(lines) if lines else f"({path!r} is empty)"

    def search(query: str, max_results: int = 5) -> str:
        key = os.environ.get("TAVILY_API_KEY", "").strip()
        if not key:
            raise ToolException(
                "web search is not configured: set the TAVILY_API_KEY environment variable "
                "(a key from tavily.com), or turn web search off for this run"
            )
        from tavily import TavilyClient

        client = TavilyClient(api_key=key, api_base_url=os.environ.get(TAVILY_BASE_URL_ENV) or None)
        try:
            found = client.search(query, max_results=max_results, timeout=SEARCH_TIMEOUT_S)
        except Exception as exc:
            raise ToolException(
                f"web search failed ({type(exc).__name__}: {exc}); check the network and the "
                "TAVILY_API_KEY, or continue without searching"
            ) from exc
        results = found.get("results") or []
        lines = [f"answer: {found['answer']}"] if found.get("answer") else []
        for i, item in enumerate(results, 1):
            snippet = str(item.get("content") or "")[:SEARCH_SNIPPET_CHARS]
            lines.append(
                f"{i}. {item.get('title') or '(untitled)'}\n   {item.get('url')}\n   {snippet}"
            )
        return "\n".join(lines) if lines else f"no results for {query!r}"

    def fetch_url(url: str) -> str:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ToolException(
                f"{url!r} is not an http(s) URL; give e.g. https://example.com/page"
            )
        deadline = time.monotonic() + FETCH_TIMEOUT_S
        body = bytearray()
        cut = ""
        try:
            with (
                httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as c,
                _fetch_public(c, url.strip(), fetch_allow_hosts) as r,
            ):
                if r.status_code >= 400:
                    raise ToolException(f"HTTP {r.status_code} {r.reason_phrase} from {url}")
                ctype = r.headers.get("content-type", "").lower()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) >= FETCH_MAX_BYTES:
                        cut = f"[stopped reading at {FETCH_MAX_BYTES} bytes]"
                        break
                    if time.monotonic() > deadline:
                        cut = f"[stopped reading after {FETCH_TIMEOUT_S:g} s]"
                        break
                encoding = r.encoding or "utf-8"
        except httpx.HTTPError as exc:
            raise ToolException(f"fetching {url} failed: {type(exc).__name__}: {exc}") from exc
        textual = ("text/", "json", "xml", "javascript")
        if ctype and not any(t in ctype for t in textual):
            raise ToolException(f"{url} returned {ctype}, not text; it cannot be shown")
        text = bytes(body).decode(encoding, errors="replace")
        if "html" in ctype or text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
            text = _html_to_text(text)
        if len(text) > FETCH_MAX_CHARS:
            cut = f"[truncated {len(text) - FETCH_MAX_CHARS} characters] {cut}".strip()
            text = text[:FETCH_MAX_CHARS]
        return f"{text}\n{cut}".strip() if cut else text

    def read_skill_file(path: str) -> str:
        """A skill file; an untrusted skill's scripts stay unread, so unreviewed code never
        reaches the prompt to be replayed through the python tool."""
        assert skill_root is not None
        target = confine(skill_root, path, what="the skill folder")
        if not skill_trusted and target.is_file() and is_script(target):
            raise ToolException(
                f"{path!r} is a script of an untrusted skill: its source is not shown until "
                "the operator trusts the skill. Solve the task without it; do not write code "
                "that does what you guess the script does"
            )
        return _read_text(target, path, 0, lambda _: True)

    def find_script(script: str) -> Path:
        """The script `script` names: a path in the skill folder, or a bare scripts/ name."""
        assert skill_root is not None
        target = confine(skill_root, script, what="the skill folder")
        if not target.is_file() and "/" not in script.strip("/"):
            legacy = confine(skill_root, f"scripts/{script}", what="the skill folder")
            target = legacy if legacy.is_file() else target
        if not target.is_file():
            known = ", ".join(script_files(skill_root)) or "none"
            raise ToolException(f"no script {script!r} in the skill folder (its scripts: {known})")
        return target

    def run_skill_script(script: str, args: list[str] | None = None) -> str:
        assert skill_root is not None
        target = find_script(script)
        shown = target.relative_to(skill_root).as_posix()
        copied = placeholder_args(args or [], skill_root)
        if copied:
            raise ToolException(
                f"{', '.join(map(repr, copied))} is the skill's placeholder, not a value: call "
                "the script again with the value from the task in its place"
            )
        if target.suffix not in (".py", ".sh", ".bash") and not os.access(target, os.X_OK):
            raise ToolException(
                f"{shown!r} is neither .py nor .sh nor executable; it is not a script"
            )
        if not skill_trusted and not (approve_script is not None and approve_script(str(target))):
            raise ToolException(
                f"refused to run {shown!r}: skill {skill_root.name!r} is untrusted and the "
                "operator has not approved this script. Do not reproduce what it does with other "
                "tools (that would run unapproved code); solve the task another way. Only the "
                f"operator can allow it (`memento skills trust {skill_root.name}`)"
            )
        root = skill_root
        if workspace.isolation != "namespaces":
            # Without a mount namespace the sandbox's uid reads the host's tree, where the
            # library may sit in a folder it must not enter (a run dir beside its golds): the
            # script runs from a copy of its skill folder in the workspace instead.
            root = workspace.tmp / f"skill-{uuid.uuid4().hex[:8]}"
            shutil.copytree(skill_root, root, symlinks=True)
            for dirpath, dirnames, filenames in os.walk(root):
                for name in (*dirnames, *filenames):
                    workspace.adopt(Path(dirpath) / name)
            workspace.adopt(root)
        run_target = root / target.relative_to(skill_root)
        if run_target.suffix == ".py":
            argv = [workspace.python, "-I", "-c", RUN_PY_SCRIPT, str(root), str(run_target)]
        elif run_target.suffix in (".sh", ".bash"):
            argv = ["/bin/bash", str(run_target)]
        else:
            argv = [str(run_target)]
        result = workspace.run([*argv, *(args or [])], run_limits, ro_paths=[skill_root])
        return result.to_text()

    def submit_answer(answer: str) -> str:
        answers.append(answer)
        return f"answer recorded: {answer}"

    limits_note = (
        f"{workspace.network_note(run_limits)}; time, memory and {run_limits.disk_mb} MB disk "
        "limits"
    )
    refused = f" Unavailable here: {workspace.refused}." if workspace.refused else ""
    specs: list[tuple[str, str, type[BaseModel], Callable[..., str]]] = [
        (
            "shell",
            f"Run a bash command in the sandboxed workspace ({limits_note}). Returns the exit "
            f"code, stdout and stderr.{refused}",
            ShellArgs,
            shell,
        ),
        (
            "python",
            f"Run a Python program in the sandboxed workspace ({limits_note}) and return what "
            f"it printed. Use it for any calculation.{refused}",
            PythonArgs,
            python,
        ),
        ("read_file", "Read a text file from the workspace.", ReadFileArgs, read_file),
        (
            "write_file",
            "Create or overwrite a text file in the workspace.",
            WriteFileArgs,
            write_file,
        ),
        ("list_dir", "List the files in a workspace folder.", ListDirArgs, list_dir),
        ("web_search", "Search the web; returns titles, URLs and snippets.", WebSearchArgs, search),
        ("fetch_url", "Fetch a web page and return it as readable text.", FetchUrlArgs, fetch_url),
        (
            "read_skill_file",
            "Read a file of the current skill, e.g. 'references/guide.md'.",
            ReadSkillFileArgs,
            read_skill_file,
        ),
        (
            "run_skill_script",
            "Run a script of the current skill (any of its folders) in the workspace.",
            RunSkillScriptArgs,
            run_skill_script,
        ),
        (
            "submit_answer",
            "Submit the final answer to the task. Call it once, when you are done.",
            SubmitAnswerArgs,
            submit_answer,
        ),
    ]
    wanted = set(allowed_tools) if allowed_tools else set(TOOL_NAMES)
    wanted.add("submit_answer")
    if not web_search:
        wanted.discard("web_search")
    if skill_root is None:
        wanted -= {"read_skill_file", "run_skill_script"}
    tools = [_tool(*spec) for spec in specs if spec[0] in wanted]
    for tool in tools:
        if tool.name == "submit_answer":
            tool.metadata = {"answers": answers}
    return tools


FETCH_MAX_REDIRECTS = 5
FETCH_ALLOW_HOSTS_ENV = "MEMENTO_FETCH_ALLOW_HOSTS"


def _non_public_address(host: str, port: int) -> str | None:
    """The first address `host` resolves to that is not on the public internet, if any.

    The sandbox cuts the network where the machine allows it (see Workspace.network_note), so
    fetch_url is meant to be the agent's only way out; a page or a task
    must not steer it at the machine's own services (a local model server, a cloud metadata
    endpoint at 169.254.169.254, an intranet). A name that resolves to several addresses is
    refused if any one is private. Known gap: a DNS answer that changes between this check
    and httpx's own lookup (rebinding) is not caught.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ToolException(f"cannot resolve {host!r}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global:
            return str(address)
    return None


@contextlib.contextmanager
def _fetch_public(
    client: httpx.Client, url: str, allow_hosts: Sequence[str]
) -> Iterator[httpx.Response]:
    """GET `url`, following redirects one hop at a time so that every hop is checked."""
    allowed = {h.strip().lower() for h in allow_hosts if h.strip()}
    request = client.build_request("GET", url, headers={"User-Agent": "memento-skills"})
    for _hop in range(FETCH_MAX_REDIRECTS + 1):
        host = (request.url.host or "").lower()
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        if request.url.scheme not in ("http", "https"):
            raise ToolException(f"refused a redirect to {request.url}: not http(s)")
        if host not in allowed and f"{host}:{port}" not in allowed:
            private = _non_public_address(host, port)
            if private is not None:
                raise ToolException(
                    f"refused to fetch {request.url}: {host} is {private}, a loopback, private "
                    "or link-local address, and fetch_url reaches public addresses only (an "
                    f"operator can allow a host with {FETCH_ALLOW_HOSTS_ENV}=host[:port],...)"
                )
        response = client.send(request, stream=True)
        if not response.is_redirect or response.next_request is None:
            try:
                yield response
            finally:
                response.close()
            return
        response.close()
        request = response.next_request
    raise ToolException(f"fetching {url} failed: more than {FETCH_MAX_REDIRECTS} redirects")


def submitted_answer(tools: Sequence[BaseTool]) -> str | None:
    """The last answer given to these tools' `submit_answer`, if any."""
    for tool in tools:
        if tool.name == "submit_answer" and tool.metadata:
            answers = tool.metadata.get("answers") or []
            return str(answers[-1]) if answers else None
    return None
