"""The learning-loop runner: training rounds over a suite's train split, evaluations of its test split.

One run dir holds one run and everything it needs, so ablations never share memory:

    RUN_DIR/config.json    the suite spec and mode it was made with (a rerun must match)
    RUN_DIR/skills/        its own library, seeded from the packaged seed skills
    RUN_DIR/index/         its own Chroma + BM25 index
    RUN_DIR/runs.jsonl     the graph's run log (one record per judged attempt)
    RUN_DIR/results.jsonl  one line per task result (see `_record`)
    RUN_DIR/rounds.jsonl   the library after each training round (round 0: as seeded): its size,
                           skills per lifecycle state, how many retired, each learned skill's lift
    RUN_DIR/curation.jsonl one line per curation step at the end of a read-write-optimize round
    RUN_DIR/leaks.json     the last leak check
    RUN_DIR/checkpoints.sqlite   one LangGraph thread per task run, for resuming a killed task

Honest by construction: a test task gets one attempt, greedy routing and no writes (its gold
drives only the score), unless online learning is asked for; `correct` comes from the suite's
own scorer, not from the graph's verdict; every result is appended and fsynced as it completes,
and a rerun skips every (phase, split, round, task) already recorded, so an interrupted run
resumes without running a task twice or losing one. A task interrupted mid-way resumes from its
last checkpoint on its own thread, and its library changes, utility counts, router observations
and run-log records are each made once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from filelock import FileLock, Timeout
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.checkpoint.sqlite import SqliteSaver

from memento_skills.evals.leaks import Leak, find_leaks
from memento_skills.evals.run_records import JsonlLog, result_key
from memento_skills.evals.stats import wilson
from memento_skills.evals.suites import Suite, Task
from memento_skills.graph.context import Context, WritePolicy
from memento_skills.graph.models.settings import base_url_env, env_setting
from memento_skills.graph.models.usage import UsageTracker
from memento_skills.graph.state import model_failure_kind
from memento_skills.nodes.execution.sandbox import reachable_dir

if TYPE_CHECKING:
    from memento_skills.graph.resources import Resources
    from memento_skills.stores.cases import Case

Mode = Literal["read-only", "read-write", "read-write-optimize"]
MODES: tuple[str, ...] = ("read-only", "read-write", "read-write-optimize")
WRITE_POLICY: dict[str, WritePolicy] = {
    "read-only": "off",
    "read-write": "create",
    "read-write-optimize": "full",
}
Phase = Literal["train", "eval", "online"]


class RunDirError(ValueError):
    """The run dir cannot be used as asked (it holds another suite or mode)."""


class EndpointError(RuntimeError):
    """The model endpoint failed (unreachable, refused, rate-limited, unknown model): the task's
    outcome says nothing about the agent, so it is not recorded and the run stops; rerunning
    the same command resumes once the endpoint is back."""


@dataclass
class RunSettings:
    """How tasks are run; defaults fit an offline development run."""

    concurrency: int = 1
    """Tasks run at once, on threads sharing one Resources (the library is lock-safe)."""
    max_attempts: int = 2
    """Attempts per training task (test tasks always get one)."""
    train_temperature: float = 0.1
    """Router softmax temperature while training (exploration); tests are greedy."""
    web_search: bool | None = None
    """Offer web search; None: the suite decides (GAIA yes, others no)."""
    base_url: str | None = None
    model: str | None = None
    """One model name for the executor, judge and writer (else MEMENTO_*_MODEL / defaults)."""
    max_steps: int | None = None
    search_tries: int | None = None
    """The learning-time search's budget per training task (None: the Context's default; 0
    turns it off); tokens and seconds likewise (docs/decisions.md#learning-search)."""
    search_tokens: int | None = None
    search_seconds: float | None = None
    keep_workspaces: bool = False
    library_from: Path | None = None
    """Start a new run's library as a copy of this run dir's (transfer to another suite)."""


CHECKPOINTS_FILE = "checkpoints.sqlite"
CURATION_FILE = "curation.jsonl"


# --- outcomes --------------------------------------------------------------------------------


@dataclass
class PhaseSummary:
    phase: str
    split: str
    round: int
    total: int
    correct: int
    ran: int
    """Tasks run by this call (the rest were already recorded)."""

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def line(self) -> str:
        low, high = wilson(self.correct, self.total)
        return (
            f"round {self.round} {self.phase} ({self.split}): {self.correct}/{self.total} correct "
            f"= {self.accuracy:.2f} [95% CI {low:.2f}-{high:.2f}]"
            + (f", {self.total - self.ran} resumed" if self.ran < self.total else "")
        )


@dataclass
class RunOutcome:
    phases: list[PhaseSummary] = field(default_factory=list)
    leaks: list[Leak] = field(default_factory=list)


# --- the runner ------------------------------------------------------------------------------

OnResult = Callable[[dict[str, Any]], None]


def _one_process(method: Callable[..., RunOutcome]) -> Callable[..., RunOutcome]:
    """Run `method` holding the run dir's lock (see `LearningRun._exclusive`)."""

    @functools.wraps(method)
    def holding_the_run_dir(self: LearningRun, *args: Any, **kwargs: Any) -> RunOutcome:
        with self._exclusive():
            try:
                return method(self, *args, **kwargs)
            finally:
                with contextlib.suppress(OSError):  # empty unless workspaces are kept
                    self.workspaces.rmdir()

    return holding_the_run_dir


class LearningRun:
    """A run dir bound to a suite: `learn()` trains over rounds, `evaluate()` scores a split.

    Pass one `Resources` for every task (a scripted model in tests; by default one is built
    from the environment: MEMENTO_BASE_URL / OPENAI_API_KEY, or the local model).
    """

    def __init__(
        self,
        suite: Suite,
        run_dir: Path | str,
        *,
        settings: RunSettings | None = None,
        resources: Resources | None = None,
        progress: bool = False,
        on_result: OnResult | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.suite = suite
        self.dir = Path(run_dir).expanduser().resolve()
        self.settings = settings or RunSettings()
        if self.settings.concurrency < 1:
            raise ValueError("concurrency must be 1 or more")
        self._resources = resources
        self.progress = progress
        self.on_result = on_result
        self.say = log or (lambda _line: None)
        self.skills_dir = self.dir / "skills"
        self.workspaces = workspaces_for(self.dir)
        """Outside the run dir, which holds the golds (results, cases) the sandbox must not see."""
        self.config_file = self.dir / "config.json"
        self.results: JsonlLog | None = None
        self.checkpoints: SqliteSaver | None = None
        self.rounds: JsonlLog | None = None

    @property
    def resources(self) -> Resources:
        """Built on first use: reading results or checking leaks needs no model."""
        if self._resources is None:
            from memento_skills.graph.resources import Resources

            self._resources = Resources()
        return self._resources

    # -- set-up --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One process per run dir: two would resume the same unfinished tasks, record them
        twice and write into one library at once (seen when a stopping run, still finishing
        its in-flight task, overlapped its own restart)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.dir / "run.lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunDirError(
                f"another memento process is running in {self.dir}: wait for it to finish, "
                "stop it (Ctrl-C or kill; a second one stops it at once), or use another --run-dir"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _open(self, mode: str | None, train_per_round: int | None = None) -> dict[str, Any]:
        """Create or reopen the run dir; refuse a dir made for another suite or mode."""
        from memento_skills.stores.settings import open_library

        if mode is not None and mode not in MODES:
            raise RunDirError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        spec = json.loads(json.dumps(self.suite.spec()))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)  # results and cases hold gold answers: the sandbox's uid stays out
        config: dict[str, Any] = {}
        if self.config_file.exists():
            config = json.loads(self.config_file.read_text(encoding="utf-8"))
            if config.get("suite") != spec:
                raise RunDirError(
                    f"{self.dir} holds a run of {json.dumps(config.get('suite'))}, not of "
                    f"{json.dumps(spec)}; use a new --run-dir for another suite or split"
                )
            if mode is not None and config.get("mode") not in (None, mode):
                raise RunDirError(
                    f"{self.dir} holds a {config['mode']} run; ablations must not share a "
                    f"library: use a new --run-dir for {mode}"
                )
        if not config or (mode is not None and config.get("mode") is None):
            config = {
                **config,
                "suite": spec,
                "mode": mode,
                "train_per_round": train_per_round,
                "created": config.get("created") or _now(),
                "models": {
                    "base_url": self.settings.base_url or base_url_env(),
                    "model": self.settings.model or env_setting("MEMENTO_MODEL"),
                },
            }
            self._write_config(config)
        source = self.settings.library_from
        if source is not None:
            self._copy_library(Path(source).expanduser().resolve(), config)
        open_library(self.skills_dir)  # seeds a new run's library
        self.results = JsonlLog(self.dir / "results.jsonl")
        self.rounds = JsonlLog(self.dir / "rounds.jsonl")
        if self.checkpoints is None:
            conn = sqlite3.connect(str(self.dir / CHECKPOINTS_FILE), check_same_thread=False)
            self.checkpoints = SqliteSaver(conn)
        return config

    def _copy_library(self, source: Path, config: dict[str, Any]) -> None:
        """Copy a finished run's library (skills, history, cases, router weights) into this new
        run before anything else touches it, and record where it came from."""
        if config.get("library_from") not in (None, str(source)):
            raise RunDirError(
                f"{self.dir} started from the library of {config['library_from']}, not "
                f"{source}; use a new --run-dir"
            )
        if config.get("library_from") == str(source):
            return  # a resumed transfer run: the copy is already its own library
        if not (source / "skills").is_dir():
            raise RunDirError(f"{source} is not a run dir with a library (no skills/ folder)")
        if self.skills_dir.exists():
            raise RunDirError(
                f"{self.dir} already has a library; --library-from needs a new --run-dir"
            )
        shutil.copytree(source / "skills", self.skills_dir, symlinks=True)
        config["library_from"] = str(source)
        self._write_config(config)

    def _write_config(self, config: Mapping[str, Any]) -> None:
        """Replace config.json atomically: a kill mid-write leaves the previous one."""
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.config_file)

    def _context(
        self, *, write_policy: WritePolicy, attempts: int, temperature: float, workspace: Path
    ) -> Context:
        s = self.settings
        fields: dict[str, Any] = {
            "skills_dir": str(self.skills_dir),
            "index_dir": str(self.dir / "index"),
            "run_log": str(self.dir / "runs.jsonl"),
            "workspace_dir": str(workspace),
            "write_policy": write_policy,
            "max_attempts": attempts,
            "router_temperature": temperature,
            "web_search": self.suite.web_search if s.web_search is None else s.web_search,
        }
        if s.max_steps:
            fields["max_steps"] = s.max_steps
        for name in ("search_tries", "search_tokens", "search_seconds"):
            if getattr(s, name) is not None:
                fields[name] = getattr(s, name)
        if s.base_url:
            fields["base_url"] = s.base_url
        if s.model:
            fields.update({f"{r}_model": s.model for r in ("executor", "judge", "writer")})
        return Context(**fields)

    # -- library snapshots ---------------------------------------------------------------------

    def _snapshot(self, round_: int) -> None:
        from memento_skills.stores.library import SkillLibrary
        from memento_skills.stores.skill import LIFECYCLES

        assert self.rounds is not None
        if any(r["round"] == round_ for r in self.rounds.records):
            return
        skills = SkillLibrary(self.skills_dir).skills()
        states = {state: 0 for state in LIFECYCLES}
        for s in skills:
            states[s.lifecycle] += 1
        deprecated = sorted(s.name for s in skills if s.lifecycle == "deprecated")
        before = [r for r in self.rounds.records if r["round"] == round_ - 1]
        # retired in the round: by its curation or by the write phase (a failing draft)
        retired = set(deprecated) - set(before[-1].get("deprecated") or []) if before else set()
        log = [r for r in self._curation_log() if r.get("round") == round_]
        done = next((r for r in log if r.get("event") == "done"), None)
        self.rounds.append(
            {
                "round": round_,
                "skills": len(skills),
                "learned": sum(1 for s in skills if s.provenance == "learned"),
                "versions": sum(s.version for s in skills),
                "names": sorted(s.name for s in skills),
                "lifecycle": states,
                "deprecated": deprecated,
                "retired": len(retired),
                "curation_steps": sum(1 for r in log if r.get("event") == "step" and r["applied"]),
                "curation_seconds": done["seconds"] if done else None,
                "curation_tokens": done.get("tokens") if done else None,
                "lifts": {
                    s.name: _lift_record(s)
                    for s in sorted(skills, key=lambda s: s.name)
                    if s.provenance == "learned"
                },
                "at": _now(),
            }
        )

    # -- curation ------------------------------------------------------------------------------

    def _curation_log(self) -> list[dict[str, Any]]:
        path = self.dir / CURATION_FILE
        return JsonlLog(path).records if path.exists() else []

    def _curate(self, round_: int, tasks: Sequence[Task]) -> None:
        """At the end of a read-write-optimize round: measure each learned skill's lift (on its
        cases and the round's tasks that route to it), then curate the library with no one to
        ask (a step that needs approval is logged, not made). Done once per round: the round's
        snapshot, written after it, marks it done (docs/decisions.md#curation)."""
        from memento_skills.graph.builder import build_gate_replay
        from memento_skills.nodes.writing.curator import CurationGate, curate, measure_lifts
        from memento_skills.nodes.writing.lift import LiftNotMeasured, measure_lift
        from memento_skills.stores.lift_cache import LiftCache

        assert self.rounds is not None
        if any(r["round"] == round_ for r in self.rounds.records):
            return
        started = time.monotonic()
        workspace = self.workspaces / f"curate-r{round_}"
        reachable_dir(workspace)
        ctx = self._context(write_policy="full", attempts=1, temperature=0.0, workspace=workspace)
        res = self.resources
        library = res.library(ctx)
        replay = build_gate_replay(res)
        gate = CurationGate(replay, res.cases(ctx), ctx)
        index, _ = res.synced_index(ctx)
        routed = _routed_cases(index, tasks, ctx)
        cache = LiftCache.of_library(library.root)
        tracker = UsageTracker(prices={})

        def measured_and_curated(_: Any) -> tuple[dict[str, Any], list[Any]]:
            # one runnable, so every replay's and the writer's calls are counted by `tracker`
            measured = measure_lifts(
                library,
                lambda name, extra: measure_lift(replay, gate.cases, ctx, name, extra, cache),
                lambda skill: routed.get(skill.name, []),
            )
            index, _ = res.synced_index(ctx)
            return measured, curate(library, index, gate, writer=res.model("writer", ctx))

        try:
            measured, results = RunnableLambda(measured_and_curated).invoke(
                None, config={"callbacks": [tracker]}
            )
        except LiftNotMeasured as e:  # the round's curation is not done: a rerun does it
            raise EndpointError(
                f"the model endpoint failed while measuring lift after round {round_}: {e}; "
                "rerun the same command to resume"
            ) from None
        log = JsonlLog(self.dir / CURATION_FILE)
        for result in results:
            log.append({"round": round_, "event": "step", **result.to_dict(), "at": _now()})
            self.say(
                f"round {round_} curation: {result.step.line()}: "
                f"{'done' if result.applied else result.detail}"
            )
        log.append(
            {
                "round": round_,
                "event": "done",
                "measured": {name: lift.to_text() for name, lift in measured.items()},
                "steps": len(results),
                "applied": sum(r.applied for r in results),
                "seconds": round(time.monotonic() - started, 3),
                "tokens": int(tracker.summary()["total"]["total_tokens"]),
                "at": _now(),
            }
        )
        if not self.settings.keep_workspaces:
            shutil.rmtree(workspace, ignore_errors=True)

    def completed_rounds(self) -> int:
        assert self.rounds is not None
        return max((int(r["round"]) for r in self.rounds.records), default=0)

    # -- one task ------------------------------------------------------------------------------

    def _run_one(
        self,
        task: Task,
        *,
        phase: str,
        split: str,
        round_: int,
        write_policy: WritePolicy,
        attempts: int,
        temperature: float,
    ) -> dict[str, Any]:
        from memento_skills.runner import run_task
        from memento_skills.stores.attachments import ATTACHMENTS_DIR

        name = f"{phase}-{split}-r{round_}-{_safe(task.id)}"
        workspace = self.workspaces / name
        # Each task runs on a thread of its own in RUN_DIR/checkpoints.sqlite: a task killed
        # mid-way resumes from its last checkpoint, its workspace kept, and the keys of its
        # write phase make each count and change once (rerun from the start, it counted twice).
        thread: RunnableConfig = {"configurable": {"thread_id": name}}
        resuming = self.checkpoints is not None and self.checkpoints.get_tuple(thread) is not None
        if workspace.exists() and not resuming:
            shutil.rmtree(workspace, ignore_errors=True)
        reachable_dir(workspace)
        inbox = workspace / ATTACHMENTS_DIR
        if task.attachments and not inbox.exists():
            inbox.mkdir(parents=True)
            for attachment in task.attachments:
                shutil.copy2(attachment, inbox / attachment.name)
        ctx = self._context(
            write_policy=write_policy,
            attempts=attempts,
            temperature=temperature,
            workspace=workspace,
        )
        result = run_task(
            task.prompt(),
            context=ctx,
            ground_truth=task.answer,
            task_id=task.id,
            resources=self.resources,
            checkpointer=self.checkpoints,
            thread_id=name,
        )
        if result.answer is None and result.error_kind == "endpoint":
            raise EndpointError(_endpoint_message(task.id, result.error or "endpoint failure"))
        judge = self.resources.model("judge", ctx) if self.suite.needs_judge else None
        score = self.suite.score(task, result.answer, judge=judge)
        if model_failure_kind(score.method) == "endpoint":  # the scorer names the error it met
            raise EndpointError(_endpoint_message(task.id, f"the judge failed ({score.method})"))
        if not self.settings.keep_workspaces:
            shutil.rmtree(workspace, ignore_errors=True)
        return _record(task, result, score, phase, split, round_, write_policy)

    # -- one phase -----------------------------------------------------------------------------

    def _phase(
        self,
        phase: Phase,
        split: str,
        round_: int,
        tasks: Sequence[Task],
        *,
        write_policy: WritePolicy,
        attempts: int,
        temperature: float,
    ) -> PhaseSummary:
        assert self.results is not None
        results = self.results
        ids = {t.id for t in tasks}
        done = {
            r["task_id"]: r
            for r in results.records
            if result_key(r)[:3] == (phase, split, round_) and r["task_id"] in ids
        }
        todo = [t for t in tasks if t.id not in done]
        correct = sum(1 for r in done.values() if r["correct"])
        finished = len(done)
        bar = _Bar(
            f"round {round_} {phase} ({split})", len(tasks), finished, correct, self.progress
        )

        def work(task: Task) -> dict[str, Any]:
            record = self._run_one(
                task,
                phase=phase,
                split=split,
                round_=round_,
                write_policy=write_policy,
                attempts=attempts,
                temperature=temperature,
            )
            results.append(record)  # in the worker: a result finished is never lost
            return record

        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency)
        pending: set[Future[dict[str, Any]]] = set()
        try:
            queue = list(todo)
            # Submit only what the workers can take now, so an interruption leaves the rest
            # unstarted instead of queued behind a running task.
            while queue or pending:
                while queue and len(pending) < self.settings.concurrency:
                    pending.add(pool.submit(work, queue.pop(0)))
                finished_now, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished_now:
                    record = future.result()
                    finished += 1
                    correct += int(record["correct"])
                    bar.update(finished, correct)
                    if self.on_result is not None:
                        self.on_result(record)
        except BaseException:
            running = sum(1 for f in pending if not f.done())
            if running:
                self.say(
                    f"stopping: waiting for {running} running task(s) to finish so their "
                    "results are kept (interrupt again to stop at once)"
                )
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        summary = PhaseSummary(phase, split, round_, len(tasks), correct, len(todo))
        self.say(summary.line())
        return summary

    # -- public --------------------------------------------------------------------------------

    @_one_process
    def learn(
        self,
        rounds: int,
        *,
        mode: str = "read-write-optimize",
        train_limit: int | None = None,
        test_limit: int | None = None,
        eval_test: bool = True,
        train_per_round: int | None = None,
    ) -> RunOutcome:
        """Train for `rounds` rounds over the train split; evaluate the test split before the
        first round (the seed library's baseline) and after each round, when `eval_test`.

        By default every round revisits the whole train split (epochs, as the paper does on
        GAIA). With `train_per_round` k, round r trains on its own block of k tasks, the
        train split's tasks (r-1)k .. rk-1, so no round sees a task an earlier round learned
        from: what a round adds is then transfer to new items, not recall of old ones.
        """
        if rounds < 1:
            raise ValueError("rounds must be 1 or more")
        if train_per_round is not None and train_per_round < 1:
            raise ValueError("train_per_round must be 1 or more")
        planned = self._open(mode, train_per_round).get("train_per_round")
        if planned != train_per_round:
            raise RunDirError(
                f"{self.dir} trains {_plan(planned)}, not {_plan(train_per_round)}; "
                "rerun with the same --train-per-round or use a new --run-dir"
            )
        train = _limit(self.suite.tasks("train"), train_limit)
        test = _limit(self.suite.tasks("test"), test_limit) if eval_test else []
        if not train:
            raise RunDirError(f"the train split of {self.suite.name} is empty: nothing to learn")
        if train_per_round is not None and len(train) < rounds * train_per_round:
            raise RunDirError(
                f"{rounds} rounds of {train_per_round} disjoint training tasks need "
                f"{rounds * train_per_round}, but the train split holds {len(train)}: ask for "
                f"--train {rounds * train_per_round} or fewer rounds"
            )
        outcome = RunOutcome()
        self._snapshot(0)
        if test:
            outcome.phases.append(self._eval_phase("eval", "test", 0, test, "off"))
        for round_ in range(1, rounds + 1):
            block = _round_block(train, round_, train_per_round)
            self.resources.training_cases = _training_cases(block)
            try:
                outcome.phases.append(
                    self._phase(
                        "train",
                        "train",
                        round_,
                        block,
                        write_policy=WRITE_POLICY[mode],
                        attempts=self.settings.max_attempts,
                        temperature=self.settings.train_temperature,
                    )
                )
            finally:
                self.resources.training_cases = None
            if mode == "read-write-optimize":
                self._curate(round_, block)
            self._snapshot(round_)
            if test:
                outcome.phases.append(self._eval_phase("eval", "test", round_, test, "off"))
        outcome.leaks = self.check_leaks()
        return outcome

    @_one_process
    def evaluate(
        self,
        split: str = "test",
        *,
        writes: bool = False,
        mode: str = "read-write-optimize",
        limit: int | None = None,
    ) -> RunOutcome:
        """Score a split with the run dir's library as it is now (after its last training
        round). With `writes` (online learning) the library keeps learning from these tasks,
        each still answered in one attempt before its gold is used."""
        self._open(mode if writes else None)
        tasks = _limit(self.suite.tasks(split), limit)
        round_ = self.completed_rounds()
        phase: Phase = "online" if writes else "eval"
        policy: WritePolicy = WRITE_POLICY[mode] if writes else "off"
        outcome = RunOutcome(phases=[self._eval_phase(phase, split, round_, tasks, policy)])
        outcome.leaks = self.check_leaks()
        return outcome

    def _eval_phase(
        self, phase: Phase, split: str, round_: int, tasks: Sequence[Task], policy: WritePolicy
    ) -> PhaseSummary:
        return self._phase(
            phase, split, round_, tasks, write_policy=policy, attempts=1, temperature=0.0
        )

    def check_leaks(self) -> list[Leak]:
        """Scan the run's library for the suite's golds; the finding is kept in leaks.json."""
        from memento_skills.stores.settings import seed_skills_dir

        leaks = find_leaks(self.skills_dir, self.suite.all_tasks(), baseline_root=seed_skills_dir())
        tmp = self.dir / "leaks.json.tmp"
        tmp.write_text(
            json.dumps({"checked": _now(), "leaks": [leak.to_dict() for leak in leaks]}, indent=2)
            + "\n",
            encoding="utf-8",
        )
        tmp.replace(self.dir / "leaks.json")
        return leaks


# --- helpers ---------------------------------------------------------------------------------


def _record(
    task: Task,
    result: Any,
    score: Any,
    phase: str,
    split: str,
    round_: int,
    write_policy: str,
) -> dict[str, Any]:
    """One results.jsonl line. No gold: the file is meant to be shared with the report."""
    total = (result.usage or {}).get("total") or {}
    search = getattr(result, "search", None) or {}
    scorer_total = ((score.usage or {}).get("total") or {}) if score.usage else {}
    changes = [
        {
            "action": w.get("action"),
            "skill": w.get("skill"),
            "version": w.get("version"),
            "accepted": bool(w.get("accepted")),
            "reason": str(w.get("reason") or "")[:200],
        }
        for w in result.writes
        if w.get("action") not in ("utility", "none")
    ]
    return {
        "phase": phase,
        "split": split,
        "round": round_,
        "task_id": task.id,
        "group": task.group,
        "answer": result.answer,
        "correct": bool(score.correct),
        "score": score.score,
        "score_method": score.method,
        "extracted": score.extracted,
        "verdict": result.verdict,
        "skill": result.skill,
        "attempts": result.attempts,
        "write_policy": write_policy,
        "library_changes": changes,
        "accepted_changes": sum(1 for c in changes if c["accepted"]),
        "input_tokens": int(total.get("input_tokens") or 0),
        "output_tokens": int(total.get("output_tokens") or 0),
        "tokens": int(total.get("total_tokens") or 0),
        "cost_usd": total.get("cost_usd"),
        "scorer_tokens": int(scorer_total.get("total_tokens") or 0),
        "scorer_cost_usd": scorer_total.get("cost_usd"),
        "usage": result.usage,
        "seconds": round(result.seconds, 3),
        "error": result.error,
        "error_kind": result.error_kind,
        # the learning-time search (0 and None when it did not run: docs/decisions.md#learning-search)
        "search_tries": int(search.get("tries") or 0),
        "search_tokens": int(search.get("tokens") or 0),
        "search_seconds": float(search.get("seconds") or 0.0),
        "search_found_by": search.get("found_by"),
        "search_stopped": search.get("stopped"),
        "search_outcomes": list(search.get("outcomes") or []),
        "search_last_program": search.get("last_program"),
        "finished": _now(),
    }


def _lift_record(skill: Any) -> dict[str, Any]:
    """A learned skill's lifecycle and lift, as the round snapshot keeps them."""
    lift = skill.lift
    return {
        "lifecycle": skill.lifecycle,
        "lift": None if lift is None else lift.value,
        "with": None if lift is None else [lift.with_passed, lift.with_total],
        "without": None if lift is None else [lift.without_passed, lift.without_total],
    }


def _routed_cases(index: Any, tasks: Sequence[Task], ctx: Context) -> dict[str, list[Any]]:
    """The round's tasks as cases of each skill they would be routed to, as the gate picks its
    siblings (`pick_siblings`: dense similarity to the skill's document at or above
    ctx.min_route_score, best first, at most ctx.gate_cases; no attachments)."""
    from memento_skills.nodes.gate import pick_siblings

    cases = _training_cases(tasks)()
    if not cases or not index.count():
        return {}
    k = min(index.count(), 50)
    sims = {c.task: dict(index.dense_search(c.task, k)) for c in cases}
    names = sorted({name for hits in sims.values() for name in hits})

    def fit(name: str) -> Callable[[str], float]:
        return lambda task: sims[task].get(name, -1.0)

    routed = {
        name: pick_siblings(cases, fit(name), "", ctx.min_route_score, ctx.gate_cases)
        for name in names
    }
    return {name: picked for name, picked in routed.items() if picked}


def _endpoint_message(task_id: str, detail: str) -> str:
    return (
        f"the model endpoint failed on task {task_id}: {detail[:300]}. That task was not "
        "recorded; fix the endpoint (MEMENTO_BASE_URL / OPENAI_API_KEY / --base-url / --model) "
        "and rerun the same command to resume"
    )


def _limit(tasks: Sequence[Task], limit: int | None) -> list[Task]:
    return list(tasks if limit is None else tasks[:limit])


def _plan(per_round: int | None) -> str:
    if per_round is None:
        return "every round on the whole train split"
    return f"each round on its own {per_round} tasks"


def _round_block(train: Sequence[Task], round_: int, per_round: int | None) -> list[Task]:
    """The tasks round `round_` (from 1) trains on: all of them, or its own disjoint block."""
    if per_round is None:
        return list(train)
    return list(train[(round_ - 1) * per_round : round_ * per_round])


def _training_cases(block: Sequence[Task]) -> Callable[[], list[Case]]:
    """The round's training tasks as the gate's sibling cases (docs/decisions.md#script-skills):
    those without attachments, which a sibling replay does not carry."""
    from memento_skills.stores.cases import Case

    cases = [
        Case(task=t.prompt(), ground_truth=t.answer, task_id=t.id)
        for t in block
        if not t.attachments
    ]
    return lambda: list(cases)


def workspaces_for(run_dir: Path) -> Path:
    """Where a run's task workspaces go: outside the run dir, so no path from a workspace
    leads to the run's results or regression cases (their golds)."""
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "memento-eval-workspaces" / f"{run_dir.name}-{digest}"


def _safe(task_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)[:80]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Bar:
    """A rich progress bar with the accuracy so far; silent when progress is off."""

    def __init__(self, title: str, total: int, done: int, correct: int, enabled: bool):
        self.progress: Any = None
        if not enabled or total == 0:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("acc {task.fields[acc]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.progress.start()
        self.task = self.progress.add_task(
            title, total=total, completed=done, acc=self._acc(done, correct)
        )

    @staticmethod
    def _acc(done: int, correct: int) -> str:
        return f"{correct}/{done} = {correct / done:.2f}" if done else "-"

    def update(self, done: int, correct: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, acc=self._acc(done, correct))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
