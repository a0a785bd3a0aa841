"""The import floors hold: no import cycle between files, no import running back up a floor."""

from __future__ import annotations

from pathlib import Path

from support.floors import ImportGraph, back_arrows, cycles, floor, import_graph

ROOT = Path(__file__).resolve().parents[1]


def test_the_source_tree_has_no_import_cycle() -> None:
    found = cycles(import_graph(ROOT))
    listed = "\n".join(" <-> ".join(component) for component in found)
    assert not found, f"{len(found)} import cycle(s) between files (lazy imports count):\n{listed}"


def test_no_import_runs_back_up_a_floor() -> None:
    found = back_arrows(import_graph(ROOT))
    listed = "\n".join(found)
    assert not found, (
        f"{len(found)} import(s) run back up (stores import nothing above them; nodes and graph "
        f"import neither evals nor memento_skills/*.py):\n{listed}"
    )


def test_the_check_sees_every_folder_lazy_imports_and_relative_ones(tmp_path: Path) -> None:
    """The checker itself: a planted cycle through a lazy import and a planted back arrow."""
    for folder in ("graph", "nodes", "stores", "evals", "memento_skills"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "nodes" / "a.py").write_text("from . import b\n")
    (tmp_path / "nodes" / "b.py").write_text("def f():\n    from memento_skills.nodes.a import x\n")
    (tmp_path / "stores" / "s.py").write_text("import memento_skills.graph.g\n")
    (tmp_path / "graph" / "g.py").write_text("from memento_skills.cli import main\n")
    (tmp_path / "memento_skills" / "cli.py").write_text("import json\n")
    (tmp_path / "evals" / "e.py").write_text("from ..stores import s\nfrom .. import cli\n")
    graph: ImportGraph = import_graph(tmp_path)
    assert cycles(graph) == [["memento_skills.nodes.a", "memento_skills.nodes.b"]]
    assert back_arrows(graph) == [
        "memento_skills.graph.g -> memento_skills.cli",
        "memento_skills.stores.s -> memento_skills.graph.g",
    ]
    assert graph.imports["memento_skills.evals.e"] == {
        "memento_skills",
        "memento_skills.cli",
        "memento_skills.stores",
        "memento_skills.stores.s",
    }
    assert [floor(m) for m in ("memento_skills.cli", "memento_skills.stores.s")] == [
        "facade",
        "stores",
    ]
