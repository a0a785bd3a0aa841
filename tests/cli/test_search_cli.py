"""`memento run --search-tries`: the learning-time search through the command, a scripted
OpenAI-compatible endpoint on loopback and the real sandbox; its progress lines, its report in
the --json result and the run log, and a bad budget refused in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from support.commands import memento
from support.scripted_endpoint import forced_tool, scripted_endpoint, tool_results

TASK = "Compute the sum of the squares of 3, 4 and 12."
SCRIPT = "values = [3, 4, 12]\nprint(sum(v**2 for v in values))\n"


def reply(request: dict[str, Any]) -> str | dict[str, Any]:
    """Executor: guesses, or computes the wrong thing when forced to python. Writer: explains,
    patches, and writes a program that is right."""
    tool = forced_tool(request)
    writer = {
        "Attribution": {"cause": "skill", "action": "refine", "tip": "Compute it."},
        "SkillPatch": {"edits": [], "append": "Check the result.", "rationale": "care"},
        "NewSkill": {
            "name": "sum-of-squares",
            "description": "Add up the squares of whole numbers.",
            "body": "# Sum of squares\n1. Square each number, add them up.",
            "allowed_tools": ["python"],
        },
    }
    if "Write a Python program" in json.dumps(request["messages"]):  # asked in plain text
        return f"```python\n{SCRIPT}```"
    if tool in writer:
        return {"tool": tool, "arguments": writer[str(tool)]}
    results = tool_results(request)
    if results:
        printed = re.findall(r"-?\d+", results[-1].split("stdout:")[-1])
        return {"tool": "submit_answer", "arguments": {"answer": printed[-1] if printed else "0"}}
    if tool == "python":
        return {"tool": "python", "arguments": {"code": "print(3 + 4 + 12)"}}
    return "150"


def test_run_searches_a_failed_task_and_reports_it(home: Path, tmp_path: Path) -> None:
    with scripted_endpoint(reply) as (url, seen):
        args = ("--base-url", url, "--model", "scripted", "--max-attempts", "1")
        proc = memento(
            "run", TASK, "--ground-truth", "169", *args, "--search-tries", "3", home=home
        )
        as_json = memento(
            "run",
            TASK,
            "--ground-truth",
            "169",
            *args,
            "--search-tries",
            "3",
            "--json",
            home=tmp_path / "fresh",
        )
    assert proc.returncode == 1, proc.stderr  # the attempt itself failed
    lines = proc.stderr.splitlines()
    assert any(line.startswith("  search try 1: sample-1 fail") for line in lines), proc.stderr
    found = [line for line in lines if line.startswith("search: found by program-1")]
    assert len(found) == 1 and "3 tries" in found[0], proc.stderr
    report = json.loads(as_json.stdout)["search"]
    assert report["found_by"] == "program-1" and report["tries"] == 3
    assert report["outcomes"] == [
        "sample-1: fail",
        "forced-python: fail",
        "program-1: pass (3 values lifted)",
    ]
    records = [json.loads(line) for line in (home / "runs.jsonl").read_text().splitlines()]
    (record,) = records
    assert record["search"]["outcomes"] == report["outcomes"]
    writer_prompts = [
        json.dumps(r["messages"])
        for r in seen
        if forced_tool(r) == "SkillPatch" or "Write a Python program" in json.dumps(r["messages"])
    ]
    assert writer_prompts and all("169" not in p for p in writer_prompts)


def test_search_off_and_a_bad_budget(home: Path) -> None:
    with scripted_endpoint(reply) as (url, seen):
        args = ("--base-url", url, "--model", "scripted", "--max-attempts", "1", "--json")
        off = memento("run", TASK, "--ground-truth", "169", *args, "--search-tries", "0", home=home)
        assert json.loads(off.stdout)["search"]["stopped"] == "off"
        assert not [r for r in seen if forced_tool(r) == "Program"]
        bad = memento("run", TASK, "--search-tries", "-1", *args, home=home)
    assert bad.returncode == 2
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--search-tries" in lines[0] and "Traceback" not in bad.stderr


def test_learn_refuses_a_bad_search_budget_before_running(home: Path, tmp_path: Path) -> None:
    suite = tmp_path / "tasks.jsonl"
    suite.write_text(json.dumps({"id": "a", "question": TASK, "answer": "169"}) + "\n")
    run_dir = tmp_path / "run"
    proc = memento(
        "learn",
        *("--suite", "jsonl", "--path", str(suite), "--run-dir", str(run_dir)),
        *("--search-tokens", "0"),
        home=home,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--search-tokens" in lines[0], proc.stderr
    assert not run_dir.exists()  # refused before the run dir was made
