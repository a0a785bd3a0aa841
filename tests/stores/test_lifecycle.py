"""Lifecycle and lift on real SKILL.md files: text form, old files, bad values, versioned writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import (
    Lift,
    Skill,
    SkillError,
    SkillValidationError,
    parse_skill,
)

OLD = """---
name: {name}
description: Convert numbers between bases. Use when a task asks for another base.
metadata:
  memento-version: '2'
{provenance}---

Call python with int(value, base).
"""


def write(root: Path, name: str, text: str) -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    path = root / name / "SKILL.md"
    path.write_text(text)
    return path


def learned(name: str = "base-convert", **changes: object) -> Skill:
    skill = Skill(
        name=name,
        description="Convert numbers between bases. Use when a task asks for another base.",
        body="Call python with int(value, base).",
        provenance="learned",
        lifecycle="candidate",
    )
    return skill.with_changes(**changes)


def test_lifecycle_and_lift_round_trip_through_the_file_in_their_text_form() -> None:
    skill = learned(lifecycle="active", lift=Lift(3, 4, 1, 4, 3), lifecycle_reason="lift 0.50")
    text = skill.to_markdown()
    assert "memento-lifecycle: active" in text
    assert "memento-lift: with 3/4 without 1/4 v3" in text
    back = parse_skill(text, "<t>", folder_name=skill.name)
    assert (back.lifecycle, back.lift, back.lifecycle_reason) == ("active", skill.lift, "lift 0.50")
    assert back.lift is not None and back.lift.value == pytest.approx(0.5)


def test_lift_value_is_none_without_cases_on_either_side() -> None:
    assert Lift(2, 2, 0, 0, 1).value is None
    assert Lift(0, 0, 1, 2, 1).value is None
    assert Lift(1, 2, 2, 2, 1).value == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        Lift(3, 2, 0, 2, 1)


@pytest.mark.parametrize(
    ("provenance", "state"),
    [
        ("  memento-provenance: learned\n", "candidate"),
        ("", "candidate"),  # a file without provenance reads as learned
        ("  memento-provenance: seed\n", "active"),
        ("  memento-provenance: imported\n", "active"),
        ("  memento-provenance: api\n", "active"),
    ],
)
def test_a_file_written_before_lifecycles_loads_with_its_default(
    tmp_path: Path, provenance: str, state: str
) -> None:
    write(tmp_path, "base-convert", OLD.format(name="base-convert", provenance=provenance))
    lib = SkillLibrary(tmp_path)
    skill = lib.get("base-convert")
    assert (skill.lifecycle, skill.lift) == (state, None)
    assert lib.errors == [] and lib.names() == ["base-convert"]


@pytest.mark.parametrize(
    ("line", "field", "names"),
    [
        ("  memento-lifecycle: retired\n", "metadata.memento-lifecycle", "'retired' is unknown"),
        ("  memento-lift: 3/4\n", "metadata.memento-lift", "is not `with P/N"),
        ("  memento-lift: with 5/4 without 1/4 v1\n", "metadata.memento-lift", "more passes"),
        ("  memento-lift: with 1/4 without 1/4 v0\n", "metadata.memento-lift", "version 0"),
    ],
)
def test_a_bad_lifecycle_or_lift_is_one_problem_naming_field_and_fix(
    tmp_path: Path, line: str, field: str, names: str
) -> None:
    write(tmp_path, "base-convert", OLD.format(name="base-convert", provenance=line))
    lib = SkillLibrary(tmp_path)
    assert lib.names() == []  # reported and skipped, never half-loaded
    (error,) = lib.errors
    assert isinstance(error, SkillValidationError)
    (problem,) = error.problems
    assert problem.field == field and names in problem.problem and problem.fix
    assert "\n" not in error.one_line()


def test_authored_text_leaves_the_bookkeeping_out() -> None:
    skill = learned(lift=Lift(1, 2, 0, 2, 1), lifecycle_reason="gate passed")
    authored = skill.authored_text()
    assert "memento-lifecycle" not in authored and "memento-lift" not in authored
    assert "gate passed" not in authored


def test_set_lifecycle_is_a_versioned_reversible_write_and_a_no_op_when_unchanged(
    tmp_path: Path,
) -> None:
    lib = SkillLibrary(tmp_path)
    v1 = lib.create(learned())
    assert lib.set_lifecycle(v1.name, "candidate").version == v1.version  # already there
    v2 = lib.set_lifecycle(v1.name, "deprecated", reason="lift -0.50 on 2 cases")
    assert (v2.version, v2.lifecycle, v2.lifecycle_reason) == (
        v1.version + 1,
        "deprecated",
        "lift -0.50 on 2 cases",
    )
    assert [(v.version, v.live) for v in lib.history(v1.name)] == [(1, False), (2, True)]
    assert lib.read_version(v1.name, 1).lifecycle == "candidate"
    back = lib.rollback(v1.name, 1)
    assert (back.version, back.lifecycle) == (3, "candidate")
    with pytest.raises(SkillError, match="unknown lifecycle"):
        lib.set_lifecycle(v1.name, "retired")  # type: ignore[arg-type]
    assert lib.get(v1.name).version == 3  # nothing written


def test_record_lift_is_versioned_kept_by_bookkeeping_and_dropped_by_a_content_change(
    tmp_path: Path,
) -> None:
    lib = SkillLibrary(tmp_path)
    v1 = lib.create(learned())
    lift = Lift(2, 2, 0, 2, v1.version)
    v2 = lib.record_lift(v1.name, lift)
    assert (v2.version, v2.lift) == (2, lift)
    assert lib.record_lift(v1.name, lift).version == 2  # the same lift: nothing written
    assert "memento-lift: with 2/2 without 0/2 v1" in (tmp_path / v1.name / "SKILL.md").read_text()
    v3 = lib.set_lifecycle(v1.name, "active", reason="lift 1.00 on 2 cases")
    assert v3.lift == lift  # bookkeeping keeps the measurement
    # a later lift of v1 still describes the live content (only bookkeeping changed since)
    assert lib.record_lift(v1.name, Lift(1, 2, 0, 2, v1.version)).version == 4
    v5 = lib.update(v1.name, body="Call python with format(value, 'x').")
    assert (v5.lift, v5.lifecycle) == (None, "active")  # it measured what is no longer there
    with pytest.raises(SkillError, match="changed since v1"):
        lib.record_lift(v1.name, Lift(2, 2, 0, 2, v1.version))
    assert lib.get(v1.name).version == 5
    with pytest.raises(SkillError, match="after the live"):
        lib.record_lift(v1.name, Lift(2, 2, 0, 2, 9))
    assert lib.rollback(v1.name, 4).lift == Lift(1, 2, 0, 2, v1.version)


def test_a_new_script_file_drops_the_lift_too(tmp_path: Path) -> None:
    lib = SkillLibrary(tmp_path)
    v1 = lib.create(learned())
    lib.record_lift(v1.name, Lift(2, 2, 0, 2, v1.version))
    after = lib.update(v1.name, files={"scripts/convert.py": b"print(1)\n"})
    assert after.lift is None


def test_a_pack_cannot_claim_its_own_lifecycle_or_lift(tmp_path: Path) -> None:
    from memento_skills.stores.packs import import_pack

    claims = "  memento-lifecycle: deprecated\n  memento-lift: with 9/9 without 0/9 v1\n"
    write(tmp_path / "pack", "base-convert", OLD.format(name="base-convert", provenance=claims))
    lib = SkillLibrary(tmp_path / "lib")
    assert import_pack(lib, tmp_path / "pack").imported == ["base-convert"]
    skill = lib.get("base-convert")
    assert (skill.provenance, skill.lifecycle, skill.lift) == ("imported", "active", None)
    lib.set_lifecycle("base-convert", "deprecated")
    import_pack(lib, tmp_path / "pack", replace=True)
    assert (lib.get("base-convert").lifecycle, lib.get("base-convert").lift) == ("active", None)


def test_record_gate_marks_the_vetted_version_in_place_and_only_while_it_is_live(
    tmp_path: Path,
) -> None:
    lib = SkillLibrary(tmp_path)
    v1 = lib.create(learned(lifecycle="draft", change="change-1"))
    marked = lib.record_gate(v1.name, 1, "candidate", reason="passed its gate")
    assert (marked.version, marked.lifecycle, marked.change) == (1, "candidate", "change-1")
    assert lib.find_change(v1.name, "change-1") == (1, True)  # the change still names it
    lib.update(v1.name, body="Another body.")
    with pytest.raises(SkillError, match="not the vetted v1"):
        lib.record_gate(v1.name, 1, "draft")
    assert lib.get(v1.name).lifecycle == "candidate"
