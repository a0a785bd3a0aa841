"""Exit codes of the `memento` command, and the one place an error becomes one line and a code.

Every command lets its errors propagate; `main()` in cli.py hands them to `exit_for`, so no
command needs its own try/except. `--debug` (or MEMENTO_DEBUG=1) adds the traceback.
"""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """What a script can tell from `$?`."""

    OK = 0
    FAILED = 1
    """The command ran and its result is a failure: the task failed (verdict FAIL or the
    executor failed), or a checked skill is malformed (`validate`, `import`)."""
    BAD_INPUT = 2
    """A bad argument, option, path, file or setting (usage errors included)."""
    UNREACHABLE = 3
    """The model endpoint (or the offline model server, or the Chroma server) cannot be reached."""
    LEAK = 4
    """The leak check found a gold answer of the suite in the library: do not trust the run."""
    INTERNAL = 70
    """A bug in memento: rerun with --debug and report the traceback."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C or SIGTERM (learn/eval: rerun the same command to resume)."""


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 failed (the task failed, or a skill is malformed); 2 bad input "
    "(argument, path, file or setting); 3 unreachable (model endpoint, local model server or "
    "Chroma server); 4 leak check found a gold answer; 70 internal error (rerun with --debug); "
    "130 interrupted."
)


class BadInputError(ValueError):
    """A command-line argument names something unusable, e.g. a path that does not exist."""


class CommandFailed(Exception):
    """A command ran to the end and its result is a failure (exit code 1, or the code given)."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED):
        super().__init__(message)
        self.code = code


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """An error class from a module only if it is already imported (keeps `--help` fast)."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _unreachable_types() -> tuple[type[BaseException], ...]:
    names = (
        ("memento_skills.evals.learning", "EndpointError"),
        ("memento_skills.graph.models.local_server", "LocalLLMError"),
        ("openai", "APIConnectionError"),
        ("httpx", "NetworkError"),
        ("httpx", "TimeoutException"),
    )
    found = tuple(t for t in (_loaded(m, n) for m, n in names) if t is not None)
    return (ConnectionError, TimeoutError, *found)


def classify(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the one-line message for an error that reached the top."""
    if isinstance(exc, CommandFailed):
        return exc.code, str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED, "interrupted"
    bad_gguf = _loaded("memento_skills.graph.models.local_server", "GGUFFileError")
    if bad_gguf is not None and isinstance(exc, bad_gguf):
        return ExitCode.BAD_INPUT, str(exc)
    if isinstance(exc, _unreachable_types()):
        return ExitCode.UNREACHABLE, str(exc) or type(exc).__name__
    skill_error = _loaded("memento_skills.stores.skill", "SkillError")
    if skill_error is not None and isinstance(exc, skill_error):
        return ExitCode.BAD_INPUT, str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        what = exc.strerror or type(exc).__name__
        return ExitCode.BAD_INPUT, f"{exc.filename}: {what.lower()}; check the path"
    if isinstance(exc, ValueError):
        return ExitCode.BAD_INPUT, str(exc) or type(exc).__name__
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return (
        ExitCode.INTERNAL,
        f"internal error ({detail}); rerun with `memento --debug ...` for the traceback "
        "and report it",
    )


def one_line(message: str) -> str:
    """A message folded onto one line (a server log tail or a YAML error spans several)."""
    return " ".join(message.split())


def report_error(exc: BaseException, *, debug: bool, console: Any) -> ExitCode:
    """Print the error as one line on stderr (with the traceback first under --debug)."""
    code, message = classify(exc)
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    from rich.markup import escape

    label = "error" if code is not ExitCode.FAILED else "failed"
    text = escape(one_line(message))
    console.print(f"[bold red]{label}:[/] {text}", highlight=False, soft_wrap=True)
    return code
