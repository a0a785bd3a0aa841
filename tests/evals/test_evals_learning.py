"""The learning-loop runner through the real graph, library, index and sandbox, with scripted models.

The scripted executor solves reasoning-gym `products` tasks only once the learned multiplication
skill is in its prompt (tests/support/scripted_learner.py), so the accuracy curve must rise over rounds
when writes are on and stay flat when they are off. Interruptions are real: an exception after K
results, and a SIGKILL of a subprocess mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from memento_skills.evals.learning import EndpointError, LearningRun, RunDirError, RunSettings
from memento_skills.evals.report import compare
from memento_skills.evals.run_records import (
    JsonlLog,
    duplicate_keys,
    load_results,
    load_rounds,
    result_key,
)
from memento_skills.evals.suites import ReasoningGymSuite
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.run_log import RunLog

from support.scripted_learner import SKILL, product_of, scripted_resources

TESTS = Path(__file__).resolve().parents[1]
MEMENTO = shutil.which("memento") or str(TESTS.parent / ".venv/bin/memento")
TRAIN, TEST, ROUNDS = 4, 3, 2
SETTINGS = RunSettings(max_attempts=1, train_temperature=0.0)


def products(train: int = TRAIN, test: int = TEST) -> ReasoningGymSuite:
    return ReasoningGymSuite(["products"], train=train, test=test, seed=0)


def curve(records: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[int, int]]:
    """(phase, round) -> (correct, total)."""
    out: dict[tuple[str, int], list[int]] = {}
    for r in records:
        c = out.setdefault((r["phase"], r["round"]), [0, 0])
        c[0] += int(r["correct"])
        c[1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


EXPECTED = {
    ("eval", 0): (0, TEST),
    ("eval", 1): (TEST, TEST),
    ("eval", 2): (TEST, TEST),
    ("train", 1): (TRAIN - 1, TRAIN),
    ("train", 2): (TRAIN, TRAIN),
}


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One read-write run of ROUNDS rounds, shared by the tests that only read it."""
    run_dir = tmp_path_factory.mktemp("rw")
    outcome = LearningRun(
        products(), run_dir, settings=SETTINGS, resources=scripted_resources()
    ).learn(ROUNDS, mode="read-write")
    assert not outcome.leaks
    return run_dir


def test_curve_rises_with_writes_and_stays_flat_without(learned: Path, tmp_path: Path) -> None:
    got = curve(load_results(learned))
    # round 1: the first task fails, a skill is written, the rest route to it and pass
    assert got == EXPECTED
    records = load_results(learned)
    first = next(r for r in records if r["phase"] == "train")
    assert [c["action"] for c in first["library_changes"]] == ["create"]
    assert first["library_changes"][0]["accepted"] and first["library_changes"][0]["skill"] == SKILL
    solved = [r for r in records if r["correct"]]
    assert all(r["skill"] == SKILL and r["tokens"] > 0 and r["seconds"] > 0 for r in solved)
    # correct comes from reasoning-gym's own scorer, and agrees with the true product here
    suite = products()
    questions = {t.id: t.question for t in suite.all_tasks()}
    assert all(r["answer"] == str(product_of(questions[r["task_id"]])) for r in solved)
    assert {r["score_method"] for r in records} == {"reasoning-gym"}
    # test tasks: one attempt, no writes
    assert all(
        r["attempts"] == 1 and r["write_policy"] == "off" for r in records if r["phase"] == "eval"
    )
    growth = [(g["round"], g["skills"], g["learned"]) for g in load_rounds(learned)]
    assert growth == [(0, 5, 0), (1, 6, 1), (2, 6, 1)]

    ro = LearningRun(products(), tmp_path / "ro", settings=SETTINGS, resources=scripted_resources())
    ro.learn(ROUNDS, mode="read-only")
    flat = curve(load_results(tmp_path / "ro"))
    assert all(correct == 0 for correct, _ in flat.values())
    assert [g["skills"] for g in load_rounds(tmp_path / "ro")] == [5, 5, 5]
    # separate run dirs, separate memories: the read-only library never saw the skill
    assert not (tmp_path / "ro" / "skills" / SKILL).exists()
    assert (learned / "skills" / SKILL / "SKILL.md").is_file()
    # the ablation table: one row per run dir
    table = compare([learned, tmp_path / "ro"]).splitlines()
    assert "| read-write | 1.000 |" in table[2] and "0.00 → 1.00 → 1.00" in table[2]
    assert "| read-only | 0.000 |" in table[3] and "| 0 |" in table[3]


WEAK_LEVEL = "uid" if os.geteuid() == 0 else "rlimits"


def test_learning_with_gate_replays_works_at_the_weaker_level_and_hides_the_golds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opted in to the level without namespaces, the executor's python runs under the
    sandbox's own uid (or Landlock alone), every gate replay included; the run dir (results,
    cases) stays closed to it, and the task workspaces live outside it."""
    monkeypatch.setenv("MEMENTO_SANDBOX", WEAK_LEVEL)
    run_dir = tmp_path / "weak"
    run = LearningRun(
        products(train=3, test=2), run_dir, settings=SETTINGS, resources=scripted_resources()
    )
    run.learn(1, mode="read-write-optimize")
    got = curve(load_results(run_dir))
    assert got == {("eval", 0): (0, 2), ("eval", 1): (2, 2), ("train", 1): (2, 3)}
    first = next(r for r in load_results(run_dir) if r["phase"] == "train")
    change = first["library_changes"][0]
    assert change["accepted"] and "gate: no regression" in change["reason"]
    assert os.stat(run_dir).st_mode & 0o777 == 0o700
    cases = run_dir / "skills" / ".memento" / "cases"
    assert os.stat(cases).st_mode & 0o777 == 0o700
    assert os.stat(cases / f"{SKILL}.jsonl").st_mode & 0o777 == 0o600
    assert not (run_dir / "workspaces").exists()
    assert not run.workspaces.is_relative_to(run_dir) and not run.workspaces.exists()


def test_interrupted_run_resumes_without_duplicates(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    def stop_after_six(record: dict[str, Any]) -> None:
        seen.append(record)
        if len(seen) == 6:
            raise KeyboardInterrupt

    run_dir = tmp_path / "resumed"
    first = LearningRun(
        products(),
        run_dir,
        settings=SETTINGS,
        resources=scripted_resources(),
        on_result=stop_after_six,
    )
    with pytest.raises(KeyboardInterrupt):
        first.learn(ROUNDS, mode="read-write")
    partial = load_results(run_dir)
    assert len(partial) == 6

    ran: list[str] = []
    again = LearningRun(
        products(),
        run_dir,
        settings=SETTINGS,
        resources=scripted_resources(),
        on_result=lambda r: ran.append(r["task_id"]),
    )
    again.learn(ROUNDS, mode="read-write")
    records = load_results(run_dir)
    assert duplicate_keys(records) == []
    assert len(records) == 2 * TRAIN + 3 * TEST
    assert len(ran) == len(records) - len(partial)  # nothing recorded ran twice
    assert curve(records) == EXPECTED  # as if never interrupted


KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from support.scripted_learner import scripted_resources
from memento_skills.evals.learning import LearningRun, RunSettings
from memento_skills.evals.report import compare
from memento_skills.evals.suites import ReasoningGymSuite

suite = ReasoningGymSuite(["products"], train={train}, test={test}, seed=0)
LearningRun(
    suite, {run_dir!r}, settings=RunSettings(max_attempts=1, train_temperature=0.0),
    resources=scripted_resources(delay=0.1),
).learn({rounds}, mode="read-write")
"""


def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(
        KILLED_RUN.format(
            tests=str(TESTS), train=TRAIN, test=TEST, run_dir=str(run_dir), rounds=ROUNDS
        )
    )
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE)
    results = run_dir / "results.jsonl"
    deadline = time.time() + 90
    try:
        # past round 0's test evaluation and the training task that writes the skill
        while time.time() < deadline and proc.poll() is None:
            if results.exists() and results.read_text().count("\n") >= 5:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = len(load_results(run_dir))
    assert 5 <= killed_at < 2 * TRAIN + 3 * TEST

    # resumed on two threads sharing one Resources
    LearningRun(
        products(),
        run_dir,
        settings=RunSettings(max_attempts=1, train_temperature=0.0, concurrency=2),
        resources=scripted_resources(),
    ).learn(ROUNDS, mode="read-write")
    records = load_results(run_dir)
    assert duplicate_keys(records) == []
    assert Counter(r["phase"] for r in records) == {"train": 2 * TRAIN, "eval": 3 * TEST}
    assert curve(records)[("eval", ROUNDS)] == (TEST, TEST)
    # the task the kill interrupted resumed on its thread: one run-log record per judged
    # attempt (one attempt per result here), and the skill's count of them made once each
    runs = RunLog(run_dir / "runs.jsonl").records()
    assert len(runs) == len(records)
    assert len({r["key"] for r in runs}) == len(runs)
    counted = sum(1 for r in runs if r["skill"] == SKILL and r["write_policy"] != "off")
    assert SkillLibrary(run_dir / "skills").get(SKILL).utility.runs == counted


@pytest.mark.parametrize("wrapped", [False, True], ids=["openai", "langchain-openai"])
def test_an_endpoint_outage_stops_the_run_without_recording_failures(
    tmp_path: Path, wrapped: bool
) -> None:
    import httpx
    import openai
    from langchain_openai.chat_models.base import OpenAIConnectionError

    from memento_skills.testing import ScriptedChatModel

    error = OpenAIConnectionError if wrapped else openai.APIConnectionError

    def down(messages: Any) -> Any:
        request: Any = httpx.Request("POST", "http://127.0.0.1:9/v1")  # openai types its own
        raise error(request=request)

    broken = scripted_resources()
    broken._models["executor"] = ScriptedChatModel(script=[down] * 10)
    with pytest.raises(EndpointError, match=r"task products-test-0: .*(API|OpenAI)ConnectionError"):
        LearningRun(products(), tmp_path, settings=SETTINGS, resources=broken).learn(1)
    assert load_results(tmp_path) == []  # an outage is not the agent failing
    LearningRun(products(), tmp_path, settings=SETTINGS, resources=scripted_resources()).learn(1)
    assert len(load_results(tmp_path)) == TRAIN + 2 * TEST


def test_partial_last_line_is_cut_on_open(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    good = {"phase": "eval", "split": "test", "round": 0, "task_id": "a", "correct": True}
    path.write_text(json.dumps(good) + "\n" + '{"phase": "eval", "spl')
    log = JsonlLog(path)
    assert [result_key(r) for r in log.records] == [("eval", "test", 0, "a")]
    log.append({**good, "task_id": "b"})
    lines = path.read_text().splitlines()
    assert [json.loads(x)["task_id"] for x in lines] == ["a", "b"]


def test_disjoint_rounds_train_each_round_on_new_tasks_and_resume_on_the_same_plan(
    tmp_path: Path,
) -> None:
    suite = products(train=2 * ROUNDS)
    run = LearningRun(suite, tmp_path, settings=SETTINGS, resources=scripted_resources())
    run.learn(ROUNDS, mode="read-write", eval_test=False, train_per_round=2)
    by_round: dict[int, list[str]] = {}
    for r in load_results(tmp_path):
        by_round.setdefault(r["round"], []).append(r["task_id"])
    train_ids = [t.id for t in suite.tasks("train")]
    assert by_round == {1: train_ids[:2], 2: train_ids[2:4]}
    assert json.loads((tmp_path / "config.json").read_text())["train_per_round"] == 2
    # one more round needs two more tasks than the split holds: said before anything runs
    with pytest.raises(RunDirError, match="--train 6"):
        LearningRun(suite, tmp_path, resources=scripted_resources()).learn(
            ROUNDS + 1, mode="read-write", train_per_round=2
        )
    # resuming with another plan would train a round on tasks it did not begin with
    with pytest.raises(RunDirError, match="same --train-per-round"):
        LearningRun(suite, tmp_path, resources=scripted_resources()).learn(
            ROUNDS, mode="read-write"
        )
    assert len(load_results(tmp_path)) == 2 * ROUNDS


def test_run_dir_refuses_another_suite_or_mode(tmp_path: Path) -> None:
    run = LearningRun(products(), tmp_path, settings=SETTINGS, resources=scripted_resources())
    run.learn(1, mode="read-only", eval_test=False)
    with pytest.raises(RunDirError, match="new --run-dir"):
        LearningRun(products(train=5), tmp_path, resources=scripted_resources()).learn(1)
    with pytest.raises(RunDirError, match="ablations must not share"):
        LearningRun(products(), tmp_path, resources=scripted_resources()).learn(
            1, mode="read-write"
        )


def test_one_process_per_run_dir(tmp_path: Path) -> None:
    from filelock import FileLock

    run = LearningRun(products(), tmp_path, settings=SETTINGS, resources=scripted_resources())
    with FileLock(str(tmp_path / "run.lock")), pytest.raises(RunDirError, match="another memento"):
        run.learn(1, mode="read-only", eval_test=False)  # another process holds the run dir
    assert not (tmp_path / "results.jsonl").exists()  # and nothing was run or written
    run.learn(1, mode="read-only", eval_test=False)  # free again: it runs
    assert (tmp_path / "results.jsonl").exists()


def test_a_second_interrupt_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from memento_skills import cli_evals

    exits: list[int] = []
    monkeypatch.setattr(cli_evals.os, "_exit", exits.append)
    handler = cli_evals._Interrupts()
    with pytest.raises(KeyboardInterrupt):
        handler(15, None)  # the first: a gentle stop
    handler(15, None)
    assert exits == [130]


def test_eval_uses_the_learned_library_and_online_writes(learned: Path, tmp_path: Path) -> None:
    run = LearningRun(products(), learned, resources=scripted_resources())
    train_only = run.evaluate("train")  # the learned library, after the last round
    assert [(p.phase, p.split, p.round, p.correct, p.total) for p in train_only.phases] == [
        ("eval", "train", ROUNDS, TRAIN, TRAIN)
    ]
    again = run.evaluate("test")  # recorded by learn after the last round: nothing runs
    assert again.phases[0].ran == 0 and again.phases[0].correct == TEST

    fresh = LearningRun(products(), tmp_path / "online", resources=scripted_resources())
    online = fresh.evaluate("test", writes=True, mode="read-write")
    # online learning: the first test task fails and teaches the skill the others then use
    assert online.phases[0].phase == "online" and online.phases[0].correct == TEST - 1
    assert all(r["attempts"] == 1 for r in load_results(tmp_path / "online"))


def test_leak_check_fails_loudly_on_a_planted_gold(tmp_path: Path) -> None:
    suite = products()
    victim = suite.tasks("test")[0]
    run = LearningRun(
        suite, tmp_path, settings=SETTINGS, resources=scripted_resources(planted=victim.answer)
    )
    outcome = run.learn(1, mode="read-write", eval_test=False)
    assert [(leak.file, leak.task_id) for leak in outcome.leaks] == [
        (f"{SKILL}/SKILL.md", victim.id)
    ]
    assert outcome.leaks[0].line is not None
    stored = json.loads((tmp_path / "leaks.json").read_text())
    assert stored["leaks"][0]["task_id"] == victim.id

    proc = subprocess.run(
        [MEMENTO, "leaks", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ORT_DISABLE_TELEMETRY": "1", "NO_COLOR": "1"},
    )
    assert proc.returncode == 4, proc.stderr  # ExitCode.LEAK
    assert "LEAK CHECK FAILED" in proc.stderr
    assert victim.id in proc.stderr and f"{SKILL}/SKILL.md" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_has_intervals_utility_growth_tokens_and_plots(learned: Path) -> None:
    proc = subprocess.run(
        [MEMENTO, "report", str(learned), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    report = Path(data["report"]).read_text()
    assert "95% CI" in report and "## Per-skill utility" in report and SKILL in report
    assert "## Library growth" in report and "## Tokens and cost" in report
    assert "No gold answer of the suite found" in report
    final = {(f["phase"], f["split"]): f for f in data["final"]}
    assert final[("eval", "test")]["round"] == ROUNDS
    assert final[("eval", "test")]["accuracy"] == 1.0
    assert final[("eval", "test")]["groups"]["products"]["n"] == TEST
    low, high = final[("train", "train")]["ci95"]
    assert 0.0 < low < 1.0 and high == 1.0
    assert [g["learned"] for g in data["growth"]] == [0, 1, 1]
    # each group's curve, round by round (the learned run: 0 before the skill, all after)
    assert "| products | 0/3 | 3/3 | 3/3 |" in report
    test_curve = [g for g in data["group_curve"] if (g["phase"], g["split"]) == ("eval", "test")]
    assert {(g["round"], g["correct"]) for g in test_curve} == {
        (0, 0),
        (1, TEST),
        (2, TEST),
    }
    for png in ("learning_curve.png", "library_size.png", "tokens_per_task.png"):
        assert (learned / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report


def test_cli_errors_are_clean(tmp_path: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "MEMENTO_HOME": str(tmp_path / "home")}

    def memento(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MEMENTO, *args], capture_output=True, text=True, timeout=120, env=env
        )

    proc = memento("learn", "--suite", "reasoning-gym", "--mode", "write-all", "--run-dir", "x")
    assert proc.returncode == 2 and "--mode must be one of" in proc.stderr
    proc = memento("report", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = memento("report", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "no results.jsonl" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


LOCAL_ENDPOINT_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "MEMENTO_BASE_URL",
    "MEMENTO_MODEL",
    "MEMENTO_EXECUTOR_MODEL",
    "MEMENTO_JUDGE_MODEL",
    "MEMENTO_WRITER_MODEL",
    "MEMENTO_ROUTER_MODEL",
    "MEMENTO_GGUF",
    "MEMENTO_LOCAL",
)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("MEMENTO_E2E_LEARN") != "1",
    reason="set MEMENTO_E2E_LEARN=1: with SmolLM2 on 2 cores, grammar-constrained tool calls can "
    "take minutes per call, more than CI can budget until that is bounded",
)
def test_cli_learn_with_the_local_model_stops_on_sigterm_resumes_and_reports(
    tmp_path: Path,
) -> None:
    """`memento learn` end to end with the offline default (SmolLM2-135M on llama.cpp): a
    SIGTERM mid-run keeps every finished result, and the same command then resumes."""
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_ENDPOINT_VARS}
    env.update(
        ORT_DISABLE_TELEMETRY="1",
        NO_COLOR="1",
        COLUMNS="200",
        MEMENTO_HOME=str(tmp_path / "home"),
        MEMENTO_MAX_TOKENS="64",  # keeps a 135M model's rambling short on two busy cores
    )
    run_dir = tmp_path / "run"
    args = [
        MEMENTO, "learn", "--suite", "reasoning-gym", "--generators", "chain_sum",
        "--train", "2", "--test", "0", "--rounds", "1", "--max-attempts", "1",
        "--max-steps", "2", "--run-dir", str(run_dir),
    ]  # fmt: skip
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    results = run_dir / "results.jsonl"
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.5)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode in (0, 130), stderr
    if proc.returncode == 130:
        assert "every finished task is recorded" in stderr
    first = load_results(run_dir)
    assert 1 <= len(first) <= 2 and duplicate_keys(first) == []

    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    # 4 would mean the 135M writer copied a gold into a skill: the check failing loudly
    assert again.returncode in (0, 4), again.stderr
    records = load_results(run_dir)
    assert len(records) == 2 and duplicate_keys(records) == []
    assert all(r["tokens"] > 0 and r["usage"]["roles"]["executor"]["calls"] >= 1 for r in records)
    report = (run_dir / "report.md").read_text()
    assert "| train | train | 1 | 2 |" in report and (run_dir / "learning_curve.png").exists()


def test_transfer_starts_a_new_run_from_a_learned_library(learned: Path, tmp_path: Path) -> None:
    other = ReasoningGymSuite(["products"], train=0, test=TEST, seed=7)  # tasks never trained on
    settings = RunSettings(max_attempts=1, library_from=learned)
    run = LearningRun(other, tmp_path / "t", settings=settings, resources=scripted_resources())
    outcome = run.evaluate("test")
    assert curve(load_results(tmp_path / "t")) == {("eval", 0): (TEST, TEST)}
    assert (tmp_path / "t" / "skills" / SKILL / "SKILL.md").is_file() and not outcome.leaks
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["library_from"] == str(learned)
    # a rerun resumes the same transfer run: nothing copied again, nothing run twice
    LearningRun(other, tmp_path / "t", settings=settings, resources=scripted_resources()).evaluate(
        "test"
    )
    assert len(load_results(tmp_path / "t")) == TEST
    # without the learned library the same tasks fail
    LearningRun(other, tmp_path / "cold", resources=scripted_resources()).evaluate("test")
    assert curve(load_results(tmp_path / "cold")) == {("eval", 0): (0, TEST)}


def test_transfer_needs_a_run_dir_with_a_library(tmp_path: Path) -> None:
    settings = RunSettings(library_from=tmp_path / "nothing")
    with pytest.raises(RunDirError, match="no skills/ folder"):
        LearningRun(products(), tmp_path / "t", settings=settings).evaluate("test")


def test_a_training_round_hands_the_gate_its_own_tasks_as_sibling_cases(tmp_path: Path) -> None:
    suite = products(train=2 * ROUNDS)
    resources = scripted_resources()
    run = LearningRun(suite, tmp_path, settings=SETTINGS, resources=resources)
    seen: list[tuple[int, list[str], bool]] = []

    def during(record: dict[str, Any]) -> None:
        assert resources.training_cases is not None, "the gate gets the round's tasks"
        cases = resources.training_cases()
        seen.append(
            (record["round"], [c.task_id for c in cases], all(c.ground_truth for c in cases))
        )

    run.on_result = during
    run.learn(ROUNDS, mode="read-write", eval_test=False, train_per_round=2)
    train_ids = [t.id for t in suite.tasks("train")]
    assert {(r, tuple(ids), golds) for r, ids, golds in seen} == {
        (1, tuple(train_ids[:2]), True),
        (2, tuple(train_ids[2:4]), True),
    }
    assert resources.training_cases is None, "outside training, no sibling cases"
