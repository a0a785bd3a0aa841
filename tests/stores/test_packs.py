"""Importing and exporting skill packs: provenance, trust, and hostile archives."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.packs import export_pack, import_pack
from memento_skills.stores.settings import open_library, seed_skills_dir
from memento_skills.stores.skill import SkillError, UnsafePathError

SKILL = "---\nname: {name}\ndescription: Does {name}. Use when a task needs {name}.\n---\n\nSteps for {name}.\n"


def pack_dir(root: Path, *names: str) -> Path:
    for n in names:
        (root / n / "scripts").mkdir(parents=True)
        (root / n / "SKILL.md").write_text(SKILL.format(name=n))
        (root / n / "scripts" / "go.py").write_text("print('go')\n")
    return root


def test_import_folder_marks_untrusted_with_provenance(tmp_path: Path) -> None:
    src = pack_dir(tmp_path / "pack", "csv-clean", "json-merge")
    (src / "broken").mkdir()
    (src / "broken" / "SKILL.md").write_text("---\nname: other\n---\n")
    lib = SkillLibrary(tmp_path / "lib")
    report = import_pack(lib, src)
    assert report.imported == ["csv-clean", "json-merge"]
    assert len(report.errors) == 1 and "broken" in report.errors[0].file
    s = lib.get("csv-clean")
    assert s.provenance == "imported" and not s.trusted and s.source == "imported:pack"
    assert lib.list_files("csv-clean") == ["scripts/go.py"]
    # importing again skips, --replace replaces as a new version
    again = import_pack(lib, src)
    assert again.skipped == ["csv-clean", "json-merge"]
    replaced = import_pack(lib, src, replace=True)
    assert replaced.replaced == ["csv-clean", "json-merge"]
    assert lib.get("csv-clean").version == 2


def test_import_single_skill_folder(tmp_path: Path) -> None:
    src = pack_dir(tmp_path / "pack", "csv-clean") / "csv-clean"
    lib = SkillLibrary(tmp_path / "lib")
    assert import_pack(lib, src).imported == ["csv-clean"]


def test_export_then_import_zip_roundtrip(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    import_pack(lib, pack_dir(tmp_path / "pack", "csv-clean", "json-merge"))
    zpath = tmp_path / "out" / "skills.zip"
    assert export_pack(lib, zpath) == ["csv-clean", "json-merge"]
    with zipfile.ZipFile(zpath) as zf:
        assert sorted(zf.namelist()) == [
            "csv-clean/SKILL.md",
            "csv-clean/scripts/go.py",
            "json-merge/SKILL.md",
            "json-merge/scripts/go.py",
        ]
    other = SkillLibrary(tmp_path / "other")
    assert import_pack(other, zpath).imported == ["csv-clean", "json-merge"]
    with pytest.raises(SkillError):
        export_pack(lib, tmp_path / "x.zip", ["missing-skill"])


@pytest.mark.parametrize("member", ["../evil/SKILL.md", "/abs/SKILL.md", "ok/../../evil.txt"])
def test_zip_with_traversal_is_refused_before_writing(tmp_path: Path, member: str) -> None:
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("ok/SKILL.md", SKILL.format(name="ok"))
        zf.writestr(member, "pwned")
    lib = SkillLibrary(tmp_path / "lib" / "inner")
    with pytest.raises(UnsafePathError):
        import_pack(lib, zpath)
    assert lib.names() == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "lib" / "evil").exists()


def test_zip_with_symlink_member_is_refused(tmp_path: Path) -> None:
    zpath = tmp_path / "link.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("ok/SKILL.md", SKILL.format(name="ok"))
        info = zipfile.ZipInfo("ok/references/passwd")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafePathError, match="symlink"):
        import_pack(SkillLibrary(tmp_path / "lib"), zpath)


def test_folder_with_symlink_is_reported(tmp_path: Path) -> None:
    src = pack_dir(tmp_path / "pack", "csv-clean")
    (src / "csv-clean" / "references").mkdir()
    (src / "csv-clean" / "references" / "secret").symlink_to("/etc/passwd")
    report = import_pack(SkillLibrary(tmp_path / "lib"), src)
    assert report.imported == [] and "symlink" in str(report.errors[0])


def test_not_a_pack(tmp_path: Path) -> None:
    bogus = tmp_path / "x.txt"
    bogus.write_text("hello")
    with pytest.raises(SkillError, match="neither a folder nor a zip"):
        import_pack(SkillLibrary(tmp_path / "lib"), bogus)
    with pytest.raises(SkillError, match="does not exist"):
        import_pack(SkillLibrary(tmp_path / "lib"), tmp_path / "missing")


def test_open_library_seeds_a_new_library_once(tmp_path: Path) -> None:
    seeds = sorted(p.name for p in seed_skills_dir().iterdir() if (p / "SKILL.md").exists())
    lib = open_library(tmp_path / "lib")
    assert lib.names() == seeds and lib.errors == []
    assert all(s.provenance == "seed" and s.trusted for s in lib.skills())
    lib.delete(seeds[0])
    assert open_library(tmp_path / "lib").names() == seeds[1:]  # not re-seeded over user changes


def write_skill(folder: Path, frontmatter: str, body: str = "Steps.\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_text(f"---\n{frontmatter}---\n\n{body}", encoding="utf-8")
    return folder


def test_claude_code_allowed_tools_are_mapped_and_the_original_kept(tmp_path: Path) -> None:
    original = "Bash(git diff:*), Read, Grep, TodoWrite"
    write_skill(
        tmp_path / "pack" / "review-diff",
        f"name: review-diff\ndescription: Review a git diff. Use for code review.\n"
        f"allowed-tools: {original}\n",
    )
    lib = SkillLibrary(tmp_path / "lib")
    report = import_pack(lib, tmp_path / "pack")
    assert report.imported == ["review-diff"] and report.errors == []
    skill = lib.get("review-diff")  # read back from disk
    assert skill.allowed_tools == ("shell", "read_file", "list_dir")
    assert skill.metadata["memento-original-allowed-tools"] == original
    assert report.adapted["review-diff"] == [
        f"allowed-tools: {original!r} mapped to 'shell read_file list_dir'"
    ]
    assert any("TodoWrite not mapped" in w for w in report.warnings)
    assert any("Bash(git diff:*) became a tool without its argument" in w for w in report.warnings)
    # a YAML list of Claude Code names works too
    write_skill(
        tmp_path / "pack2" / "fetch-docs",
        "name: fetch-docs\ndescription: Fetch docs. Use for docs.\n"
        "allowed-tools:\n  - WebFetch\n  - WebSearch\n  - Write\n",
    )
    import_pack(lib, tmp_path / "pack2")
    assert lib.get("fetch-docs").allowed_tools == ("fetch_url", "web_search", "write_file")
    # our own names, comma-separated the Claude Code way, are accepted as written
    write_skill(
        tmp_path / "pack3" / "calc-sum",
        "name: calc-sum\ndescription: Add numbers. Use for sums.\nallowed-tools: python, read_file\n",
    )
    assert import_pack(lib, tmp_path / "pack3").imported == ["calc-sum"]
    assert lib.get("calc-sum").allowed_tools == ("python", "read_file")


def test_unknown_tool_message_keeps_each_name_whole(tmp_path: Path) -> None:
    from memento_skills.stores.skill import SkillValidationError, parse_skill

    text = "---\nname: x\ndescription: d.\nallowed-tools: Bash(git diff:*), Read, Grep\n---\nb\n"
    with pytest.raises(SkillValidationError) as e:
        parse_skill(text, "x/SKILL.md")
    assert "unknown tool(s) Bash(git diff:*), Read, Grep" in str(e.value)


def repo_tree(root: Path) -> Path:
    """A cloned skills repository: skills two levels down, docs and a template beside them."""
    (root / "spec").mkdir(parents=True)
    (root / "README.md").write_text("# skills\n")
    (root / "spec" / "spec.md").write_text("the spec\n")
    for name in ("csv-clean", "json-merge"):
        write_skill(
            root / "skills" / name, f"name: {name}\ndescription: Does {name}. Use for {name}.\n"
        )
        (root / "skills" / name / "scripts").mkdir()
        (root / "skills" / name / "scripts" / "go.py").write_text("print(1)\n")
    write_skill(root / "skills" / "bad-one", "name: bad-one\n")  # no description
    write_skill(root / ".github" / "hidden", "name: hidden\ndescription: d.\n")
    return root


def test_a_cloned_repository_imports_its_skills_at_any_depth(tmp_path: Path) -> None:
    repo = repo_tree(tmp_path / "skills-repo")
    lib = SkillLibrary(tmp_path / "lib")
    report = import_pack(lib, repo)
    assert report.imported == ["csv-clean", "json-merge"]
    assert [e.file for e in report.errors] == [str(repo / "skills" / "bad-one" / "SKILL.md")]
    assert lib.list_files("csv-clean") == ["scripts/go.py"]
    with pytest.raises(SkillError, match="no skill found"):
        import_pack(lib, repo / "spec")


def test_a_zip_of_a_repository_imports_and_errors_name_the_path_inside_it(tmp_path: Path) -> None:
    repo = repo_tree(tmp_path / "skills-repo")
    zpath = tmp_path / "repo.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(repo.rglob("*")):
            zf.write(p, p.relative_to(tmp_path).as_posix())
    report = import_pack(SkillLibrary(tmp_path / "lib"), zpath)
    assert report.imported == ["csv-clean", "json-merge"]
    (error,) = report.errors
    assert error.file == f"{zpath}:skills-repo/skills/bad-one/SKILL.md"
    assert "memento-import-" not in error.one_line()


LONG = " ".join(f"Sentence number {i} says when to use this skill." for i in range(30))


def test_a_too_long_description_is_refused_or_cut_with_lenient(tmp_path: Path) -> None:
    assert len(LONG) > 1024
    write_skill(tmp_path / "pack" / "long-desc", f"name: long-desc\ndescription: {LONG}\n")
    lib = SkillLibrary(tmp_path / "lib")
    refused = import_pack(lib, tmp_path / "pack")
    assert refused.imported == [] and lib.names() == []
    line = refused.errors[0].one_line()
    assert f"description: {len(LONG)} characters, the limit is 1024" in line
    assert "--lenient would adapt it" in line
    report = import_pack(lib, tmp_path / "pack", lenient=True)
    assert report.imported == ["long-desc"]
    skill = lib.get("long-desc")
    assert len(skill.description) <= 1024 and skill.description.endswith("skill.")
    assert LONG.startswith(skill.description)
    assert skill.metadata["memento-original-description"] == LONG
    (change,) = report.adapted["long-desc"]
    assert f"{len(LONG):,} characters cut to {len(skill.description):,}" in change


def test_lenient_moves_unknown_fields_under_metadata(tmp_path: Path) -> None:
    write_skill(
        tmp_path / "pack" / "extra-fields",
        "name: extra-fields\ndescription: d.\nversion: 1.2\nwhen_to_use: [a, b]\n",
    )
    lib = SkillLibrary(tmp_path / "lib")
    assert import_pack(lib, tmp_path / "pack").errors
    report = import_pack(lib, tmp_path / "pack", lenient=True)
    assert report.imported == ["extra-fields"]
    assert lib.get("extra-fields").metadata == {"version": "1.2", "when_to_use": '["a", "b"]'}
    assert report.adapted["extra-fields"] == [
        "version: not a spec field, moved under metadata",
        "when_to_use: not a spec field, moved under metadata",
    ]


AUTHORED = """name: pdf-tables
# the author's comment stays
description: >
  Extract tables from PDF files into CSV. Use when a task gives a PDF
  and asks for its tables, even "scanned" ones.
license: 'Apache-2.0'
compatibility: "Needs Python 3.10+ and pdfplumber: install it first"
metadata:
  author: "Jane Doe"
  version: '1.0'
"""


def test_import_keeps_the_authors_yaml_byte_for_byte(tmp_path: Path) -> None:
    write_skill(tmp_path / "pack" / "pdf-tables", AUTHORED, body="Open the PDF.\n")
    lib = SkillLibrary(tmp_path / "lib")
    assert import_pack(lib, tmp_path / "pack").imported == ["pdf-tables"]
    text = (lib.skill_dir("pdf-tables") / "SKILL.md").read_text()
    head = text.split("---\n")[1]
    authored_lines = AUTHORED.splitlines(keepends=True)
    assert head.startswith("".join(authored_lines))  # every authored byte, in order
    added = head[len(AUTHORED) :].splitlines()
    assert added and all(line.startswith("  memento-") for line in added)
    # later bookkeeping writes keep it too; a changed field is the only re-written entry
    lib.record_outcome("pdf-tables", True)
    lib.update("pdf-tables", license="MIT")
    head = (lib.skill_dir("pdf-tables") / "SKILL.md").read_text().split("---\n")[1]
    assert head.startswith("".join(authored_lines[:5]) + "license: MIT\n" + authored_lines[6])
    skill = lib.get("pdf-tables")
    assert skill.utility.successes == 1 and skill.license == "MIT"
    assert skill.metadata == {"author": "Jane Doe", "version": "1.0"}
    assert skill.description.startswith("Extract tables from PDF files into CSV. Use when")
