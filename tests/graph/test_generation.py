"""Noticing changes instead of rescanning: the library's generation through real graph runs.

A routed task reads the library's generation (one small read) and stats every skill's folder
only when it moved: a write through the library, by this process or another, moves it, and the
next task sees the write. Everything is real (folders, the Chroma + BM25 index, the graph, a
second process writing through the `memento` command); only the executor is scripted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memento_skills.evals.bench_store import write_library
from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.graph.models import ROLE_KEY
from memento_skills.graph.resources import Resources
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.skill import SKILL_FILE, Skill
from memento_skills.testing import ScriptedChatModel

from support.commands import memento

ANSWER = "42"
SKILLS = 40
KELVIN = Skill(
    name="kelvin-to-celsius",
    description="Convert a temperature in kelvin to degrees celsius by subtracting 273.15. "
    "Use when a task gives kelvin and asks for celsius.",
    body="# Kelvin to Celsius\n\n1. Subtract 273.15 from the kelvin value.\n2. Answer the number.\n",
)
KELVIN_TASK = "Convert 300 kelvin to degrees celsius."


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A 40-skill library on disk, its synced index, and a graph over both."""
    root = tmp_path / "skills"
    skills = write_library(root, SKILLS)
    library = SkillLibrary(root)
    index = SkillIndex(tmp_path / "index", library=root)
    executor = ScriptedChatModel(script=[ANSWER] * 50, metadata={ROLE_KEY: "executor"})
    idle = ScriptedChatModel(script=[])
    resources = Resources(
        chat_models={"executor": executor, "judge": idle, "writer": idle, "router": idle},
        library=library,
        index=index,
    )
    try:
        yield {
            "root": root,
            "skills": skills,
            "library": library,
            "resources": resources,
            "graph": build_graph(resources=resources),
            "tmp": tmp_path,
        }
    finally:
        index.close()


def _context(tmp: Path, **changes: Any) -> Context:
    return Context(
        **{
            "write_policy": "off",  # no utility counts: nothing writes to the library
            "max_attempts": 1,
            "web_search": False,
            "min_route_score": 0.0,
            "workspace_dir": str(tmp / "ws"),
            "run_log": str(tmp / "runs.jsonl"),
            **changes,
        }
    )


@pytest.fixture
def skill_stats(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many times os.lstat looked at a SKILL.md since the last call (the scan's per-skill
    work: the library stats each skill's SKILL.md to know whether it changed)."""
    seen = [0]
    real = os.lstat

    def counting(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if os.fspath(path).endswith(os.sep + SKILL_FILE):
            seen[0] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", counting)

    def taken() -> int:
        count, seen[0] = seen[0], 0
        return count

    return taken


def _run(world: dict[str, Any], task: str, i: int, ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = world["graph"].invoke(
        {"task": task, "task_id": f"gen-{i}", "ground_truth": ANSWER}, context=ctx
    )
    assert (out.get("verdict") or {}).get("passed"), out.get("verdict")
    return out


def test_an_unchanged_generation_spares_the_per_skill_stat(
    world: dict[str, Any], skill_stats: Callable[[], int]
) -> None:
    ctx = _context(world["tmp"], library_rescan_s=3600)
    task = f"Please {world['skills'][3].description.split('. ')[0].lower()}."
    first = _run(world, task, 0, ctx)
    assert first["selected_skill"] == world["skills"][3].name
    assert skill_stats() >= SKILLS  # the first task scans every skill once
    scans = world["resources"].scans
    for i in range(1, 4):
        again = _run(world, task, i, ctx)
        assert again["selected_skill"] == first["selected_skill"]
        # only the chosen skill is read (execute loads it); no scan of the other 39
        assert skill_stats() <= 2
    assert world["resources"].scans == scans

    # a write through the library moves the generation: the next task reloads what it wrote
    library: SkillLibrary = world["library"]
    before = library.generation()
    library.create(KELVIN)
    assert library.generation() != before
    skill_stats()
    routed = _run(world, KELVIN_TASK, 10, ctx)
    assert routed["selected_skill"] == KELVIN.name
    assert skill_stats() <= 3  # the new skill (reloaded, then executed), not the 40 others
    assert world["resources"].scans == scans and world["resources"].reloads == 1
    _run(world, KELVIN_TASK, 11, ctx)
    assert skill_stats() <= 2

    # a refined body and a counted use are reloaded alike; a deleted skill leaves the routing
    library.update(KELVIN.name, body=KELVIN.body + "\n3. Round to two decimals.\n")
    library.record_outcome(world["skills"][3].name, True, key="run-x")
    skill_stats()
    again = _run(world, KELVIN_TASK, 12, ctx)
    assert again["selected_skill"] == KELVIN.name
    assert skill_stats() <= 4 and world["resources"].reloads == 3
    library.delete(KELVIN.name)
    gone = _run(world, KELVIN_TASK, 13, ctx)
    assert gone["selected_skill"] != KELVIN.name
    _, listed = world["resources"].synced_index(ctx)
    assert KELVIN.name not in listed and len(listed) == SKILLS
    assert world["resources"].scans == scans


def test_a_retired_skill_leaves_the_offered_skills_without_a_rescan(
    world: dict[str, Any], skill_stats: Callable[[], int]
) -> None:
    """The skills a router may offer are made once per look at the library: the same mapping
    while nothing changed, and a lifecycle write moves just that skill in or out."""
    ctx = _context(world["tmp"], library_rescan_s=3600)
    library: SkillLibrary = world["library"]
    library.create(KELVIN)
    resources: Resources = world["resources"]
    first = _run(world, KELVIN_TASK, 0, ctx)
    assert first["selected_skill"] == KELVIN.name
    _, offered = resources.synced_index(ctx)
    assert resources.synced_index(ctx)[1] is offered and len(offered) == SKILLS + 1
    scans = resources.scans

    library.set_lifecycle(KELVIN.name, "deprecated", reason="curated out")
    retired = _run(world, KELVIN_TASK, 1, ctx)
    assert retired["selected_skill"] != KELVIN.name
    _, offered = resources.synced_index(ctx)
    assert KELVIN.name not in offered and len(offered) == SKILLS

    library.rollback(KELVIN.name, 1)  # the version before it was retired, live again
    back = _run(world, KELVIN_TASK, 2, ctx)
    assert back["selected_skill"] == KELVIN.name
    assert resources.scans == scans and resources.reloads == 2


def test_edits_outside_the_library_are_seen_within_library_rescan_s(
    world: dict[str, Any], skill_stats: Callable[[], int]
) -> None:
    """A hand edit does not move the generation; the rescan interval bounds how late it is seen
    (0: before every task, as before the generation existed)."""
    task = KELVIN_TASK
    ctx = _context(world["tmp"], library_rescan_s=3600)
    assert _run(world, task, 0, ctx)["selected_skill"] != KELVIN.name
    folder = world["root"] / KELVIN.name
    folder.mkdir()
    (folder / SKILL_FILE).write_text(KELVIN.to_markdown(), "utf-8")  # by hand: no generation
    skill_stats()
    assert _run(world, task, 1, ctx)["selected_skill"] != KELVIN.name
    assert skill_stats() <= 2
    every_task = _context(world["tmp"], library_rescan_s=0)
    assert _run(world, task, 2, every_task)["selected_skill"] == KELVIN.name
    assert skill_stats() >= SKILLS + 1
    _run(world, task, 3, every_task)
    assert skill_stats() >= SKILLS + 1


def test_a_write_by_another_process_is_seen_by_the_next_task(
    world: dict[str, Any], skill_stats: Callable[[], int], tmp_path: Path
) -> None:
    ctx = _context(world["tmp"], library_rescan_s=3600)  # only the generation can tell
    assert _run(world, KELVIN_TASK, 0, ctx)["selected_skill"] != KELVIN.name
    assert _run(world, KELVIN_TASK, 1, ctx)["selected_skill"] != KELVIN.name
    library: SkillLibrary = world["library"]
    before = library.generation()
    skill_stats()

    pack = tmp_path / "pack" / KELVIN.name
    pack.mkdir(parents=True)
    (pack / SKILL_FILE).write_text(KELVIN.to_markdown(), "utf-8")
    imported = memento("skills", "import", str(pack), "--dir", str(world["root"]), home=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "1 imported" in imported.stdout
    assert skill_stats() == 0  # the other process wrote: this one has not looked yet
    assert library.generation() != before

    routed = _run(world, KELVIN_TASK, 2, ctx)
    assert routed["selected_skill"] == KELVIN.name, routed.get("route_reason")
    assert skill_stats() <= 3  # the change log named it: no scan of the other 40

    # without the change log (lost, or started anew) the next look is a full scan, never a miss
    (world["root"] / ".memento" / "changes").unlink()
    other = Skill(
        name="celsius-to-fahrenheit",
        description="Convert degrees celsius to fahrenheit: multiply by 9/5 and add 32.",
        body="# Celsius to Fahrenheit\n\n1. Multiply by 9/5, add 32.\n",
    )
    pack = tmp_path / "pack2" / other.name
    pack.mkdir(parents=True)
    (pack / SKILL_FILE).write_text(other.to_markdown(), "utf-8")
    imported = memento("skills", "import", str(pack), "--dir", str(world["root"]), home=tmp_path)
    assert imported.returncode == 0, imported.stderr
    skill_stats()
    task = "Convert 20 degrees celsius to fahrenheit."
    assert _run(world, task, 3, ctx)["selected_skill"] == other.name
    assert skill_stats() >= SKILLS + 2


def test_the_generation_moves_on_every_kind_of_write(tmp_path: Path) -> None:
    library = SkillLibrary(tmp_path / "lib")
    seen = {library.generation()}

    def moved() -> None:
        now = library.generation()
        assert now not in seen, now
        seen.add(now)

    library.create(KELVIN)
    moved()
    library.update(KELVIN.name, body=KELVIN.body + "\n3. Round to two decimals.\n")
    moved()
    library.record_outcome(KELVIN.name, True, key="run-1")
    moved()
    library.rollback(KELVIN.name, 1)
    moved()
    library.rename(KELVIN.name, "kelvin-celsius")
    moved()
    library.delete("kelvin-celsius")
    moved()
    # reading does not move it
    library.skills()
    assert library.generation() in seen
    # another process's write moves it too (a fresh object reads the same counter)
    script = textwrap.dedent(
        f"""
        from memento_skills.stores.library import SkillLibrary
        from memento_skills.stores.skill import Skill
        SkillLibrary({str(library.root)!r}).create(Skill(name="other-one", description="x y z", body="b"))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    moved()
