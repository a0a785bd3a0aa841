"""The `memento` command line, run as a real subprocess the way users and scripts run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

MEMENTO = shutil.which("memento") or str(Path(__file__).resolve().parents[1] / ".venv/bin/memento")


def memento(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMENTO_HOME": str(home), "ORT_DISABLE_TELEMETRY": "1", "NO_COLOR": "1"}
    env.pop("MEMENTO_SKILLS_DIR", None)
    env.pop("MEMENTO_INDEX_DIR", None)
    proc = subprocess.run([MEMENTO, *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_list_json_shows_seed_skills(home: Path) -> None:
    data = json.loads(memento("skills", "list", "--json", home=home).stdout)
    names = {s["name"] for s in data["skills"]}
    assert {"python", "web-search", "terminal", "filesystem", "skill-creator"} <= names
    assert data["errors"] == []
    human = memento("skills", "list", home=home).stdout
    assert "python" in human and "seed" in human


def test_show_history_diff_rollback(home: Path, tmp_path: Path) -> None:
    from memento_skills.stores.library import SkillLibrary

    memento("skills", "list", home=home)
    lib = SkillLibrary(home / "skills")
    lib.update("python", body=lib.get("python").body + "\n\nExtra line for the test.")
    shown = json.loads(memento("skills", "show", "python", "--json", home=home).stdout)
    assert shown["version"] == 2 and "Extra line" in shown["body"]
    hist = json.loads(memento("skills", "history", "python", "--json", home=home).stdout)
    assert [h["version"] for h in hist] == [1, 2]
    diff = json.loads(memento("skills", "diff", "python", "1", "2", "--json", home=home).stdout)
    assert "+Extra line for the test." in diff["diff"]
    rolled = json.loads(memento("skills", "rollback", "python", "1", "--json", home=home).stdout)
    assert rolled["version"] == 3 and rolled["parent_version"] == 1


def test_errors_are_one_clean_line_and_exit_2(home: Path) -> None:
    proc = memento("skills", "show", "no-such-skill", home=home, check=False)
    assert proc.returncode == 2
    assert "no skill named 'no-such-skill'" in proc.stderr and "Traceback" not in proc.stderr
    proc = memento("skills", "show", "../etc", home=home, check=False)
    assert proc.returncode == 2 and "refused" in proc.stderr


def test_validate_reports_malformed_and_fails(home: Path, tmp_path: Path) -> None:
    lib_dir = tmp_path / "lib"
    (lib_dir / "bad-one").mkdir(parents=True)
    (lib_dir / "bad-one" / "SKILL.md").write_text("---\nname: bad-one\n---\nbody\n")
    proc = memento("skills", "validate", "--dir", str(lib_dir), "--json", home=home, check=False)
    assert proc.returncode == 1
    err = json.loads(proc.stdout)["errors"][0]
    assert err["problems"][0]["field"] == "description" and err["problems"][0]["fix"]


def test_import_export_sync(home: Path, tmp_path: Path) -> None:
    pack = tmp_path / "pack" / "csv-clean"
    pack.mkdir(parents=True)
    (pack / "SKILL.md").write_text(
        "---\nname: csv-clean\ndescription: Clean CSV files. Use when a CSV is messy.\n---\nSteps.\n"
    )
    imported = json.loads(memento("skills", "import", str(pack.parent), "--json", home=home).stdout)
    assert imported["imported"] == ["csv-clean"]
    listed = json.loads(memento("skills", "list", "--json", home=home).stdout)
    assert any(s["name"] == "csv-clean" and not s["trusted"] for s in listed["skills"])
    zpath = tmp_path / "all.zip"
    exported = json.loads(memento("skills", "export", str(zpath), "--json", home=home).stdout)
    assert "csv-clean" in exported["skills"] and zpath.exists()
    first = json.loads(memento("skills", "sync", "--json", home=home).stdout)
    assert first["added"] == len(listed["skills"]) and first["embedded"] == first["added"]
    second = json.loads(memento("skills", "sync", "--json", home=home).stdout)
    assert second["embedded"] == 0 and second["unchanged"] == first["added"]
