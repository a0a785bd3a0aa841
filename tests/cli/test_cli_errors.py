"""Errors of the `memento` command: one line, the documented exit code, nothing created by a typo.

Every test runs the real command as a subprocess; "unreachable" is a closed loopback port and the
model is a scripted OpenAI-compatible endpoint on loopback (tests/support/scripted_endpoint.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.commands import MEMENTO, memento
from support.scripted_endpoint import forced_tool, scripted_endpoint


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_help_lists_the_exit_codes(home: Path) -> None:
    proc = memento("--help", home=home)
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0
    for needle in ("1 failed", "2 bad input", "3 unreachable", "4 leak", "130 interrupted"):
        assert needle in text, text


@pytest.mark.parametrize("with_model", [False, True])
def test_unreachable_base_url_is_one_line_exit_3(home: Path, with_model: bool) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    model = ("--model", "any") if with_model else ()
    proc = memento("run", "What is 2+2?", "--base-url", url, *model, home=home)
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc)
    assert url in line and "--base-url" in line and "refused" in line.lower()
    assert "MEMENTO_MODEL" not in line  # not the wrong fix
    assert not (home / "skills").exists()  # stopped before anything was written

    debug = memento("--debug", "run", "What is 2+2?", "--base-url", url, *model, home=home)
    assert debug.returncode == 3 and "Traceback" in debug.stderr


def test_unreachable_endpoint_from_the_environment(home: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    proc = memento("run", "What is 2+2?", home=home, MEMENTO_BASE_URL=url, MEMENTO_MODEL="m")
    assert proc.returncode == 3 and url in one_error_line(proc)


def test_base_url_without_scheme_is_bad_input(home: Path) -> None:
    proc = memento("run", "x", "--base-url", "localhost:8080/v1", "--model", "m", home=home)
    assert proc.returncode == 2 and "not a URL like http://" in one_error_line(proc)


def test_missing_gguf_is_bad_input(home: Path, tmp_path: Path) -> None:
    gguf = tmp_path / "nope.gguf"
    proc = memento(
        "run", "What is 2+2?", "--write-policy", "off", home=home, MEMENTO_GGUF=str(gguf)
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and str(gguf) in last and "MEMENTO_GGUF" in last


def _answer(text: str) -> Any:
    """The scripted model answers `text` (and calls any tool it is forced to with it)."""

    def reply(request: dict[str, Any]) -> str | dict[str, Any]:
        tool = forced_tool(request)
        if tool == "python":
            return {"tool": "python", "arguments": {"code": f"print({text!r})"}}
        if tool == "submit_answer":
            return {"tool": "submit_answer", "arguments": {"answer": text}}
        return text

    return reply


def test_run_exit_code_follows_the_verdict(home: Path) -> None:
    with scripted_endpoint(_answer("5")) as (url, seen):
        args = ("--base-url", url, "--model", "scripted", "--write-policy", "off")
        failed = memento("run", "What is 2+2?", "--ground-truth", "4", *args, home=home)
        assert failed.returncode == 1, failed.stderr
        assert failed.stdout.strip() == "5"
        assert failed.stderr.strip().splitlines()[-1].startswith("failed: the task failed")

        as_json = memento("run", "What is 2+2?", "--ground-truth", "4", *args, "--json", home=home)
        assert as_json.returncode == 1, as_json.stderr
        assert json.loads(as_json.stdout)["verdict"]["passed"] is False

        passed = memento("run", "What is 2+3?", "--ground-truth", "5", *args, home=home)
        assert passed.returncode == 0, passed.stderr
        assert seen  # the endpoint was really asked


def test_an_endpoint_that_stops_answering_mid_run_is_exit_3(home: Path) -> None:
    with scripted_endpoint(lambda request: None) as (url, seen):
        proc = memento(
            "run",
            "What is 2+2?",
            *("--base-url", url, "--model", "scripted", "--write-policy", "off"),
            home=home,
            MEMENTO_MAX_RETRIES="0",
        )
    assert proc.returncode == 3, proc.stderr
    assert seen  # the listing answered; the chat requests were dropped
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and url in last and "stopped answering" in last
    assert "Traceback" not in proc.stderr


def test_closed_chroma_server_is_exit_3_and_a_url_without_scheme_exit_2(home: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    closed = memento("skills", "sync", home=home, MEMENTO_CHROMA_URL=url)
    assert closed.returncode == 3
    assert url in one_error_line(closed) and "MEMENTO_CHROMA_URL" in closed.stderr
    no_scheme = memento("skills", "sync", home=home, MEMENTO_CHROMA_URL="localhost:8000")
    assert no_scheme.returncode == 2
    assert "localhost:8000" in one_error_line(no_scheme)


def test_validate_takes_a_skill_md_and_refuses_a_missing_path(home: Path, tmp_path: Path) -> None:
    memento("skills", "list", home=home)  # seeds the default library
    skill_md = home / "skills" / "python" / "SKILL.md"
    proc = memento("skills", "validate", str(skill_md), home=home)
    assert proc.returncode == 0 and "ok" in proc.stdout and "python" in proc.stdout

    typo = tmp_path / "typo-path"
    proc = memento("skills", "validate", str(typo), home=home)
    assert proc.returncode == 2 and "does not exist" in one_error_line(proc)
    assert not typo.exists()

    other = tmp_path / "notes.txt"
    other.write_text("hello")
    proc = memento("skills", "validate", str(other), home=home)
    assert proc.returncode == 2 and "SKILL.md" in one_error_line(proc)

    empty = tmp_path / "empty"
    empty.mkdir()
    proc = memento("skills", "validate", str(empty), home=home)
    assert proc.returncode == 2 and "holds no skill" in one_error_line(proc)
    assert list(empty.iterdir()) == []  # nothing created inside


def test_a_mistyped_dir_is_refused_and_init_creates_a_library(home: Path, tmp_path: Path) -> None:
    typo = tmp_path / "libary"
    for args in (
        ("skills", "list", "--dir", str(typo)),
        ("skills", "import", str(tmp_path), "--dir", str(typo)),
        ("run", "What is 2+2?", "--dir", str(typo)),
        ("router", "train", "--dir", str(typo), "--from", str(tmp_path / "runs.jsonl")),
    ):
        proc = memento(*args, home=home)
        assert proc.returncode == 2, (args, proc.stderr)
        assert str(typo) in one_error_line(proc)
        assert not typo.exists()
    assert not (home / "skills").exists()

    made = json.loads(memento("skills", "init", str(typo), "--json", home=home).stdout)
    assert "python" in made["skills"]
    listed = json.loads(memento("skills", "list", "--dir", str(typo), "--json", home=home).stdout)
    assert {s["name"] for s in listed["skills"]} == set(made["skills"])
    again = memento("skills", "init", str(typo), home=home)
    assert again.returncode == 2 and "not empty" in one_error_line(again)
    bare = tmp_path / "bare"
    proc = memento("skills", "init", str(bare), "--no-seed", "--json", home=home)
    assert json.loads(proc.stdout)["skills"] == [] and bare.is_dir()


def test_show_prints_the_file_raw_when_piped(home: Path, tmp_path: Path) -> None:
    memento("skills", "list", home=home)
    original = (home / "skills" / "python" / "SKILL.md").read_bytes()
    assert max(len(line) for line in original.splitlines()) > 80  # a long line to break
    piped = subprocess.run(
        [MEMENTO, "skills", "show", "python"],
        env={**os.environ, "MEMENTO_HOME": str(home), "ORT_DISABLE_TELEMETRY": "1"},
        capture_output=True,
        timeout=120,
    )
    assert piped.returncode == 0 and piped.stdout == original
    raw = memento("skills", "show", "python", "--raw", home=home)
    assert raw.stdout.encode() == original

    copy = tmp_path / "copy" / "python"
    copy.mkdir(parents=True)
    (copy / "SKILL.md").write_bytes(piped.stdout)  # `memento skills show python > SKILL.md`
    assert memento("skills", "validate", str(copy / "SKILL.md"), home=home).returncode == 0


def test_eval_with_a_mistyped_library_from_creates_no_run_dir(home: Path, tmp_path: Path) -> None:
    suite = tmp_path / "tasks.jsonl"
    suite.write_text('{"id": "a", "question": "2+2?", "answer": "4"}\n')
    run_dir = tmp_path / "run"
    proc = memento(
        *("eval", "--suite", "jsonl", "--path", str(suite), "--run-dir", str(run_dir)),
        *("--library-from", str(tmp_path / "no-such-run")),
        home=home,
    )
    assert proc.returncode == 2 and "no-such-run" in one_error_line(proc)
    assert not run_dir.exists()


def test_small_messages_say_what_is_true(home: Path, tmp_path: Path) -> None:
    proc = memento("report", str(tmp_path / "runs" / "nope"), home=home)
    assert proc.returncode == 2 and "does not exist" in one_error_line(proc)

    tar = tmp_path / "out" / "x.tar"
    proc = memento("skills", "export", str(tar), home=home)
    assert proc.returncode == 2 and "x.zip" in one_error_line(proc)
    assert not tar.exists()

    one = memento("skills", "export", str(tmp_path / "one.zip"), "python", home=home)
    assert one.returncode == 0 and "wrote 1 skill to" in one.stdout

    proc = memento("skills", "show", "Bad_Name", home=home)
    assert proc.returncode == 2
    assert "Skill names are [a-z0-9] words joined by single hyphens" in one_error_line(proc)


def test_every_error_kind_has_its_code() -> None:
    """The table main() applies (its surface is checked above; this covers every kind once)."""
    from memento_skills.cli_errors import ExitCode, classify
    from memento_skills.graph.models import EndpointUnreachableError, ModelConfigError
    from memento_skills.graph.models.local_server import GGUFFileError, LocalLLMError
    from memento_skills.stores.skill import SkillNotFoundError

    cases = [
        (ModelConfigError("bad setting"), ExitCode.BAD_INPUT),
        (GGUFFileError("no file"), ExitCode.BAD_INPUT),
        (SkillNotFoundError("no skill named 'x'"), ExitCode.BAD_INPUT),
        (FileNotFoundError(2, "No such file or directory", "/x/y"), ExitCode.BAD_INPUT),
        (EndpointUnreachableError("down"), ExitCode.UNREACHABLE),
        (LocalLLMError("server exited"), ExitCode.UNREACHABLE),
        (ConnectionError("chroma down"), ExitCode.UNREACHABLE),
        (RuntimeError("a bug"), ExitCode.INTERNAL),
    ]
    for error, code in cases:
        assert classify(error)[0] is code, error
    assert "/x/y" in classify(cases[3][0])[1]
    assert "--debug" in classify(RuntimeError("a bug"))[1]
