"""The seed skills ship with the package: each must load, route sensibly and run its scripts.

Scripts are run for real in subprocesses (never imported), exactly as `run_skill_script` would,
so a broken helper or a dangling `references/` link fails here rather than in an agent run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import AGENT_TOOLS, SKILL_FILE, Skill, parse_skill

SKILLS_DIR = Path(__file__).resolve().parents[2] / "skills"
EXPECTED = {"web-search", "terminal", "filesystem", "python", "skill-creator"}
REFERENCE = re.compile(r"(?<![\w/.-])((?:references|scripts|assets)/[\w./-]*[\w-])")
MAX_BODY_LINES = 150


def skill_folders() -> list[Path]:
    return sorted(
        p for p in SKILLS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    )


def load(folder: Path) -> Skill:
    path = folder / SKILL_FILE
    return parse_skill(path.read_bytes(), path, folder_name=folder.name)


def scripts() -> list[Path]:
    return sorted(p for folder in skill_folders() for p in (folder / "scripts").glob("*.py"))


def run(script: Path, *args: str, stdin: str | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


CALC = SKILLS_DIR / "python" / "scripts" / "calc.py"
PEEK = SKILLS_DIR / "filesystem" / "scripts" / "peek.py"
VALIDATE = SKILLS_DIR / "skill-creator" / "scripts" / "validate_skill.py"


# ------------------------------------------------------------------ format and content


def test_the_five_seed_skills_are_present():
    assert {p.name for p in skill_folders()} == EXPECTED


@pytest.mark.parametrize("folder", skill_folders(), ids=lambda p: p.name)
def test_skill_parses_as_a_seed_at_version_one(folder: Path):
    skill = load(folder)  # raises SkillValidationError listing every problem
    assert skill.name == folder.name
    assert skill.provenance == "seed"
    assert skill.version == 1
    assert skill.license == "Apache-2.0"
    assert skill.body.count("\n") + 1 <= MAX_BODY_LINES


@pytest.mark.parametrize("folder", skill_folders(), ids=lambda p: p.name)
def test_description_says_when_and_when_not(folder: Path):
    description = load(folder).description
    assert "Use when" in description, "say which tasks should select the skill"
    assert "Do not use" in description, "name the near-misses the skill must not catch"


@pytest.mark.parametrize("folder", skill_folders(), ids=lambda p: p.name)
def test_allowed_tools_are_real_agent_tools(folder: Path):
    tools = set(load(folder).allowed_tools)
    assert tools <= set(AGENT_TOOLS), f"unknown tools: {sorted(tools - set(AGENT_TOOLS))}"
    assert "submit_answer" in tools


@pytest.mark.parametrize("folder", skill_folders(), ids=lambda p: p.name)
def test_body_mentions_only_existing_files_and_every_bundled_file(folder: Path):
    body = load(folder).body
    mentioned = set(REFERENCE.findall(body))
    missing = sorted(m for m in mentioned if not (folder / m).is_file())
    assert not missing, f"{folder.name}/SKILL.md points to files that do not exist: {missing}"
    bundled = {
        str(p.relative_to(folder))
        for sub in ("references", "scripts", "assets")
        for p in (folder / sub).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    orphans = sorted(bundled - mentioned)
    assert not orphans, f"{folder.name}: bundled files the body never mentions: {orphans}"


def test_tool_names_in_bodies_are_spelled_as_the_agent_knows_them():
    """A body that says `bash` or `search` would send the agent after a tool it lacks."""
    for folder in skill_folders():
        body = load(folder).body
        for wrong in ("`bash`", "`search`", "`run_python`", "`final_answer`", "`read`"):
            assert wrong not in body, f"{folder.name} mentions {wrong}"


def test_python_skill_pushes_computing_with_the_python_tool():
    skill = load(SKILLS_DIR / "python")
    first_lines = "\n".join(skill.body.splitlines()[:12])
    assert "`python`" in first_lines and "print" in first_lines
    assert "submit_answer" in first_lines
    assert skill.allowed_tools[0] == "python"


def test_seed_library_loads_without_errors(tmp_path: Path):
    shutil.copytree(
        SKILLS_DIR, tmp_path / "lib", ignore=shutil.ignore_patterns("__init__.py", "__pycache__")
    )
    report = SkillLibrary(tmp_path / "lib").scan()
    assert not report.errors, [str(e) for e in report.errors]
    assert {s.name for s in report.skills} == EXPECTED


def test_skill_template_is_a_valid_skill():
    template = SKILLS_DIR / "skill-creator" / "assets" / "SKILL-template.md"
    skill = parse_skill(template.read_text(), template, folder_name="capability-name")
    assert skill.provenance == "learned"


# ------------------------------------------------------------------ scripts, run for real


@pytest.mark.parametrize("script", scripts(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_script_answers_help(script: Path):
    result = run(script, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_expected_scripts_exist():
    assert {p.name for p in scripts()} == {"calc.py", "peek.py", "validate_skill.py"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["2**64 - 1"], "18446744073709551615"),
        (["2", "**", "64", "-", "1"], "18446744073709551615"),  # unquoted words are joined
        (["-5 + 3"], "-2"),
        (["17 * 2340 / 100"], "397.8"),
        (["--exact", "1/3 + 1/6"], "1/2"),
        (["--exact", "0.1 + 0.2"], "3/10"),
        (["--digits", "2", "sqrt(2); _ * 10"], "1.41\n14.14"),
        (["--digits", "0", "2.5"], "3"),
        (["round(2.5)"], "2"),
        (["comb(52, 5); factorial(10)"], "2598960\n3628800"),
        (["2^10"], "1024"),
        (["mean([1, 2, 3, 4])"], "2.5"),
    ],
)
def test_calc_computes(args: list[str], expected: str):
    result = run(CALC, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_calc_reads_stdin_lines():
    result = run(CALC, stdin="2 + 3\n_ * 4\n")
    assert result.stdout.split() == ["5", "20"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('echo pwned')", "not allowed"),
        ("(1).real", "Attribute is not allowed"),
        ("open('x')", "not allowed"),
        ("[1] * 10**9", "lists can only be passed"),
        ("1 / 0", "division by zero"),
        ("9**9**9", "too large"),
        ("pow(10, 10**9)", "too large"),
        ("factorial(10**6)", "too large"),
        ("foo + 1", "unknown name 'foo'"),
        ("2 +", "not a valid expression"),
    ],
)
def test_calc_refuses_unsafe_or_bad_input_quickly(expression: str, message: str):
    started = time.monotonic()
    result = run(CALC, expression)
    assert time.monotonic() - started < 10
    assert result.returncode == 2
    assert message in result.stderr
    assert "pwned" not in result.stdout


def test_peek_sees_through_wrong_extensions(tmp_path: Path):
    (tmp_path / "people.dat").write_text("name;age\nAnn;31\nBo;25\nCy;40\n")
    (tmp_path / "report.txt").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Page >>\n")
    with zipfile.ZipFile(tmp_path / "book.bin", "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    (tmp_path / "data.json").write_text('{"items": [{"id": 1}, {"id": 2}], "ok": true}')
    result = run(PEEK, "people.dat", "report.txt", "book.bin", "data.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "delimiter ';', 2 columns, 3" in out
    assert "kind: pdf" in out and "pypdf" in out
    assert "kind: xlsx" in out and "read_excel" in out
    assert "object with 2 keys" in out and "array of 2" in out


def test_peek_reports_a_missing_file(tmp_path: Path):
    result = run(PEEK, "nope.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.csv does not exist" in result.stderr


def test_validate_accepts_every_seed_skill():
    result = run(VALIDATE, *(str(p) for p in skill_folders()))
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("OK ") == len(EXPECTED)
    assert "memento parser" in result.stdout
    assert "warning" not in result.stdout


def _broken_skill(tmp_path: Path) -> Path:
    folder = tmp_path / "broken"
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "tool.py").write_text("print('hi')\n")
    (folder / SKILL_FILE).write_text(
        "---\nname: broken\ndescription: Does things.\nallowed-tools: python bash\n---\n\n"
        "Read references/missing.md first.\n"
    )
    return folder


@pytest.mark.parametrize("isolated", [False, True], ids=["memento-parser", "no-site-packages"])
def test_validate_reports_errors_and_warnings(tmp_path: Path, isolated: bool):
    folder = _broken_skill(tmp_path)
    flags = ["-S"] if isolated else []  # -S: memento_skills not importable -> basic parser
    result = subprocess.run(
        [sys.executable, *flags, str(VALIDATE), str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    out = result.stdout
    assert ("basic parser" if isolated else "memento parser") in out
    if not isolated:
        # the project's parser refuses a tool the agent does not have, before any other check
        assert "unknown tool(s) bash" in out
        return
    assert "references/missing.md but the file does not exist" in out
    assert "scripts/tool.py is never mentioned" in out
    assert "Use when" in out
    assert "['bash']" in out


def test_validate_rejects_a_bad_frontmatter_field(tmp_path: Path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / SKILL_FILE).write_text(
        "---\nname: odd\ndescription: Use when testing.\nversion: 2\n---\n\nDo it.\n"
    )
    result = run(VALIDATE, "--json", str(folder))
    assert result.returncode == 1
    assert "version: is not an Agent Skills frontmatter field" in result.stdout
