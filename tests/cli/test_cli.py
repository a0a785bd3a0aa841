"""The `memento` command line, run as a real subprocess the way users and scripts run it."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from support.commands import MEMENTO


def memento(
    *args: str,
    home: Path,
    check: bool = True,
    timeout: float = 300,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMENTO_HOME": str(home), "ORT_DISABLE_TELEMETRY": "1", "NO_COLOR": "1"}
    env.update(extra_env or {})
    env.pop("MEMENTO_SKILLS_DIR", None)
    env.pop("MEMENTO_INDEX_DIR", None)
    proc = subprocess.run(
        [MEMENTO, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


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


# ---- hostile packs and skill files: each ends in one clean error line, exit 1, nothing written

VALID = "---\nname: {name}\ndescription: Does {name}. Use for {name}.\n---\n\nSteps.\n"


def tree_state(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for folders and special files)."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        regular = p.is_file() and not p.is_symlink() and not stat.S_ISFIFO(p.lstat().st_mode)
        out[rel] = p.read_bytes() if regular else None
    return out


def refused(home: Path, tmp_path: Path, *args: str, expect: str, code: int = 1) -> str:
    """Run a command that must be refused: one line on stderr (validate: its report's one FAIL
    line on stdout), exit `code` (2: the whole pack is bad input; 1: a skill in it was refused),
    the library unchanged, nothing left in the temporary folder."""
    memento("skills", "list", home=home)  # seeds the library
    before = tree_state(home / "skills")
    scratch = tmp_path / "tmpdir"  # the command's own temporary folder, to see it left empty
    scratch.mkdir(exist_ok=True)
    started = time.monotonic()
    proc = memento(*args, home=home, check=False, timeout=60, extra_env={"TMPDIR": str(scratch)})
    assert time.monotonic() - started < 30, "took too long: was something read whole?"
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    report = proc.stdout if args[:2] == ("skills", "validate") else proc.stderr
    lines = [ln for ln in report.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout + proc.stderr
    assert expect in lines[0], lines[0]
    assert tree_state(home / "skills") == before
    assert list(scratch.iterdir()) == []
    return lines[0]


def patched_zip(path: Path, member: str, *, offset_local: int, offset_central: int, value: bytes):
    """Write a zip of one valid skill plus `member`, then overwrite a header field of `member`."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok/SKILL.md", VALID.format(name="ok"))
        zf.writestr(member, "x = 1\n" * 200)
    data = bytearray(path.read_bytes())
    local = data.rfind(b"PK\x03\x04")
    central = data.rfind(b"PK\x01\x02")
    data[local + offset_local : local + offset_local + len(value)] = value
    data[central + offset_central : central + offset_central + len(value)] = value
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("size-smaller", "cannot be unpacked"),
        ("size-larger", "cannot be unpacked"),
        ("size-huge", "unpacks to more than"),
        ("encrypted", "is encrypted"),
        ("deflate64", "compression method 9 is not supported"),
    ],
)
def test_zip_member_lies_are_one_line_errors(
    home: Path, tmp_path: Path, case: str, expect: str
) -> None:
    zpath = tmp_path / f"{case}.zip"
    member = "ok/scripts/run.py"
    if case.startswith("size"):
        size = {"size-smaller": 3, "size-larger": 10**6, "size-huge": 0xFFFF0000}[case]
        patched_zip(
            zpath, member, offset_local=22, offset_central=24, value=struct.pack("<I", size)
        )
    elif case == "encrypted":
        patched_zip(zpath, member, offset_local=6, offset_central=8, value=struct.pack("<H", 1))
    else:
        patched_zip(zpath, member, offset_local=8, offset_central=10, value=struct.pack("<H", 9))
    line = refused(home, tmp_path, "skills", "import", str(zpath), expect=expect, code=2)
    if case != "size-huge":
        assert f"{zpath}:{member}" in line  # the member as named in the zip


def test_zip_file_folder_clash_and_duplicate_names_are_refused(home: Path, tmp_path: Path) -> None:
    clash = tmp_path / "clash.zip"
    with zipfile.ZipFile(clash, "w") as zf:
        zf.writestr("ok/SKILL.md", VALID.format(name="ok"))
        zf.writestr("ok/scripts", "a file")
        zf.writestr("ok/scripts/run.py", "print(1)\n")
    refused(
        home, tmp_path, "skills", "import", str(clash), expect="both a file and a folder", code=2
    )
    dup = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it writes
        with zipfile.ZipFile(dup, "w") as zf:
            zf.writestr("ok/SKILL.md", VALID.format(name="ok"))
            zf.writestr("ok/SKILL.md", VALID.format(name="ok").replace("Steps", "Evil"))
    refused(home, tmp_path, "skills", "import", str(dup), expect="holds this name twice", code=2)


def test_fifo_in_a_folder_pack_does_not_hang_import(home: Path, tmp_path: Path) -> None:
    skill = tmp_path / "pack" / "ok"
    (skill / "scripts").mkdir(parents=True)
    (skill / "SKILL.md").write_text(VALID.format(name="ok"))
    os.mkfifo(skill / "scripts" / "pipe")
    refused(home, tmp_path, "skills", "import", str(tmp_path / "pack"), expect="FIFO")
    os.unlink(skill / "scripts" / "pipe")
    os.mkfifo(skill / "SKILL.md.tmp")
    (skill / "SKILL.md").unlink()
    os.rename(skill / "SKILL.md.tmp", skill / "SKILL.md")  # SKILL.md itself a FIFO
    refused(home, tmp_path, "skills", "import", str(tmp_path / "pack"), expect="FIFO")


def test_fifo_in_a_skill_folder_does_not_hang_export(home: Path, tmp_path: Path) -> None:
    memento("skills", "list", home=home)
    scripts = home / "skills" / "python" / "scripts"
    scripts.mkdir(exist_ok=True)
    os.mkfifo(scripts / "pipe")
    zpath = tmp_path / "out" / "all.zip"
    refused(home, tmp_path, "skills", "export", str(zpath), expect="FIFO", code=2)
    assert not zpath.exists() and not list(zpath.parent.glob(".*partial"))


def test_a_sparse_3gb_file_is_refused_without_reading_it(home: Path, tmp_path: Path) -> None:
    skill = tmp_path / "pack" / "ok"
    (skill / "assets").mkdir(parents=True)
    (skill / "SKILL.md").write_text(VALID.format(name="ok"))
    with open(skill / "assets" / "big.bin", "wb") as f:
        f.truncate(3 * 1024**3)
    refused(home, tmp_path, "skills", "import", str(tmp_path / "pack"), expect="3221225472 bytes")
    lone = tmp_path / "lone" / "ok"
    lone.mkdir(parents=True)
    with open(lone / "SKILL.md", "wb") as f:
        f.truncate(3 * 1024**3)
    refused(home, tmp_path, "skills", "validate", str(lone), expect="3221225472 bytes")


def test_validate_does_not_follow_a_symlinked_skill_md(home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text(VALID.format(name="ok"))
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "SKILL.md").symlink_to(outside)
    refused(home, tmp_path, "skills", "validate", str(tmp_path / "ok"), expect="symlink")


BILLION_LAUGHS = (
    "---\nname: ok\ndescription: &a0 lol\nmetadata:\n"
    + "".join(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
    + "---\n\nSteps.\n"
)


def test_yaml_alias_bombs_and_deep_nesting_are_refused(home: Path, tmp_path: Path) -> None:
    assert len(BILLION_LAUGHS) < 1024
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "SKILL.md").write_text(BILLION_LAUGHS)
    refused(home, tmp_path, "skills", "validate", str(tmp_path / "ok"), expect="aliases expand")
    refused(home, tmp_path, "skills", "import", str(tmp_path / "ok"), expect="aliases expand")
    deep = "---\nname: ok\ndescription: " + "[" * 5000 + "]" * 5000 + "\n---\n\nSteps.\n"
    (tmp_path / "ok" / "SKILL.md").write_text(deep)
    refused(home, tmp_path, "skills", "validate", str(tmp_path / "ok"), expect="nested too deeply")


def test_import_prints_adaptations_and_refusals_one_line_each(home: Path, tmp_path: Path) -> None:
    pack = tmp_path / "repo" / "skills"
    (pack / "review-diff").mkdir(parents=True)
    (pack / "review-diff" / "SKILL.md").write_text(
        "---\nname: review-diff\ndescription: Review diffs. Use for review.\n"
        "allowed-tools: Bash(git diff:*) Read Grep Task\n---\n\nSteps.\n"
    )
    (pack / "long-desc").mkdir()
    (pack / "long-desc" / "SKILL.md").write_text(
        "---\nname: long-desc\ndescription: " + "Use it well. " * 100 + "\n---\n\nSteps.\n"
    )
    proc = memento("skills", "import", str(tmp_path / "repo"), home=home, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "imported review-diff" in proc.stdout and "1 imported" in proc.stdout
    err_lines = proc.stderr.splitlines()
    assert any(ln.startswith("adapted review-diff: allowed-tools:") for ln in err_lines)
    assert any(ln.startswith("warning: review-diff:") and "Task" in ln for ln in err_lines)
    (refusal,) = [ln for ln in err_lines if ln.startswith("refused ")]
    assert "long-desc/SKILL.md: description: 1299 characters" in refusal
    assert "--lenient" in refusal
    proc = memento("skills", "import", "--lenient", str(tmp_path / "repo"), "--json", home=home)
    data = json.loads(proc.stdout)
    assert data["imported"] == ["long-desc"] and data["skipped"] == ["review-diff"]
    assert "cut to" in data["adapted"]["long-desc"][0]
