"""A crash mid-task loses no learning and doubles none: real SIGKILLs of a child process that
runs the graph on a SQLite checkpointer, then a second process that resumes the thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.router_weights import RouterWeightsStore, weights_dir
from memento_skills.stores.run_log import RunLog

from support.scripted_endpoint import forced_tool, scripted_endpoint

TESTS = Path(__file__).resolve().parents[1]
TASK = "Solve this multiplication: 123 * 456"
GOLD = "56088"
THREAD = "durable-thread"

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path

    from langgraph.checkpoint.sqlite import SqliteSaver

    from support import scripted_learner
    from memento_skills.graph.builder import build_graph
    from memento_skills.graph.context import Context
    from memento_skills.nodes.routing.service import LearnedRouter
    from memento_skills.runner import run_task
    from memento_skills.stores import run_log

    home, mode, kill = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    # fault injection, inside this child only: SIGKILL at the chosen point
    if kill.startswith("python-result-"):  # the n-th python tool result the executor reads
        nth, seen = int(kill.rsplit("-", 1)[1]), [0]
        policy = scripted_learner.executor_policy

        def killing_policy(messages, delay=0.0):
            last = messages[-1]
            if getattr(last, "name", None) == "python":
                seen[0] += 1
                if seen[0] == nth:
                    die()
            return policy(messages, delay)

        scripted_learner.executor_policy = killing_policy
    elif kill == "before-run-log":  # after the first commit (write + gate), before its log line
        def killing_append(self, record, *, key=""):
            die()

        run_log.RunLog.append = killing_append
    elif kill == "after-input-checkpoint":  # the thread holds its input, not yet applied
        put = SqliteSaver.put

        def killing_put(self, *args, **kwargs):
            saved = put(self, *args, **kwargs)
            die()
            return saved

        SqliteSaver.put = killing_put

    resources = scripted_learner.scripted_resources()
    resources.router = LearnedRouter()
    ctx = Context(
        skills_dir=str(home / "skills"),
        index_dir=str(home / "index"),
        workspace_dir=str(home / "ws"),
        run_log=str(home / "runs.jsonl"),
        max_attempts=2,
        web_search=False,
        min_route_score=0.2,
    )
    with SqliteSaver.from_conn_string(str(home / "checkpoints.sqlite")) as saver:
        graph = build_graph(checkpointer=saver, resources=resources)
        config = {"configurable": {"thread_id": sys.argv[4]}}
        if mode == "again":  # the learning runner's way: the same task again on its thread
            result = run_task(
                sys.argv[5], context=ctx, ground_truth=sys.argv[6], task_id="t1",
                resources=resources, checkpointer=saver, thread_id=sys.argv[4],
            )
            print(json.dumps({"verdict": result.verdict, "writes": result.writes}))
            sys.exit(0)
        if mode == "start":
            payload = {"task": sys.argv[5], "task_id": "t1", "ground_truth": sys.argv[6]}
        else:
            print(json.dumps({"next": list(graph.get_state(config).next)}), flush=True)
            payload = None
        out = graph.invoke(payload, config, context=ctx)
        print(json.dumps({"verdict": out.get("verdict"), "writes": out.get("writes")}))
    """
)


def _child(home: Path, mode: str, kill: str = "none") -> subprocess.CompletedProcess[str]:
    script = home / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *sys.path])
    env.update(ORT_DISABLE_TELEMETRY="1", ANONYMIZED_TELEMETRY="False")
    return subprocess.run(
        [sys.executable, str(script), str(home), mode, kill, THREAD, TASK, GOLD],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _learned(home: Path) -> dict[str, Any]:
    """Everything the task left outside the checkpoint, in a comparable form."""
    library = SkillLibrary(home / "skills")
    touched = [s for s in library.skills() if s.provenance == "learned" or s.utility.runs]
    loaded = RouterWeightsStore(weights_dir(library.root)).load()
    header = loaded[1] if loaded else {}
    return {
        "skills": {
            s.name: {
                "versions": [v.version for v in library.history(s.name)],
                "live": s.version,
                "utility": (s.utility.successes, s.utility.failures),
            }
            for s in touched
        },
        "trials": sorted(p.name for p in (library.root / ".memento" / "trials").glob("*.json")),
        "router_cases": header.get("cases", 0),
        "router_keys": len(set(header.get("observed") or ())),
        "run_log": [(r["attempt"], r["skill"], r["reward"]) for r in RunLog(home / "runs.jsonl")],
        "run_log_keys": len({r.get("key") for r in RunLog(home / "runs.jsonl")}),
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the same task leaves behind when nothing kills it."""
    home = tmp_path_factory.mktemp("uninterrupted")
    done = _child(home, "start")
    assert done.returncode == 0, done.stderr[-2000:]
    return {"out": json.loads(done.stdout.splitlines()[-1]), "learned": _learned(home)}


@pytest.mark.parametrize(
    ("kill", "resumes_at"),
    [
        # the executor reads python tool results: the 1st in the gate's replay of the skill
        # attempt 1 created, the 2nd in attempt 2's execute (after a tool step)
        ("python-result-1", "reflect_write"),
        ("python-result-2", "execute"),
        ("before-run-log", "reflect_write"),  # skill written and vetted, run log not appended
    ],
    ids=["during-gate", "during-execute", "between-commit-and-run-log"],
)
def test_a_sigkilled_task_resumes_and_records_every_change_once(
    tmp_path: Path, uninterrupted: dict[str, Any], kill: str, resumes_at: str
) -> None:
    killed = _child(tmp_path, "start", kill)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = _child(tmp_path, "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first, last = (json.loads(line) for line in resumed.stdout.splitlines()[-2:])
    assert first["next"] == [resumes_at]  # it continues from its last checkpoint
    assert last["verdict"]["passed"]
    assert [w["action"] for w in last["writes"]] == [
        w["action"] for w in uninterrupted["out"]["writes"]
    ]
    learned = _learned(tmp_path)
    assert learned == uninterrupted["learned"]
    # and what that is: each change once, nothing on trial, counts and records once
    skill = learned["skills"]["multiply-whole-numbers"]
    assert skill == {"versions": [1, 2], "live": 2, "utility": (1, 0)}
    assert learned["trials"] == []
    assert learned["run_log"] == [(1, "python", 0.0), (2, "multiply-whole-numbers", 1.0)]
    assert learned["run_log_keys"] == 2
    assert learned["router_cases"] == learned["router_keys"] == 2


@pytest.mark.parametrize("resume", ["resume", "again"])
def test_a_task_killed_before_its_input_was_applied_runs_from_the_start(
    tmp_path: Path, uninterrupted: dict[str, Any], resume: str
) -> None:
    """SIGKILL right after the thread's first checkpoint: its input is saved but not yet in
    the state. Resumed (no task) or given its task again, it runs as if never started."""
    killed = _child(tmp_path, "start", "after-input-checkpoint")
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = _child(tmp_path, resume)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    last = json.loads(resumed.stdout.splitlines()[-1])
    assert last["verdict"]["passed"]
    assert [w["action"] for w in last["writes"]] == [
        w["action"] for w in uninterrupted["out"]["writes"]
    ]
    assert _learned(tmp_path) == uninterrupted["learned"]


def test_memento_run_thread_resumes_a_killed_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    victim: list[subprocess.Popen[str]] = []
    tool_results: list[int] = []

    def reply(request: dict[str, Any]) -> str | dict[str, Any] | None:
        tool = forced_tool(request)
        answered = any(m.get("role") == "tool" for m in request.get("messages", []))
        if request.get("tools") and answered and tool != "python":
            tool_results.append(1)
            if len(tool_results) == 1:  # after the first tool step: kill `memento run`
                os.kill(victim[0].pid, signal.SIGKILL)
                return None
            return {"tool": "submit_answer", "arguments": {"answer": "42"}}
        if tool == "submit_answer":
            return {"tool": "submit_answer", "arguments": {"answer": "42"}}
        if request.get("tools"):
            return {"tool": "python", "arguments": {"code": "print(6 * 7)"}}
        return "42"

    with scripted_endpoint(reply) as (url, _seen):
        args = ["--base-url", url, "--model", "scripted", "--thread", "t-42"]
        env = _cli_env(home)
        victim.append(
            subprocess.Popen(
                ["memento", "run", "What is 6 times 7?", "--ground-truth", "42", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
        _out, killed_err = victim[0].communicate(timeout=300)
        assert victim[0].returncode == -9, killed_err[-2000:]
        assert not (home / "runs.jsonl").exists()  # killed before it was judged

        other = subprocess.run(
            ["memento", "run", "What is 2 plus 2?", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert other.returncode == 2 and "has an unfinished task" in other.stderr, other.stderr

        resumed = subprocess.run(
            ["memento", "run", *args], capture_output=True, text=True, env=env, timeout=300
        )
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert resumed.stdout.strip() == "42"
        records = RunLog(home / "runs.jsonl").records()
        assert [r["attempt"] for r in records] == [1]  # one record per judged attempt
        assert records[0]["trajectory"]["tools"][0] == "python"  # the step before the kill
        assert records[0]["reward"] == 1.0

        again = subprocess.run(
            ["memento", "run", *args], capture_output=True, text=True, env=env, timeout=300
        )
        assert again.returncode == 2
        assert "has no unfinished task to resume" in again.stderr
        assert len(RunLog(home / "runs.jsonl").records()) == 1


def _cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMENTO_", "OPENAI_"))}
    env.update(
        MEMENTO_HOME=str(home),
        ORT_DISABLE_TELEMETRY="1",
        ANONYMIZED_TELEMETRY="False",
        NO_COLOR="1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env


def test_a_keyed_utility_count_is_made_once(tmp_path: Path) -> None:
    from memento_skills.stores.skill import Skill

    library = SkillLibrary(tmp_path / "lib")
    library.create(Skill(name="adder", description="Adds numbers. Use for sums.", body="Add."))
    for _ in range(2):  # the node replayed after a crash
        library.record_outcome("adder", True, key="run1-attempt1")
    library.record_outcome("adder", False, key="run1-attempt2")
    library.record_outcome("adder", False)  # unkeyed: counted every time, as before
    fresh = SkillLibrary(library.root).get("adder")
    assert (fresh.utility.successes, fresh.utility.failures) == (1, 2)
    assert fresh.version == 1 and [v.version for v in library.history("adder")] == [1]


def test_a_keyed_run_log_record_is_appended_once_after_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    log = RunLog(path)
    assert log.append({"attempt": 1}, key="k1")
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"attempt": 2, "ke')  # a writer killed mid-line
    assert log.append({"attempt": 2}, key="k2")
    assert not log.append({"attempt": 2}, key="k2")  # replayed
    assert [(r["attempt"], r["key"]) for r in log] == [(1, "k1"), (2, "k2")]


def test_a_keyed_router_observation_is_learned_once(tmp_path: Path) -> None:
    import numpy as np

    from memento_skills.nodes.routing.service import LearnedRouter

    router = LearnedRouter(tmp_path / "weights")
    vector = np.ones(4, np.float32)
    for _ in range(2):
        router.observe("add 2 and 3", vector, "adder", 1.0, key="run1-attempt1")
    router.observe("add 4 and 5", vector, "adder", 1.0, key="run2-attempt1")
    reloaded = LearnedRouter(tmp_path / "weights")
    assert reloaded.model is not None and len(reloaded.model.case_skill) == 2
    reloaded.observe("add 2 and 3", vector, "adder", 1.0, key="run1-attempt1")
    assert len(reloaded.model.case_skill) == 2
