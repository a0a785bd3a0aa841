"""The `memento` command line: the app, `memento run` and the benchmarks; the command groups
`skills` (cli_skills.py), `router` (cli_router.py) and the learning runs (cli_evals.py) live beside it.

Output is for people by default (rich tables, colour on a terminal); `--json` prints one JSON
document for scripts. Errors propagate to `main()`, which prints one line and exits with the
code cli_errors.py defines (a traceback only with --debug).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from memento_skills.cli_common import (
    SEARCH_OPTIONS,
    DirOpt,
    JsonOpt,
    SearchSecondsOpt,
    SearchTokensOpt,
    SearchTriesOpt,
    emit_json,
    err,
    existing_library_dir,
    fail,
    library_at,
    out,
    search_budget,
    shared_library,
)
from memento_skills.cli_errors import (
    EXIT_CODES_HELP,
    BadInputError,
    CommandFailed,
    ExitCode,
    report_error,
)
from memento_skills.cli_skills import skills_app

app = typer.Typer(
    name="memento",
    help="A self-improving agent that learns by writing its own skills.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(
    help="Benchmarks that print measured figures.", epilog=EXIT_CODES_HELP, no_args_is_help=True
)
app.add_typer(skills_app, name="skills")
app.add_typer(bench_app, name="bench")

_debug = {"on": False}


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", envvar="MEMENTO_DEBUG", help="Print the traceback of an error as well."
        ),
    ] = False,
) -> None:
    """A self-improving agent that learns by writing its own skills."""
    _debug["on"] = debug


@app.command("run")
def run(
    task: Annotated[
        str | None,
        typer.Argument(help="The task, in words (leave out to resume the --thread's task)."),
    ] = None,
    ground_truth: Annotated[
        str | None, typer.Option("--ground-truth", help="Judge against this known answer.")
    ] = None,
    dir: DirOpt = None,
    index: Annotated[Path | None, typer.Option(help="Index folder.")] = None,
    write_policy: Annotated[
        str | None,
        typer.Option(
            help="What the write phase may change: off, create, refine, full "
            "(default full; off on the offline smoke model)."
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(help="Attempts per task (default 2; 1 on the offline smoke model)."),
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="Ask before any change to the library is written.")
    ] = False,
    approve_scripts: Annotated[
        bool,
        typer.Option(
            "--approve-scripts",
            help="Show each script of an untrusted skill the agent wants to run and ask y/N "
            "(without a terminal they are refused).",
        ),
    ] = False,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint (default: env or local model).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name for every role.")] = None,
    json_out: JsonOpt = False,
    thread: Annotated[
        str | None,
        typer.Option(
            "--thread",
            help="Run on this durable thread (checkpointed in $MEMENTO_HOME/checkpoints.sqlite); "
            "a task killed mid-run resumes with `memento run --thread ID`.",
        ),
    ] = None,
    search_tries: SearchTriesOpt = None,
    search_tokens: SearchTokensOpt = None,
    search_seconds: SearchSecondsOpt = None,
) -> None:
    """Run one task: route to a skill, execute, judge, and learn from the outcome.

    Exit code 0 when the answer passed (or was not judged), 1 when the verdict is FAIL or the
    executor failed, 2 for a bad option, 3 when the model endpoint cannot be reached (checked
    before the run).
    """
    from memento_skills.graph.models import resolve_settings
    from memento_skills.graph.validation import RunRefused, check_context, check_input
    from memento_skills.runner import NoTaskToResume, UnfinishedTask, describe, run_task
    from memento_skills.smoke_run import SMOKE_MODEL_ENV, SMOKE_NOTICE, is_smoke_model, smoke_fields

    given: dict[str, Any] = {
        "approval_required": approve,
        "skills_dir": str(dir) if dir else "",
        "index_dir": str(index) if index else "",
        **search_budget(search_tries, search_tokens, search_seconds),
    }
    if write_policy is not None:
        given["write_policy"] = write_policy
    if max_attempts is not None:
        given["max_attempts"] = max_attempts
    if base_url:
        given["base_url"] = base_url
    if model:
        given.update({f"{r}_model": model for r in ("executor", "judge", "writer")})
    settings = resolve_settings("executor", base_url=base_url, model=model)
    fields = smoke_fields(settings, given)
    if thread is not None and not thread.strip():
        fail("--thread: the thread id is empty; give a name, e.g. --thread my-task")
    if dir is not None:
        given["store_url"] = ""  # an explicit folder wins over $MEMENTO_STORE_URL
    else:
        from memento_skills.stores.settings import store_url_env
        from memento_skills.stores.store_url import check_store_url

        if store_url_env().strip():
            check_store_url(store_url_env().strip())  # its own message, before the Context's
    try:  # the graph checks again as the run starts; here it fails before the library is seeded
        if task is not None or thread is None:
            check_input({"task": task, "ground_truth": ground_truth})
        ctx = check_context(fields)
    except RunRefused as e:
        if e.field == "task":
            fail('TASK is empty: say the task in words, e.g. memento run "What is 6 times 7?"')
        option = {
            "write_policy": "--write-policy",
            "max_attempts": "--max-attempts",
            **SEARCH_OPTIONS,
        }
        fail(f"{option[e.field]}: {e}" if e.field in option else str(e))
    if ctx is not None and ctx.mcp_config:
        from memento_skills.stores.mcp_config import McpConfigError, load_file

        try:
            load_file(ctx.mcp_config, owner="operator")
        except McpConfigError as e:
            fail(f"MEMENTO_MCP_CONFIG: {e}")
    if dir is not None:
        existing_library_dir(dir)
    else:
        shared_library(None)  # a store that does not answer fails here, in one line
    endpoint = _check_endpoint(base_url, model)
    from memento_skills.cli_evals import announce_sandbox

    announce_sandbox()
    if not json_out:
        library_at(dir)  # seeds a new library before the first run, visibly
    if is_smoke_model(settings):
        err.print(SMOKE_NOTICE, markup=False, highlight=False)
        for name, value in SMOKE_MODEL_ENV.items():
            os.environ.setdefault(name, value)  # read when the graph builds each role's model

    terminal = threading.Lock()  # one speaker at a time: progress lines or the script prompt

    def on_event(event: dict[str, Any]) -> None:
        line = describe(event)
        if line and not json_out:
            with terminal:
                err.print(line, highlight=False, markup=False)

    def approver(payload: dict[str, Any]) -> Any:
        if json_out or not sys.stdin.isatty():
            err.print("approval needed but no terminal to ask: change rejected")
            return "reject"
        out.print(payload.get("question", "Apply this change?"))
        for line in str(payload.get("diff", "")).splitlines():
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            out.print(line, style=style, markup=False, highlight=False)
        return "accept" if typer.confirm("Accept?", default=False) else "reject"

    resources = None
    if approve_scripts:
        from memento_skills.graph.resources import Resources
        from memento_skills.script_approval import TerminalScriptApprover

        resources = Resources(
            approve_script=TerminalScriptApprover(
                library_at(dir).root, err, _confirm_on_stderr, lock=terminal
            )
        )
    with contextlib.ExitStack() as stack:
        checkpointer = stack.enter_context(_durable_checkpointer()) if thread else None
        try:
            result = run_task(
                task,
                context=ctx,
                ground_truth=ground_truth,
                on_event=on_event,
                approver=approver,
                resources=resources,
                checkpointer=checkpointer,
                thread_id=thread,
            )
        except (UnfinishedTask, NoTaskToResume) as e:
            fail(str(e))
    failure = _run_failure(result, endpoint)
    if json_out:
        emit_json(result.to_dict())
        if failure is not None:
            raise failure
        return
    for w in result.writes:
        if w.get("action") not in ("utility", "none"):
            state = "accepted" if w.get("accepted") else "not applied"
            err.print(
                f"change: {w.get('action')} {w.get('skill')} ({state}): {w.get('reason')}",
                markup=False,
            )
    out.print(
        result.answer if result.answer else f"(no answer: {result.error or 'see above'})",
        markup=False,
    )
    if failure is not None:
        raise failure


@contextlib.contextmanager
def _durable_checkpointer() -> Iterator[Any]:
    """The SQLite checkpointer `memento run --thread` keeps its threads in."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    from memento_skills.stores.settings import memento_home

    path = memento_home() / CHECKPOINTS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cm = SqliteSaver.from_conn_string(str(path))
        saver = cm.__enter__()
    except (OSError, sqlite3.Error) as e:
        raise BadInputError(
            f"cannot open the checkpoint database {path}: {e}; check MEMENTO_HOME"
        ) from None
    try:
        yield saver
    finally:
        cm.__exit__(None, None, None)


CHECKPOINTS_FILE = "checkpoints.sqlite"


def _check_endpoint(base_url: str | None, model: str | None) -> str:
    """Before a run: an endpoint that does not answer at all is reported as unreachable (exit
    3) at once, instead of after every role's retries as a failed task. Returns its URL."""
    from memento_skills.graph.models import OPENAI_BASE_URL, probe_endpoint, resolve_settings

    settings = resolve_settings("executor", base_url=base_url, model=model)
    if settings.offline_default:
        return "the offline model server"  # started (and checked) by the run itself
    url = settings.base_url or OPENAI_BASE_URL
    probe_endpoint(url, settings.api_key)
    return url


_UNREACHABLE = ("APIConnectionError", "OpenAIConnectionError", "APITimeoutError", "LocalLLMError")


def _run_failure(result: Any, endpoint: str) -> CommandFailed | None:
    """Why `memento run` must not exit 0: the endpoint went away, the executor failed, or FAIL."""
    if result.answer is None and result.error:
        if any(name in result.error for name in _UNREACHABLE):
            return CommandFailed(
                f"the model endpoint {endpoint} stopped answering during the run "
                f"({result.error}); check the server, or point --base-url / MEMENTO_BASE_URL "
                "at one that runs",
                ExitCode.UNREACHABLE,
            )
        return CommandFailed(f"the task failed: {result.error}")
    verdict = result.verdict or {}
    if verdict and not verdict.get("passed"):
        critique = str(verdict.get("critique") or "").strip()
        return CommandFailed(
            f"the task failed: verdict FAIL ({verdict.get('method')})"
            + (f": {critique}" if critique else "")
        )
    return None


def _confirm_on_stderr(question: str) -> bool:
    """y/N on the terminal, asked on stderr (stdout keeps the answer); Ctrl-D or Ctrl-C: no."""
    try:
        return bool(typer.confirm(question, default=False, err=True))
    except typer.Abort:
        return False


def _print_figures(title: str, result: dict[str, Any]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in result.items():
        if isinstance(v, list | dict):
            continue
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    out.print(table)


@bench_app.command("store")
def bench_store(
    n: Annotated[int, typer.Option(help="Number of synthetic skills.")] = 10_000,
    json_out: JsonOpt = False,
) -> None:
    """Index build, resync and query latency on a synthetic library of N skills."""
    from memento_skills.evals.bench_store import run_store_bench

    result = run_store_bench(n)
    if json_out:
        emit_json(result)
    else:
        _print_figures(f"store benchmark, {n} skills", result)


@bench_app.command("sandbox")
def bench_sandbox(json_out: JsonOpt = False) -> None:
    """Run the escape suite through the real tools: contained / attempted."""
    from memento_skills.cli_evals import announce_sandbox
    from memento_skills.evals.bench_sandbox import run_sandbox_bench
    from memento_skills.nodes.execution.sandbox import SandboxError

    announce_sandbox()
    try:
        result = run_sandbox_bench()
    except SandboxError as e:
        fail(str(e))
    if json_out:
        emit_json(result)
        return
    table = Table(
        title=f"sandbox: {result['contained']}/{result['attempted']} contained",
        title_justify="left",
    )
    for col in ("case", "outcome", "detail"):
        table.add_column(col, overflow="fold")
    for case in result["cases"]:
        style = "green" if case["outcome"] == "contained" else "bold red"
        table.add_row(case["name"], f"[{style}]{case['outcome']}[/]", str(case.get("detail", "")))
    out.print(table)


@bench_app.command("graph")
def bench_graph(json_out: JsonOpt = False) -> None:
    """Graph overhead per task (zero-latency model) and prompt tokens at 10 and 1,000 skills."""
    from memento_skills.evals.bench_graph import run_graph_bench

    result = run_graph_bench()
    if json_out:
        emit_json(result)
    else:
        _print_figures("graph benchmark", result)


@bench_app.command("scale")
def bench_scale(
    sizes: Annotated[str, typer.Option(help="Library sizes, comma-separated.")] = "10,1000,10000",
    tasks: Annotated[int, typer.Option(help="Timed tasks per size.")] = 20,
    workers: Annotated[str, typer.Option(help="Worker counts, comma-separated.")] = "1,2,4",
    worker_tasks: Annotated[int, typer.Option(help="Tasks per worker.")] = 20,
    store_url: Annotated[
        str,
        typer.Option(
            help="Postgres to measure the shared store on (default: $MEMENTO_STORE_URL).",
        ),
    ] = "",
    pgserver: Annotated[
        bool, typer.Option(help="Measure the shared store on a throwaway Postgres (pgserver).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Graph overhead, route and write p50 at growing library sizes on each backend, and judged
    tasks per second with workers sharing one library."""
    from memento_skills.evals.bench_scale import run_scale_bench, table, throwaway_postgres
    from memento_skills.stores.settings import store_url_env

    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
        counts = [int(s) for s in workers.split(",") if s.strip()]
    except ValueError:
        raise BadInputError(
            "--sizes and --workers take whole numbers separated by commas, e.g. 10,1000"
        ) from None
    url = store_url or store_url_env()
    if pgserver:
        import importlib.util

        if importlib.util.find_spec("pgserver") is None:
            raise BadInputError("--pgserver needs the pgserver package: pip install pgserver")
    holder = throwaway_postgres() if pgserver else contextlib.nullcontext(url)
    try:
        with holder as db:
            result = run_scale_bench(
                size_list, tasks=tasks, workers=counts, worker_tasks=worker_tasks, store_url=db
            )
    except ValueError as e:
        raise BadInputError(str(e)) from None
    if json_out:
        emit_json(result)
    else:
        out.print(table(result), markup=False, highlight=False)


from memento_skills.cli_evals import register  # noqa: E402

register(app)


from memento_skills.cli_router import router_app  # noqa: E402

app.add_typer(router_app, name="router")


def main() -> None:
    """The `memento` entry point: every error that reaches here is one line and an exit code.

    Usage errors (exit 2) and Ctrl-C (exit 130) are handled by typer itself.
    """
    try:
        app()
    except Exception as e:
        sys.exit(report_error(e, debug=_debug["on"], console=err))
