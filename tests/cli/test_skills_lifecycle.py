"""`memento skills list/show/history` as subprocesses show lifecycle and lift (and a bad value
is one line naming the field and the fix)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path
from typing import Any

from memento_skills.stores.cases import Case, CaseStore
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import Lift, Skill

from support.commands import MEMENTO, QUIET, memento
from support.scripted_endpoint import ScriptedEndpoint, tool_results

WIDE = {"COLUMNS": "220"}


def learned_library(home: Path) -> SkillLibrary:
    assert memento("skills", "list", home=home).returncode == 0  # seeds the library
    lib = SkillLibrary(home / "skills")
    made = lib.create(
        Skill(
            name="roman-numerals",
            description="Convert whole numbers to Roman numerals. Use for Roman numeral tasks.",
            body="Call python with a table of values and symbols, then submit the numeral.",
            provenance="learned",
            lifecycle="candidate",
        )
    )
    lib.record_lift(made.name, Lift(3, 4, 1, 4, made.version))
    lib.set_lifecycle(made.name, "active", reason="lift +0.50 on 4 cases")
    lib.create(
        Skill(
            name="old-guess",
            description="Guess an answer quickly. Use when in a hurry.",
            body="Answer 0.",
            provenance="learned",
            lifecycle="deprecated",
            lifecycle_reason="lift -0.50",
        )
    )
    return lib


def test_list_shows_lifecycle_and_lift_columns_and_json_carries_them(home: Path) -> None:
    learned_library(home)
    data = json.loads(memento("skills", "list", "--json", home=home).stdout)
    by_name = {s["name"]: s for s in data["skills"]}
    roman = by_name["roman-numerals"]
    assert roman["lifecycle"] == "active" and roman["lifecycle_reason"] == "lift +0.50 on 4 cases"
    assert roman["lift"] == {
        "with_passed": 3,
        "with_total": 4,
        "without_passed": 1,
        "without_total": 4,
        "version": 1,
        "value": 0.5,
    }
    assert by_name["python"]["lifecycle"] == "active" and by_name["python"]["lift"] is None
    assert by_name["old-guess"]["lifecycle"] == "deprecated"

    human = memento("skills", "list", home=home, **WIDE).stdout
    header = next(line for line in human.splitlines() if "provenance" in line)
    assert "lifecycle" in header and "lift" in header
    row = next(line for line in human.splitlines() if "roman-numerals" in line)
    assert "active" in row and "+0.50 (3/4 vs 1/4)" in row
    row = next(line for line in human.splitlines() if "old-guess" in line)
    assert "deprecated" in row and " - " in row  # never measured
    seed = next(line for line in human.splitlines() if " python " in line)
    assert "active" in seed


def test_show_prints_lifecycle_and_lift_raw_json_and_on_a_terminal(home: Path) -> None:
    learned_library(home)
    raw = memento("skills", "show", "roman-numerals", home=home).stdout  # piped: the file
    assert "memento-lifecycle: active" in raw
    assert "memento-lift: with 3/4 without 1/4 v1" in raw
    shown = json.loads(memento("skills", "show", "roman-numerals", "--json", home=home).stdout)
    assert shown["lifecycle"] == "active" and shown["lift"]["value"] == 0.5

    main, child = pty.openpty()  # a terminal: the readable view
    env = {**os.environ, **QUIET, "MEMENTO_HOME": str(home), "NO_COLOR": "1", **WIDE}
    proc = subprocess.Popen(
        [MEMENTO, "skills", "show", "roman-numerals"], stdout=child, stderr=child, env=env
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=120) == 0
    screen = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode("utf-8", "replace"))
    assert "lifecycle: active (lift +0.50 on 4 cases)" in screen
    assert "lift: +0.50 (3/4 vs 1/4), measured on v1" in screen


def test_history_shows_each_versions_lifecycle(home: Path) -> None:
    learned_library(home)
    hist = json.loads(memento("skills", "history", "roman-numerals", "--json", home=home).stdout)
    assert [(h["version"], h["lifecycle"], h["lift"]) for h in hist] == [
        (1, "candidate", ""),
        (2, "candidate", "with 3/4 without 1/4 v1"),
        (3, "active", "with 3/4 without 1/4 v1"),
    ]


def test_a_bad_lifecycle_is_one_line_naming_field_and_fix(home: Path) -> None:
    lib = learned_library(home)
    path = lib.skill_dir("roman-numerals") / "SKILL.md"
    path.write_text(
        path.read_text().replace("memento-lifecycle: active", "memento-lifecycle: live")
    )
    listed = memento("skills", "list", home=home, **WIDE)
    assert listed.returncode == 0 and "roman-numerals" not in listed.stdout
    assert "skipped malformed skill" in listed.stderr and "roman-numerals" in listed.stderr
    (line,) = [ln for ln in listed.stderr.splitlines() if "memento-lifecycle" in ln]
    assert "metadata.memento-lifecycle: 'live' is unknown" in line
    assert "fix: use one of draft, candidate, active, deprecated" in line
    shown = memento("skills", "show", "roman-numerals", home=home)
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert "metadata.memento-lifecycle" in shown.stderr


def digit_sums(request: dict[str, Any]) -> str | dict[str, Any]:
    """An executor that sums digits with python when the sum-digits skill is in its prompt and
    answers 0 without it (over HTTP, as any OpenAI-compatible server)."""
    messages = request["messages"]
    results = tool_results(request)
    if results:
        value = re.findall(r"-?\d+", results[-1].split("stdout:")[-1])[0]
        return {"tool": "submit_answer", "arguments": {"answer": value}}
    system = " ".join(str(m.get("content")) for m in messages if m.get("role") == "system")
    if "sum-digits" not in system:
        return "0"
    task = next(str(m.get("content")) for m in messages if m.get("role") == "user")
    number = re.findall(r"\d+", task)[-1]
    return {"tool": "python", "arguments": {"code": f"print(sum(map(int, '{number}')))"}}


def without_skill(fake: ScriptedEndpoint) -> int:
    """Requests that started an attempt with no skill in the prompt."""
    return sum(
        1
        for body in fake.requests
        if not tool_results(body)
        and "sum-digits"
        not in " ".join(str(m.get("content")) for m in body["messages"] if m["role"] == "system")
    )


def test_lift_measures_through_the_endpoint_keeps_it_and_moves_the_lifecycle(home: Path) -> None:
    assert memento("skills", "list", home=home).returncode == 0
    lib = SkillLibrary(home / "skills")
    lib.create(
        Skill(
            name="sum-digits",
            description="Add up the decimal digits of a whole number. Use for digit sums.",
            body="Call python to sum the digits, then submit the printed number.",
            allowed_tools=("python",),
            provenance="learned",
            lifecycle="candidate",
        )
    )
    cases = CaseStore(lib.root)
    for n in ("4821", "9007"):
        cases.add(
            "sum-digits", Case(f"What is the sum of the digits of {n}?", str(sum(map(int, n))))
        )
    with ScriptedEndpoint(digit_sums) as fake:
        args = ("skills", "lift", "--base-url", fake.base_url, "--model", "scripted", "--json")
        proc = memento(*args, home=home)
        assert proc.returncode == 0, proc.stderr
        (row,) = json.loads(proc.stdout)["skills"]  # the one learned skill
        assert (row["name"], row["was"], row["lifecycle"]) == ("sum-digits", "candidate", "active")
        assert row["lift"]["value"] == 1.0 and row["lift"]["without_total"] == 2
        assert without_skill(fake) == 2
        again = memento(*args[:2], "sum-digits", *args[2:-1], home=home)
        assert again.returncode == 0, again.stderr
        assert "sum-digits: lift +1.00 (2/2 vs 0/2), active" in again.stdout
        assert without_skill(fake) == 2  # the cache spared the replays without the skill
    shown = json.loads(memento("skills", "show", "sum-digits", "--json", home=home).stdout)
    assert shown["lifecycle"] == "active" and shown["lift"]["with_passed"] == 2


def test_lift_refuses_an_unknown_skill_no_endpoint_and_a_dead_one_changing_nothing(
    home: Path,
) -> None:
    learned_library(home)
    before = (home / "skills" / "roman-numerals" / "SKILL.md").read_bytes()
    with ScriptedEndpoint(digit_sums) as fake:
        url = fake.base_url
        unknown = memento("skills", "lift", "no-such-skill", "--base-url", url, home=home)
        assert unknown.returncode == 2 and "no skill named 'no-such-skill'" in unknown.stderr
        assert fake.requests == []  # refused before any replay
    offline = memento("skills", "lift", home=home)
    assert offline.returncode == 2 and "lift needs a model endpoint" in offline.stderr
    dead = memento("skills", "lift", "--base-url", url, "--model", "scripted", home=home)
    assert dead.returncode == 3, dead.stderr
    for proc in (unknown, offline, dead):
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (home / "skills" / "roman-numerals" / "SKILL.md").read_bytes() == before
