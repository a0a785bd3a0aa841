"""The learning-time search: before writing from a failed attempt, look for a way of solving the
task that the judge passes, cheapest candidate first, within a budget per task.

Candidates, in order (docs/decisions.md#learning-search): the executor sampled again with the
same skill at a temperature above 0; the executor with a computing tool forced first (one the
failed attempt did not call); the writer's own parameterised program, run in a sandbox of its
own; and that program repaired, up to `search_repairs` times, from its output and the bare
verdict. Three slips that say nothing about the computation are mended without a model call:
text after the program's closing code fence, a cut-off last line, and a standard module used
without its import; a reply that repeats a program already tried is asked for again at a
temperature above 0 (docs/decisions.md#program-mending). The writer writes the program for this
task, its values as named variables; once it passes, those values are lifted out into
command-line arguments (nodes/writing/lifting.py), so the procedure carries a script that takes
the task's values as arguments (docs/decisions.md#value-lifting). A passing executor run that
computed with python is lifted the same way; one that used shell, or whose code cannot be
lifted, is turned into a Python program by the writer.

The judge is the oracle, and against a gold only its deterministic match counts (`oracle_passed`);
the gold it holds never reaches the writer: the writer sees the task,
the failed trajectory, its program, that program's output and "the judge says this answer is
wrong" — never the gold, never the judge's critique (which may paraphrase the gold). What the
writer sees is the agent's own work (its calls, its programs' output), never the judge's.
"""

from __future__ import annotations

import re
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import BaseCallbackManager
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda, ensure_config

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.models import UsageTracker
from memento_skills.graph.state import (
    ExecuteOverride,
    Procedure,
    ProgramTried,
    SearchReport,
    SearchStop,
    ToolStep,
    Verdict,
    task_text,
)
from memento_skills.nodes.execute import copy_attachments
from memento_skills.nodes.execution.sandbox import (
    RunResult,
    SandboxError,
    SandboxLimits,
    Workspace,
    reachable_dir,
)
from memento_skills.nodes.gate import ReplayGraph
from memento_skills.nodes.writing.lifting import lifted
from memento_skills.nodes.writing.prompts import (
    CRASHED,
    NOT_PYTHON_PROMPT,
    PRINTED_NOTHING,
    PROGRAM_PROMPT,
    REPAIR_PROGRAM_PROMPT,
    RUN_WITH,
    WORKING_CODE,
    WRONG_ANSWER,
    Program,
    attempt_text,
)
from memento_skills.stores.cases import Case
from memento_skills.stores.skill import Skill

SAMPLE_TEMPERATURE = 0.8
"""The resample's temperature: a different sample, still the same skill and tools."""
FORCED_TOOLS = ("python", "shell")
"""Computing tools a candidate may force first, in the order they are tried."""
OUTPUT_TO_WRITER = 2_000
"""How much of a program's run (stdout and stderr) the writer sees on a repair."""
SCRIPT_NAME = "program.py"
PROGRAM_KEPT = 4_000
"""How much of the last program the report keeps."""
TAIL_LINES_CUT = 2
"""At most this many last lines are dropped to make a cut-off program compile."""
IMPORTS_ADDED = 3
"""At most this many missing standard-library imports are added to one program."""

JudgeCall = Callable[[Mapping[str, Any], Context], Verdict]
"""The judge node on a state holding a candidate's answer: its verdict."""

Gate = Literal["run", "off", "no-ground-truth"]


def search_gate(state: Mapping[str, Any], ctx: Context, write_decided: bool) -> Gate | None:
    """Whether the search runs on this attempt: "run"; "off" or "no-ground-truth" (reported,
    not run); None when nothing about it applies (a pass, no write decided or allowed, or the
    task already searched — one search per task, across its attempts)."""
    verdict: Mapping[str, Any] = state.get("verdict") or {}
    if verdict.get("passed") or not write_decided or ctx.write_policy == "off":
        return None
    if state.get("search") is not None:
        return None
    if state.get("ground_truth") is None and not state.get("rubric"):
        return "no-ground-truth"
    if ctx.search_tries <= 0:
        return "off"
    return "run"


def not_run(stopped: SearchStop) -> SearchReport:
    """The report of a search that did not run, and why."""
    return SearchReport(tries=0, tokens=0, seconds=0.0, found_by=None, outcomes=[], stopped=stopped)


@dataclass
class Spend:
    """What the search has spent so far, and the lines of its report."""

    ctx: Context
    tracker: UsageTracker = field(default_factory=lambda: UsageTracker(prices={}))
    started: float = field(default_factory=time.monotonic)
    tries: int = 0
    outcomes: list[str] = field(default_factory=list)
    last_program: ProgramTried | None = None

    @property
    def tokens(self) -> int:
        return int(self.tracker.summary()["total"]["total_tokens"])

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def exhausted(self) -> SearchStop | None:
        """The budget that is spent, if one is."""
        if self.tries >= self.ctx.search_tries:
            return "budget-tries"
        if self.tokens >= self.ctx.search_tokens:
            return "budget-tokens"
        if self.seconds >= self.ctx.search_seconds:
            return "budget-seconds"
        return None

    def config(self) -> RunnableConfig:
        """The current run's callbacks with this search's usage tracker added, so its calls are
        counted here and still in the run's own usage."""
        callbacks = ensure_config().get("callbacks")
        if isinstance(callbacks, BaseCallbackManager):
            manager = callbacks.copy()
            manager.add_handler(self.tracker, inherit=True)
            return {"callbacks": manager}
        return {"callbacks": [*(callbacks or []), self.tracker]}

    def judged(self, label: str, passed: bool, note: str = "") -> None:
        self.tries += 1
        line = f"{label}: {'pass' if passed else 'fail'}" + (f" ({note})" if note else "")
        self.outcomes.append(line)
        emit(
            "reflect_write",
            {
                "event": "search_try",
                "try": self.tries,
                "candidate": label,
                "passed": passed,
                "tokens": self.tokens,
            },
        )

    def noted(self, note: str) -> None:
        """`note` added to the last outcome line (what was done after its verdict)."""
        last = self.outcomes[-1]
        self.outcomes[-1] = f"{last[:-1]}; {note})" if last.endswith(")") else f"{last} ({note})"

    def report(self, found_by: str | None, stopped: SearchStop) -> SearchReport:
        report = SearchReport(
            tries=self.tries,
            tokens=self.tokens,
            seconds=round(self.seconds, 3),
            found_by=found_by,
            outcomes=list(self.outcomes),
            stopped=stopped,
        )
        if self.last_program is not None:
            report["last_program"] = self.last_program
        return report


@dataclass(frozen=True)
class _Run:
    """One candidate's run: its answer, whether the judge passed it, and what it did."""

    answer: str
    passed: bool
    steps: list[ToolStep] = field(default_factory=list)
    output: str = ""
    crashed: bool = False
    """The program ended with an error (a non-zero exit, a limit)."""


class Search:
    """One task's search; `run()` gives what it found (None: nothing passed) and its report."""

    def __init__(
        self,
        state: Mapping[str, Any],
        ctx: Context,
        *,
        replay: Callable[[], ReplayGraph],
        judge: JudgeCall,
        writer: Callable[[], BaseChatModel],
        skill: Skill | None,
    ) -> None:
        self.state = state
        self.ctx = ctx
        self.replay = replay
        self.judge = judge
        self.writer = writer
        self.skill = skill
        self.spend = Spend(ctx)
        self.task = task_text(state)
        self.case = Case(
            task=self.task,
            ground_truth=state.get("ground_truth"),
            rubric=state.get("rubric"),
            task_id=str(state.get("task_id") or ""),
        )

    # -------------------------------------------------------------- the candidates

    def executor_candidates(self) -> list[tuple[str, ExecuteOverride]]:
        """The executor's candidates, cheapest first: a resample, then each computing tool the
        skill offers and the failed attempt did not call, forced first."""
        called = {s["tool"] for s in self.state.get("trajectory") or []}
        offered = set(self.skill.allowed_tools) if self.skill and self.skill.allowed_tools else None
        candidates: list[tuple[str, ExecuteOverride]] = [
            ("sample-1", ExecuteOverride(temperature=SAMPLE_TEMPERATURE))
        ]
        for tool in FORCED_TOOLS:
            if tool not in called and (offered is None or tool in offered):
                candidates.append((f"forced-{tool}", ExecuteOverride(first_tools=[tool])))
        return candidates

    def run(self) -> tuple[Procedure | None, SearchReport]:
        """Try the candidates in order until one passes or the budget is spent."""
        emit("reflect_write", {"event": "search_start", "budget": self._budget()})
        # keep one try for the writer's program whenever the budget has two or more
        executor = self.executor_candidates()[: max(1, self.ctx.search_tries - 1)]
        winner: tuple[str, _Run] | None = None
        for label, override in executor:
            stop = self.spend.exhausted()
            if stop is not None:
                return self._end(None, stop)
            run = self._executor(label, override)
            if run.passed:
                winner = (label, run)
                break
        if winner is None:
            found, stop = self.programs(None)
            return self._end(found, stop)
        label, run = winner
        kept = Procedure(found_by=label, script="", args=[], output=run.answer, steps=run.steps)
        working = _working_code(run.steps)
        if working is None:
            return self._end(kept, "found")
        if working[0] == "python":  # its own code, the task's values lifted out: no model call
            lifted_code = self._parameterised(Program(code=working[1]), run.answer)
            if lifted_code.args:
                return self._end(
                    Procedure(
                        found_by=label,
                        script=lifted_code.code,
                        args=list(lifted_code.args),
                        output=run.answer,
                        steps=run.steps,
                    ),
                    "found",
                )
        # the executor found it; a program of the writer's that passes makes it a script
        found, _ = self.programs(working)
        if found is not None:
            kept = Procedure(**{**found, "found_by": label, "steps": run.steps})
        return self._end(kept, "found")

    def _budget(self) -> dict[str, Any]:
        c = self.ctx
        return {
            "tries": c.search_tries,
            "tokens": c.search_tokens,
            "seconds": c.search_seconds,
            "repairs": c.search_repairs,
        }

    def _end(
        self, procedure: Procedure | None, stopped: SearchStop
    ) -> tuple[Procedure | None, SearchReport]:
        report = self.spend.report(procedure["found_by"] if procedure else None, stopped)
        emit(
            "reflect_write",
            {
                "event": "search_found" if procedure else "search_exhausted",
                "found_by": report["found_by"],
                "stopped": stopped,
                "tries": report["tries"],
                "tokens": report["tokens"],
                "seconds": report["seconds"],
            },
        )
        return procedure, report

    # -------------------------------------------------------------- the executor

    def _executor(self, label: str, override: ExecuteOverride) -> _Run:
        """The attempt replayed with `override`: the real execute subgraph and the real judge."""
        with _scratch(self.ctx) as base:
            result: dict[str, Any] = self.replay().invoke(
                {
                    "task": self.task,
                    "task_id": self.case.task_id,
                    "ground_truth": self.case.ground_truth,
                    "rubric": self.case.rubric,
                    "selected_skill": self.state.get("selected_skill"),
                    "attachments": list(self.state.get("attachments") or []),
                    "tips": [],
                    "execute_override": override,
                },
                config=self.spend.config(),
                context=replace(self.ctx, workspace_dir=str(base)),
            )
        passed = oracle_passed(result.get("verdict") or {})
        self.spend.judged(label, passed)
        return _Run(
            answer=str(result.get("answer") or ""),
            passed=passed,
            steps=list(result.get("trajectory") or []),
        )

    # -------------------------------------------------------------- the writer's program

    def programs(self, working: tuple[str, str] | None) -> tuple[Procedure | None, SearchStop]:
        """The writer's program and its repairs, until one passes or the budget is spent."""
        prompt = PROGRAM_PROMPT.format(
            task=self.task,
            trajectory=attempt_text(list(self.state.get("trajectory") or [])),
            answer=self.state.get("answer") or "(none)",
            working=WORKING_CODE.format(language=working[0], code=working[1]) if working else "",
        )
        tried: set[tuple[str, tuple[str, ...]]] = set()
        for number in range(1, self.ctx.search_repairs + 2):
            stop = self.spend.exhausted()
            if stop is not None:
                return None, stop
            label = f"program-{number}"
            try:
                program = self._write(prompt, tried)
            except Exception as e:  # unusable output, or the endpoint: no program this time
                self.spend.outcomes.append(f"{label}: unusable ({type(e).__name__})")
                emit(
                    "reflect_write",
                    {"event": "search_try", "candidate": label, "error": type(e).__name__},
                )
                continue
            if _key(program) in tried:  # asked again at a temperature: it came back the same
                self.spend.judged(label, False, "repeated")
                continue
            tried.add(_key(program))
            problem = not_python(program.code)
            if problem is not None:  # not run, not judged: the writer is told what it gave
                self.spend.judged(label, False, "not python")
                self.spend.last_program = _tried(label, program, _Run("", False, output=problem))
                prompt = NOT_PYTHON_PROMPT.format(
                    task=self.task, script=program.code[:PROGRAM_KEPT], problem=problem
                )
                continue
            try:
                program, run, imported = self._program(program)
            except SandboxError as e:  # code cannot run here: no program can be tried
                self.spend.outcomes.append(f"{label}: not run ({e})"[:300])
                return None, "exhausted"
            self.spend.judged(label, run.passed, imported)
            self.spend.last_program = _tried(label, program, run)
            if run.passed:
                program = self._parameterised(program, run.answer)
                return (
                    Procedure(
                        found_by=label,
                        script=program.code,
                        args=list(program.args),
                        output=run.answer,
                        steps=[],
                    ),
                    "found",
                )
            prompt = REPAIR_PROGRAM_PROMPT.format(
                task=self.task,
                script=program.code.rstrip(),
                run_with=RUN_WITH.format(args=" ".join(_quoted(program.args)))
                if program.args
                else "",
                output=self._shown(run),
                verdict=_verdict_shown(run),
            )
        return None, "budget-repairs"

    def _write(self, prompt: str, tried: set[tuple[str, tuple[str, ...]]]) -> Program:
        """The writer's program for `prompt`, its code mended; a reply that repeats a program
        already tried is asked for once more at SAMPLE_TEMPERATURE (at temperature 0 it would
        come again)."""
        program = self._reply(self.writer(), prompt)
        if _key(program) not in tried:
            return program
        emit("reflect_write", {"event": "search_resample", "temperature": SAMPLE_TEMPERATURE})
        return self._reply(sampling(self.writer(), SAMPLE_TEMPERATURE), prompt)

    def _reply(self, model: BaseChatModel, prompt: str) -> Program:
        """The program in the writer's plain-text reply to `prompt`, mended. Plain text, not a
        JSON field: the stand-in squeezed code given as a JSON string onto one line
        (docs/decisions.md#value-lifting)."""
        reply = model.invoke([HumanMessage(content=prompt)], config=self.spend.config())
        code = reply_code(reply.text)
        if not code.strip():
            raise ValueError("the reply holds no code")
        return _mended(Program(code=code))

    def _program(self, program: Program) -> tuple[Program, _Run, str]:
        """Run the program, adding a standard module it used without importing it (up to
        IMPORTS_ADDED times, no model call), and ask the judge about its last printed line:
        the program as last run, its judged run, and a note of the imports added."""
        added: list[str] = []
        result = self._sandboxed(program)
        while len(added) < IMPORTS_ADDED:
            module = missing_module(result.stderr)
            if module is None or module in added:
                break
            added.append(module)
            program = program.model_copy(update={"code": with_import(program.code, module)})
            result = self._sandboxed(program)
        note = f"import {', '.join(added)} added" if added else ""
        return program, self._judged(result), note

    def _parameterised(self, program: Program, answer: str) -> Program:
        """A passing program that takes no arguments with the task's values lifted out of its
        code (nodes/writing/lifting.py), when the lifted program prints the same answer; else
        the program as it passed."""
        if program.args:
            return program
        lift = lifted(program.code, self.task)
        if lift is None:
            return program
        candidate = program.model_copy(update={"code": lift.code, "args": lift.args})
        if _last_line(self._sandboxed(candidate).stdout) != answer:
            return program
        self.spend.noted(f"{len(lift.args)} value{'s' if len(lift.args) > 1 else ''} lifted")
        return candidate

    def _sandboxed(self, program: Program) -> RunResult:
        """The program run in a workspace of its own: the task's files in it, the Context's
        sandbox limits."""
        with _scratch(self.ctx) as base:
            root = base / "program"
            root.mkdir()
            copy_attachments(list(self.state.get("attachments") or []), root)
            workspace = Workspace(root, isolation=self.ctx.sandbox_level)
            script = root / SCRIPT_NAME
            script.write_text(program.code, encoding="utf-8")
            workspace.adopt(script)
            return workspace.run(
                [workspace.python, "-I", str(script), *program.args],
                SandboxLimits(
                    wall_s=self.ctx.sandbox_wall_s,
                    memory_mb=self.ctx.sandbox_memory_mb,
                    disk_mb=self.ctx.sandbox_disk_mb,
                ),
            )

    def _judged(self, result: RunResult) -> _Run:
        """The judge's verdict on a run's last printed line."""
        answer = _last_line(result.stdout)
        judge: RunnableLambda[Mapping[str, Any], Verdict] = RunnableLambda(
            lambda s: self.judge(s, self.ctx)
        )
        verdict = judge.invoke(  # a runnable, so the judge's model calls are counted here
            {
                "task": self.task,
                "answer": answer,
                "ground_truth": self.case.ground_truth,
                "rubric": self.case.rubric,
                "execute_error": None if answer else "the program printed nothing",
            },
            config=self.spend.config(),
        )
        return _Run(
            answer=answer,
            passed=oracle_passed(verdict),
            output=result.to_text(),
            crashed=not result.ok,
        )

    @staticmethod
    def _shown(run: _Run) -> str:
        """The program's run as the writer sees it, its middle cut when it is long."""
        text = run.output
        if len(text) <= OUTPUT_TO_WRITER:
            return text
        half = OUTPUT_TO_WRITER // 2
        return f"{text[:half]}\n[... {len(text) - OUTPUT_TO_WRITER} characters cut ...]\n{text[-half:]}"


def oracle_passed(verdict: Mapping[str, Any]) -> bool:
    """Whether the search counts a verdict as a pass: against a gold, only the deterministic
    match; a judge model's "equivalent" is no test of code (the stand-in judge passed three
    wrong Caesar decryptions of three, docs/decisions.md#value-lifting). A rubric verdict, with
    no gold to match, counts as the judge gives it."""
    return bool(verdict.get("passed")) and verdict.get("method") != "llm-equivalence"


def _last_line(stdout: str) -> str:
    """A run's answer: the last line it printed that is not blank."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _tried(label: str, program: Program, run: _Run) -> ProgramTried:
    """What the report keeps of a program and its run: the output as the writer saw it."""
    return ProgramTried(
        label=label,
        script=program.code[:PROGRAM_KEPT],
        args=[str(a) for a in program.args],
        answer=run.answer,
        passed=run.passed,
        output=Search._shown(run),
    )


def _key(program: Program) -> tuple[str, tuple[str, ...]]:
    return program.code.strip(), tuple(str(a) for a in program.args)


def _mended(program: Program) -> Program:
    code = mended_code(program.code)
    return program if code == program.code else program.model_copy(update={"code": code})


FENCE = re.compile(r"^\s*```")
OPENING_FENCE = re.compile(r"^\s*```\s*([\w+-]*)\s*$")
CLOSING_FENCE = re.compile(r"^\s*```\s*$")
PYTHON_LABELS = ("", "python", "python3", "py")


def reply_code(text: str) -> str:
    """The code of a reply: its first Python (or unlabelled) code block, to its closing fence or
    the reply's end (a cut-off reply); the whole reply when it has no such block."""
    lines = text.splitlines(keepends=True)
    at = 0
    while at < len(lines):
        opening = OPENING_FENCE.match(lines[at])
        if opening is None:
            at += 1
            continue
        end = next(
            (i for i in range(at + 1, len(lines)) if CLOSING_FENCE.match(lines[i])), len(lines)
        )
        if opening.group(1).lower() in PYTHON_LABELS:
            return "".join(lines[at + 1 : end])
        at = end + 1
    return text


def mended_code(code: str) -> str:
    """`code` without what a writer put around it: an opening code fence, and everything from
    the closing fence on; then, if it still does not compile, without its last line or two
    (a reply cut off mid-call). Unchanged when it compiles, or when that does not make it."""
    if not_python(code) is None:
        return code
    lines = code.splitlines()
    if lines and FENCE.match(lines[0]):
        lines = lines[1:]
    fence = next((i for i, line in enumerate(lines) if FENCE.match(line)), None)
    if fence is not None:
        lines = lines[:fence]
    for cut in range(TAIL_LINES_CUT + 1):
        candidate = "\n".join(lines[: len(lines) - cut]).rstrip() + "\n"
        if candidate.strip() and not_python(candidate) is None:
            return candidate
    return code


MISSING_NAME = re.compile(r"NameError: name '([A-Za-z_]\w*)' is not defined")


def missing_module(output: str) -> str | None:
    """The standard-library module a run's NameError names, if it names one."""
    found = MISSING_NAME.search(output)
    if found and found.group(1) in sys.stdlib_module_names and not found.group(1).startswith("_"):
        return found.group(1)
    return None


def with_import(code: str, module: str) -> str:
    """`code` with `import module` added after its `from __future__` imports (which must come
    first), else at the top."""
    lines = code.splitlines(keepends=True)
    at = max(
        (i + 1 for i, line in enumerate(lines) if line.startswith("from __future__")), default=0
    )
    return "".join([*lines[:at], f"import {module}\n", *lines[at:]])


def sampling(model: BaseChatModel, temperature: float) -> BaseChatModel:
    """A copy of `model` that samples at `temperature` (the model itself when it has no such
    setting)."""
    if "temperature" not in type(model).model_fields:
        return model
    return model.model_copy(update={"temperature": temperature})


def not_python(script: str) -> str | None:
    """Why `script` is not a Python program (Python's own one-line complaint), or None."""
    if not script.strip():
        return "the script is empty"
    try:
        compile(script, SCRIPT_NAME, "exec")
    except SyntaxError as e:
        return f"{type(e).__name__}: {e.msg} (line {e.lineno})"
    except ValueError as e:  # NUL bytes
        return str(e)
    return None


def _verdict_shown(run: _Run) -> str:
    """The bare verdict on a program's run, as the writer reads it: never the judge's critique."""
    if run.crashed and not run.answer:
        return CRASHED
    if not run.answer:
        return PRINTED_NOTHING
    return WRONG_ANSWER.format(answer=run.answer)


COMPUTING_ARGS = {"python": ("python", "code"), "shell": ("bash", "command")}
"""Each computing tool's language and the argument holding its code."""


def _working_code(steps: Sequence[ToolStep]) -> tuple[str, str] | None:
    """The language and code of a passing run's last clean computing call (python code, or a
    shell command the script is then to do in Python), if it made one."""
    for step in reversed(steps):
        if step["tool"] not in COMPUTING_ARGS or step["error"]:
            continue
        language, key = COMPUTING_ARGS[step["tool"]]
        code = (step.get("args") or {}).get(key)
        if isinstance(code, str) and code.strip():
            return language, code.strip()
    return None


def _quoted(args: Sequence[str]) -> list[str]:
    return [shlex.quote(str(a)) for a in args]


@contextmanager
def _scratch(ctx: Context) -> Iterator[Path]:
    """A folder of the search's own, deleted afterwards; under ctx.workspace_dir when set, so
    whoever cleans that up also removes what a killed search left behind."""
    parent = reachable_dir(ctx.workspace_dir) if ctx.workspace_dir else None
    with tempfile.TemporaryDirectory(
        prefix="memento-search-", dir=parent, ignore_cleanup_errors=True
    ) as base:
        Path(base).chmod(
            0o711
        )  # traversable by the sandbox's uid, as a workspace's parents must be
        yield Path(base)
