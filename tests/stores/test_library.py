"""The skill library on real files: validation, CRUD, history, path safety, crashes, concurrency."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import (
    Skill,
    SkillExistsError,
    SkillNotFoundError,
    SkillValidationError,
    UnsafePathError,
    parse_skill,
)

GOOD = """---
name: {name}
description: Extract tables from PDF files into CSV. Use when a task gives a PDF with tables.
---

# PDF tables
1. Open the PDF.
"""


def write(root: Path, folder: str, content: str | bytes) -> Path:
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    p = d / "SKILL.md"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return p


def make(name: str = "pdf-tables", body: str = "# Steps\n1. Read the file.") -> Skill:
    return Skill(
        name=name,
        description=f"Does {name} things. Use when a task needs {name}.",
        body=body,
    )


# ------------------------------------------------------------------ malformed corpus

MALFORMED = {
    "bad-yaml": ("---\nname: bad-yaml\ndescription: [unclosed\n---\nbody\n", "frontmatter"),
    "missing-name": ("---\ndescription: Something. Use when x.\n---\nbody\n", "name"),
    "missing-desc": ("---\nname: missing-desc\n---\nbody\n", "description"),
    "other-name": (GOOD.format(name="not-the-folder"), "name"),
    "long-desc": (f"---\nname: long-desc\ndescription: {'x' * 1100}\n---\nbody\n", "description"),
    "empty": ("", "file"),
    "no-frontmatter": ("# Just markdown\n", "frontmatter"),
    "empty-body": (GOOD.format(name="empty-body").split("# PDF")[0], "body"),
    "unknown-field": (
        GOOD.format(name="unknown-field").replace("---\n\n", "version: 2\n---\n\n"),
        "version",
    ),
    "nested-meta": (
        "---\nname: nested-meta\ndescription: D. Use when x.\nmetadata:\n  a:\n    b: 1\n---\nbody\n",
        "metadata.a",
    ),
    "bad-version": (
        "---\nname: bad-version\ndescription: D. Use when x.\nmetadata:\n  memento-version: two\n---\nb\n",
        "metadata.memento-version",
    ),
    "Bad_Name": (GOOD.format(name="Bad_Name"), "folder"),
}


def test_malformed_skills_are_reported_and_skipped(tmp_path: Path) -> None:
    write(tmp_path, "good-one", GOOD.format(name="good-one"))
    for folder, (content, _) in MALFORMED.items():
        write(tmp_path, folder, content)
    write(tmp_path, "binary", b"\x00\x01\x02---\nname: binary\n")
    write(tmp_path, "latin1", "---\nname: latin1\ndescription: caf\xe9\n---\nb\n".encode("latin-1"))
    (tmp_path / "no-skill-file").mkdir()
    (tmp_path / "README.md").write_text("not a skill")  # loose files at the root are ignored

    lib = SkillLibrary(tmp_path)
    report = lib.scan()
    assert [s.name for s in report.skills] == ["good-one"]
    by_folder = {
        Path(e.file).parent.name if e.file.endswith("SKILL.md") else Path(e.file).name: e
        for e in report.errors
    }
    for folder, (_, field) in MALFORMED.items():
        err = by_folder[folder]
        assert any(p.field == field for p in err.problems), (folder, str(err))
        assert all(p.fix for p in err.problems)
        assert folder in err.file
    assert "binary" in str(by_folder["binary"])
    assert "UTF-8" in str(by_folder["latin1"])
    assert "missing" in str(by_folder["no-skill-file"])


def test_error_message_names_file_field_problem_and_fix(tmp_path: Path) -> None:
    p = write(tmp_path, "x", "---\nname: y\ndescription: D. Use when x.\n---\nbody\n")
    with pytest.raises(SkillValidationError) as e:
        parse_skill(p.read_bytes(), p, folder_name="x")
    msg = str(e.value)
    assert str(p) in msg and "name" in msg and "differs from its folder" in msg and "fix:" in msg


def test_symlinked_skill_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "evil", GOOD.format(name="evil"))
    lib_root = tmp_path / "lib"
    lib_root.mkdir()
    (lib_root / "evil").symlink_to(outside / "evil")
    lib = SkillLibrary(lib_root)
    assert lib.skills() == []
    assert "symlink" in str(lib.errors[0])
    with pytest.raises(UnsafePathError):
        lib.get("evil")


def test_symlinked_skill_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text(GOOD.format(name="sneaky"))
    (tmp_path / "lib" / "sneaky").mkdir(parents=True)
    (tmp_path / "lib" / "sneaky" / "SKILL.md").symlink_to(secret)
    lib = SkillLibrary(tmp_path / "lib")
    assert lib.skills() == []
    assert "symlink" in str(lib.errors[0])


# ------------------------------------------------------------------ CRUD and history


def test_create_read_update_delete_rename(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path)
    s = lib.create(make(), {"scripts/run.py": b"print('hi')\n", "references/notes.md": b"# n\n"})
    assert s.version == 1 and s.parent_version is None
    assert lib.list_files("pdf-tables") == ["references/notes.md", "scripts/run.py"]
    assert lib.read_file("pdf-tables", "scripts/run.py") == b"print('hi')\n"
    with pytest.raises(SkillExistsError):
        lib.create(make())

    s2 = lib.update("pdf-tables", body="# Steps\n1. Read.\n2. Parse.")
    assert (s2.version, s2.parent_version) == (2, 1)
    assert lib.get("pdf-tables").body.endswith("2. Parse.")

    s3 = lib.rename("pdf-tables", "pdf-table-extract")
    assert s3.name == "pdf-table-extract" and s3.version == 3
    assert not (tmp_path / "pdf-tables").exists()
    assert [v.version for v in lib.history("pdf-table-extract")] == [1, 2, 3]

    lib.delete("pdf-table-extract")
    assert lib.names() == []
    with pytest.raises(SkillNotFoundError):
        lib.get("pdf-table-extract")
    # history survives deletion, so the skill can be brought back
    back = lib.rollback("pdf-table-extract", 2)
    assert back.name == "pdf-table-extract" and back.body.endswith("2. Parse.")
    assert lib.list_files("pdf-table-extract") == ["references/notes.md", "scripts/run.py"]


def test_history_diff_and_rollback_restore_files(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path)
    lib.create(make(body="step one"), {"scripts/a.py": b"print(1)\n"})
    lib.update(
        "pdf-tables",
        body="step one\nstep two",
        files={"scripts/b.py": b"print(2)\n"},
        remove_files=("scripts/a.py",),
    )
    assert lib.list_files("pdf-tables") == ["scripts/b.py"]
    d = lib.diff("pdf-tables", 1, 2)
    assert "+step two" in d and "scripts/a.py" in d and "scripts/b.py" in d
    rolled = lib.rollback("pdf-tables", 1)
    assert rolled.version == 3 and rolled.parent_version == 1 and rolled.body == "step one"
    assert lib.list_files("pdf-tables") == ["scripts/a.py"]
    hist = lib.history("pdf-tables")
    assert [(h.version, h.live) for h in hist] == [(1, False), (2, False), (3, True)]
    # the rollback itself can be undone
    assert lib.rollback("pdf-tables", 2).body == "step one\nstep two"


def test_hand_placed_skill_gets_its_version_kept_on_first_update(tmp_path: Path) -> None:
    write(tmp_path, "pdf-tables", GOOD.format(name="pdf-tables"))
    lib = SkillLibrary(tmp_path)
    lib.update("pdf-tables", description="New description. Use when x.")
    assert "PDF" in lib.read_version("pdf-tables", 1).description


def test_record_outcome_counts_without_new_version_or_new_hash(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path)
    s = lib.create(make())
    lib.record_outcome("pdf-tables", True)
    after = lib.record_outcome("pdf-tables", False)
    assert (after.utility.successes, after.utility.failures) == (1, 1)
    assert after.version == s.version and after.content_hash == s.content_hash


def test_update_refuses_invalid_result_and_keeps_previous(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path)
    lib.create(make())
    before = (tmp_path / "pdf-tables" / "SKILL.md").read_bytes()
    with pytest.raises(SkillValidationError):
        lib.update("pdf-tables", description="x" * 2000)
    assert (tmp_path / "pdf-tables" / "SKILL.md").read_bytes() == before


def test_scan_reparses_only_changed_files(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path)
    for i in range(3):
        lib.create(make(f"skill-{i}"))
    first = {s.name: s for s in lib.skills()}
    lib.update("skill-1", body="changed")
    second = {s.name: s for s in lib.skills()}
    assert second["skill-0"] is first["skill-0"]  # cached object: not re-parsed
    assert second["skill-1"].body == "changed"


# ------------------------------------------------------------------ path safety


@pytest.mark.parametrize(
    "name",
    ["../escape", "/etc/passwd", "a/b", "..", "", "UPPER", "x" * 65, "-lead", "a--b", "a\x00b"],
)
def test_outside_names_are_refused(tmp_path: Path, name: str) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    with pytest.raises(UnsafePathError):
        lib.get(name)
    with pytest.raises((UnsafePathError, SkillValidationError)):
        lib.create(Skill(name=name, description="D. Use when x.", body="b"))
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("rel", ["../../x", "/abs/file", "scripts/../../x", "~/.ssh/id", "a\\b"])
def test_outside_file_paths_are_refused(tmp_path: Path, rel: str) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    with pytest.raises(UnsafePathError):
        lib.create(make(), {rel: b"x"})
    lib.create(make())
    with pytest.raises(UnsafePathError):
        lib.read_file("pdf-tables", rel)


def test_read_file_refuses_symlink_inside_skill(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    lib.create(make())
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    (tmp_path / "lib" / "pdf-tables" / "link.txt").symlink_to(secret)
    with pytest.raises(UnsafePathError):
        lib.read_file("pdf-tables", "link.txt")


# ------------------------------------------------------------------ crashes and concurrency

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from memento_skills.stores.library import SkillLibrary
    from memento_skills.stores.skill import Skill
    lib = SkillLibrary(Path(sys.argv[1]))
    mode = sys.argv[2]
    if mode == "churn":
        big = "x" * 200_000
        i = 0
        print("ready", flush=True)
        while True:
            i += 1
            lib.update("victim", body=f"round {i}\\n" + big[: (i * 7919) % 200_000],
                       files={"references/data.md": (big * 20).encode()})
    elif mode == "count":
        for _ in range(int(sys.argv[3])):
            lib.record_outcome("shared", True)
    elif mode == "trial":  # write a change, put it on trial, then wait to be killed or told
        name, action = sys.argv[3], sys.argv[4]
        if action == "create":
            live, base = lib.create(Skill(name=name, description="On trial. Use when testing.",
                                          body="unvetted")), None
        else:
            base = lib.get(name).version
            live = lib.update(name, body="unvetted")
        with lib.trial(name, live.version, base):
            print("on trial", flush=True)
            sys.stdin.readline()
        print("done", flush=True)
    elif mode == "versions":  # SKILL.md + three files per version, each naming the version
        name = sys.argv[3]
        print("ready", flush=True)
        while True:
            v = lib.get(name).version + 1
            filler = f"version {v}\\n" * 40_000
            lib.update(name, body=f"version {v}", files={
                "scripts/run.py": f"# version {v}\\n".encode(),
                "scripts/helper.py": (f"# version {v}\\n" + filler).encode(),
                "references/notes.md": (filler + f"version {v}\\n").encode(),
            })
    elif mode == "rename":  # rename back and forth between two names
        a, b = sys.argv[3], sys.argv[4]
        print("ready", flush=True)
        while True:
            current = a if lib.exists(a) else b
            lib.rename(current, b if current == a else a)
    elif mode == "die-after-rename":  # SIGKILL itself right after its n-th folder move
        import os, signal
        import memento_skills.stores.library as library_module
        action, n, done = sys.argv[3], int(sys.argv[4]), []
        def dying(real):
            def move(src, dst):
                result = real(src, dst)
                done.append(dst)
                if len(done) == n:
                    os.kill(os.getpid(), signal.SIGKILL)
                return result
            return move
        os.rename = dying(os.rename)
        library_module.exchange_folders = dying(library_module.exchange_folders)
        if action == "update":
            lib.update("victim", body="after", files={"scripts/a.py": b"# after\\n"})
        else:
            lib.rename("victim", "renamed")
    elif mode == "append":
        tag = sys.argv[3]
        for k in range(int(sys.argv[4])):
            lib.update("shared", apply=lambda cur, k=k: {"body": cur.body + f"\\n{tag}-{k}"})
    """
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return env


def test_sigkill_mid_write_leaves_valid_library_and_index_repairs(tmp_path: Path) -> None:
    from memento_skills.stores.index import SkillIndex

    lib = SkillLibrary(tmp_path / "lib")
    lib.create(make("victim"))
    for i in range(5):
        lib.create(make(f"bystander-{i}"))
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    for attempt in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(lib.root), "churn"],
            stdout=subprocess.PIPE,
            env=_env(),
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.3 + 0.17 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fresh = SkillLibrary(lib.root)
        report = fresh.scan()
        assert report.errors == [], [str(e) for e in report.errors]
        assert sorted(s.name for s in report.skills) == sorted(
            ["victim"] + [f"bystander-{i}" for i in range(5)]
        )
        victim = fresh.get("victim")
        assert victim.body.startswith("round") or victim.version == 1
        # every recorded version in history is itself a valid skill
        for v in fresh.history("victim"):
            fresh.read_version("victim", v.version)

    index = SkillIndex(tmp_path / "index")
    index.sync(SkillLibrary(lib.root).skills())
    assert sorted(index.names()) == sorted(SkillLibrary(lib.root).names())


def _on_trial(lib: SkillLibrary, tmp_path: Path, name: str, action: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(lib.root), "trial", name, action],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_env(),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"on trial"
    return proc


@pytest.mark.parametrize("action", ["create", "refine"])
def test_a_change_left_on_trial_by_a_killed_process_is_taken_back(
    tmp_path: Path, action: str
) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    if action == "refine":
        lib.create(make("victim", body="vetted"))
    proc = _on_trial(lib, tmp_path, "victim", action)
    # while the trial runs, another process opening the library leaves it alone
    assert SkillLibrary(lib.root).recovered == []
    assert SkillLibrary(lib.root).get("victim").body == "unvetted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    fresh = SkillLibrary(lib.root)
    assert fresh.recovered == ["victim"]
    if action == "create":
        assert not fresh.exists("victim")
    else:
        assert fresh.get("victim").body == "vetted"
        assert [v.version for v in fresh.history("victim")] == [1, 3]
    # the unvetted version left no copy anywhere in the library, history included
    assert not _files_holding(lib.root, b"unvetted")
    assert SkillLibrary(lib.root).recovered == []  # done once


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_trial_that_finishes_keeps_its_change_and_an_error_takes_it_back(
    tmp_path: Path,
) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    lib.create(make("victim", body="vetted"))
    proc = _on_trial(lib, tmp_path, "victim", "refine")
    out, _ = proc.communicate(b"\n", timeout=60)
    assert out.strip() == b"done"
    assert SkillLibrary(lib.root).recovered == []
    assert lib.get("victim").body == "unvetted"

    live = lib.update("victim", body="second")
    with pytest.raises(RuntimeError, match="endpoint down"), lib.trial("victim", live.version, 2):
        raise RuntimeError("endpoint down")  # the gate's replay failed
    assert lib.get("victim").body == "unvetted"
    # a version written by someone else after the trial's is not taken back
    live = lib.update("victim", body="third")
    lib.update("victim", body="fourth, someone else's")
    assert not lib.take_back("victim", live.version, 2)
    assert lib.get("victim").body == "fourth, someone else's"


def test_two_processes_counting_lose_no_update(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    lib.create(make("shared"))
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(lib.root), "count", "40"], env=_env())
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert SkillLibrary(lib.root).get("shared").utility.successes == 80


def test_two_processes_updating_the_same_skill_lose_no_update(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    lib.create(make("shared", body="start"))
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(lib.root), "append", tag, "15"], env=_env()
        )
        for tag in ("a", "b")
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    body = SkillLibrary(lib.root).get("shared").body
    for tag in ("a", "b"):
        for k in range(15):
            assert f"{tag}-{k}" in body.splitlines()


def test_a_skill_made_through_the_python_api_says_so(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    made = lib.create(
        Skill(name="csv-clean", description="Clean CSV files. Use when messy.", body="x")
    )
    assert made.provenance == "api"
    text = (tmp_path / "lib" / "csv-clean" / "SKILL.md").read_text()
    assert "memento-provenance: api" in text
    assert SkillLibrary(tmp_path / "lib").get("csv-clean").provenance == "api"  # read back
    chosen = lib.create(
        Skill(
            name="pdf-tables", description="PDF tables. Use when.", body="x", provenance="imported"
        )
    )
    assert chosen.provenance == "imported"  # a caller may say who made it


# ------------------------------------------------------------------ whole versions under SIGKILL


def _kill_repeatedly(
    lib: SkillLibrary, tmp_path: Path, args: list[str], kills: int, check: Any
) -> None:
    """Start the writer child, SIGKILL it at a random moment, open the library, check; repeat."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(15)
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(lib.root), *args], stdout=subprocess.PIPE, env=_env()
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fresh = SkillLibrary(lib.root)  # opening finishes or undoes what the kill interrupted
        report = fresh.scan()
        assert report.errors == [], [str(e) for e in report.errors]
        check(fresh)
    leftovers = list((lib.root / ".memento" / "tmp").glob("*"))
    assert len(leftovers) <= 1  # at most the one staging folder of the last kill


def _version_of(data: bytes) -> set[str]:
    """The version numbers a file's text names (each file of version N says `version N`)."""
    return {m.decode() for m in re.findall(rb"version (\d+)", data)}


def test_a_multi_file_update_appears_whole_or_not_at_all_under_sigkill(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    lib.create(
        make("victim", body="version 1"),
        {
            "scripts/run.py": b"# version 1\n",
            "scripts/helper.py": b"# version 1\n",
            "references/notes.md": b"version 1\n",
        },
    )
    seen: set[int] = set()

    def every_version_is_whole(fresh: SkillLibrary) -> None:
        live = fresh.get("victim")
        seen.add(live.version)
        assert live.body == f"version {live.version}"
        for v in fresh.history("victim"):
            files = fresh._version_files("victim", v.version)
            assert sorted(files) == [
                "SKILL.md",
                "references/notes.md",
                "scripts/helper.py",
                "scripts/run.py",
            ]
            for rel, data in files.items():
                if rel != "SKILL.md":
                    assert _version_of(data) == {str(v.version)}, (v.version, rel)

    _kill_repeatedly(lib, tmp_path, ["versions", "victim"], 12, every_version_is_whole)
    assert len(seen) >= 6  # the kills landed at many different points of the writer's loop


def test_rename_is_never_left_half_done_under_sigkill(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    lib.create(make("rename-a"), {"scripts/run.py": b"print('kept')\n"})
    lib.create(make("bystander"))

    def exactly_one_whole_skill(fresh: SkillLibrary) -> None:
        names = sorted(fresh.names())
        assert len(names) == 2 and "bystander" in names, names
        (name,) = [n for n in names if n != "bystander"]
        other = "rename-b" if name == "rename-a" else "rename-a"
        skill = fresh.get(name)
        assert skill.name == name
        assert fresh.read_file(name, "scripts/run.py") == b"print('kept')\n"
        assert not (fresh.root / ".memento" / "history" / other).exists()
        assert [v.version for v in fresh.history(name)] == list(range(1, skill.version + 1))

    _kill_repeatedly(lib, tmp_path, ["rename", "rename-a", "rename-b"], 14, exactly_one_whole_skill)


# ------------------------------------------------------------------ what is written reads back


@pytest.mark.parametrize(
    "field", ["body", "description"], ids=["nul-in-body", "escape-in-description"]
)
def test_a_write_with_control_characters_is_refused_and_leaves_nothing(
    tmp_path: Path, field: str
) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    bad = {
        "body": "# Steps\n1. Convert\x00 the base.\x00",
        "description": "Convert\x1b[31m. Use when x.",
    }
    with pytest.raises(SkillValidationError, match="control character"):
        lib.create(make("convert-base").with_changes(**{field: bad[field]}))
    assert not lib.exists("convert-base") and lib.scan().errors == []
    lib.create(make("convert-base"))  # the name is free: nothing half-written blocks it
    before = (lib.root / "convert-base" / "SKILL.md").read_bytes()
    with pytest.raises(SkillValidationError, match="control character"):
        lib.update("convert-base", apply=lambda _cur: {field: bad[field]})
    assert (lib.root / "convert-base" / "SKILL.md").read_bytes() == before
    assert not _files_holding(lib.root, b"\x00") and not _files_holding(lib.root, b"Convert")
    assert [v.version for v in lib.history("convert-base")] == [1]


def test_a_hand_written_skill_with_control_characters_is_reported(tmp_path: Path) -> None:
    write(
        tmp_path, "ctrl", GOOD.format(name="ctrl").replace("Open the PDF.", "Open\x1b[2J the PDF.")
    )
    lib = SkillLibrary(tmp_path)
    assert lib.skills() == []
    assert "U+001B at line 7" in str(lib.errors[0]) and "fix:" in str(lib.errors[0])


GARBAGE = {
    "binary": b"\x00" * 154 + b"---\nname: victim\n",
    "not-a-skill": b"garbage, no frontmatter at all\n",
    "missing": None,
    "no-folder": None,
}


@pytest.mark.parametrize("state", list(GARBAGE))
@pytest.mark.parametrize("action", ["create", "refine"])
def test_take_back_works_whatever_the_live_file_holds(
    tmp_path: Path, state: str, action: str
) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    base = None
    if action == "refine":
        lib.create(make("victim", body="vetted"), {"scripts/a.py": b"print('vetted')\n"})
        base = 1
        live = lib.update("victim", body="unvetted", files={"scripts/b.py": b"# unvetted\n"})
    else:
        live = lib.create(make("victim", body="unvetted"), {"scripts/b.py": b"# unvetted\n"})
    skill_md = lib.root / "victim" / "SKILL.md"
    garbage = GARBAGE[state]
    if state == "no-folder":
        shutil.rmtree(skill_md.parent)
    elif garbage is None:
        skill_md.unlink()
    else:
        skill_md.write_bytes(garbage)

    assert lib.take_back("victim", live.version, base)
    fresh = SkillLibrary(lib.root)
    assert fresh.scan().errors == []
    if action == "refine":
        back = fresh.get("victim")
        assert back.body == "vetted" and back.version == 3 and back.parent_version == 1
        assert fresh.list_files("victim") == ["scripts/a.py"]
        assert [v.version for v in fresh.history("victim")] == [1, 3]
    else:
        assert not fresh.exists("victim")
        assert not (lib.root / ".memento" / "history" / "victim").exists()
        assert lib.create(make("victim", body="second try")).version == 1  # not blocked
    assert not _files_holding(lib.root, b"unvetted")


@pytest.mark.parametrize(("action", "n"), [("update", 1), ("rename", 1), ("rename", 2)])
def test_opening_the_library_finishes_a_switch_killed_between_its_renames(
    tmp_path: Path, action: str, n: int
) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    lib.create(make("victim", body="before"), {"scripts/a.py": b"# before\n"})
    lib.update("victim", body="second")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.run(
        [sys.executable, str(script), str(lib.root), "die-after-rename", action, str(n)],
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    assert (lib.root / ".memento" / "journal" / "victim.json").exists()  # killed mid-switch
    if action == "update":  # the old version is still beside the new one, in .memento/tmp
        assert len(list((lib.root / ".memento" / "tmp").iterdir())) == 1
    else:  # killed with both names, or with only the old one, on disk
        assert (lib.root / "victim").is_dir() and (lib.root / "renamed").is_dir() is (n == 2)
    fresh = SkillLibrary(lib.root)
    assert fresh.recovered_switches == ["victim"]
    assert fresh.scan().errors == []
    assert not (lib.root / ".memento" / "journal").exists()
    if action == "update":
        live = fresh.get("victim")
        assert (live.version, live.body) == (3, "after")
        assert fresh.read_file("victim", "scripts/a.py") == b"# after\n"
        assert [v.version for v in fresh.history("victim")] == [1, 2, 3]
    else:
        assert fresh.names() == ["renamed"] and fresh.get("renamed").version == 3
        assert [v.version for v in fresh.history("renamed")] == [1, 2, 3]
        assert not (lib.root / ".memento" / "history" / "victim").exists()
    assert list((lib.root / ".memento" / "tmp").iterdir()) == []


def test_a_reader_never_misses_a_skill_while_another_process_switches_its_versions(
    tmp_path: Path,
) -> None:
    lib = SkillLibrary(tmp_path / "lib")
    lib.create(make("victim", body="version 1"))
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(lib.root), "versions", "victim"],
        stdout=subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        reader, versions = SkillLibrary(lib.root), set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            report = reader.scan()
            assert report.errors == [] and [s.name for s in report.skills] == ["victim"]
            live = report.skills[0]
            assert live.body == f"version {live.version}"
            versions.add(live.version)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(versions) >= 3  # the writer really switched versions under the reader
