"""Suites on synthetic files in GAIA's and HLE's formats (never the real, gated data), reasoning-gym
splits, the HLE judge through structured output, and a GAIA attachment reaching the workspace."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from memento_skills.evals.leaks import find_leaks
from memento_skills.evals.learning import LearningRun, RunSettings
from memento_skills.evals.run_records import load_results
from memento_skills.evals.stats import wilson
from memento_skills.evals.suites import (
    GaiaSuite,
    HleSuite,
    JsonlSuite,
    ReasoningGymSuite,
    SuiteError,
    Task,
    load_suite,
    suite_from_spec,
)
from memento_skills.nodes.gate import leak_refusal
from memento_skills.nodes.scoring import contains_gold
from memento_skills.stores.cases import Case
from memento_skills.stores.settings import open_library, seed_skills_dir
from memento_skills.testing import ScriptedChatModel

from support.commands import MEMENTO
from support.scripted_learner import scripted_resources

GAIA_LEVELS = {1: 53, 2: 86, 3: 26}  # GAIA validation: 165 tasks


def make_gaia(folder: Path, levels: dict[int, int] = GAIA_LEVELS, *, hidden: int = 0) -> Path:
    """A metadata.jsonl in GAIA's format with made-up tasks; every 20th has an attachment."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    rows = []
    n = 0
    for level, count in levels.items():
        for _ in range(count):
            n += 1
            task_id = f"{rng.getrandbits(64):016x}-{n:03d}"
            row: dict[str, Any] = {
                "task_id": task_id,
                "Question": f"Synthetic question {n}: what is {n} plus {n}?",
                "Level": level if n % 2 else str(level),  # GAIA copies have both spellings
                "Final answer": str(2 * n),
                "file_name": "",
                "Annotator Metadata": {"Steps": "add", "Tools": "none"},
            }
            if n % 20 == 0:
                row["file_name"] = f"{task_id}.txt"
                (folder / row["file_name"]).write_text(f"notes for task {n}\n{2 * n}\n")
            rows.append(row)
    for i in range(hidden):
        rows.append({"task_id": f"hidden-{i}", "Question": "?", "Level": 1, "Final answer": "?"})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_gaia_paper_split_is_100_65_stratified_reproducible_and_disjoint(tmp_path: Path) -> None:
    suite = GaiaSuite(make_gaia(tmp_path / "gaia"))
    counts = suite.counts()
    assert counts["total"] == 165 and counts["splits"] == {"train": 100, "test": 65}
    assert counts["groups"] == {"1": 53, "2": 86, "3": 26}
    assert counts["split_groups"]["train"] == {"1": 32, "2": 52, "3": 16}
    train = {t.id for t in suite.tasks("train")}
    test = {t.id for t in suite.tasks("test")}
    assert not train & test and len(train | test) == 165
    # same seed, same split, whatever the file order; another seed, another split
    rows = (tmp_path / "gaia" / "metadata.jsonl").read_text().splitlines()
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    for f in (tmp_path / "gaia").iterdir():
        shutil.copy(f, shuffled / f.name)
    random.Random(1).shuffle(rows)
    (shuffled / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    assert {t.id for t in GaiaSuite(shuffled).tasks("test")} == test
    assert {t.id for t in GaiaSuite(shuffled, seed=1).tasks("test")} != test


def test_gaia_attachments_levels_and_bad_input(tmp_path: Path) -> None:
    folder = make_gaia(tmp_path / "gaia", {1: 20, 2: 20}, hidden=3)
    suite = GaiaSuite(folder / "metadata.jsonl")
    tasks = suite.all_tasks()
    assert len(tasks) == 40 and suite.skipped == {"no gold answer": 3}
    with_files = [t for t in tasks if t.attachments]
    assert len(with_files) == 2 and all(t.attachments[0].is_file() for t in with_files)
    assert with_files[0].attachments[0].name in with_files[0].prompt()
    assert {t.group for t in tasks} == {"1", "2"}

    missing = tmp_path / "missing"
    shutil.copytree(folder, missing)
    next(missing.glob("*.txt")).unlink()
    with pytest.raises(SuiteError, match=r"keep the attachment files beside metadata\.jsonl"):
        GaiaSuite(missing).splits()
    hidden_only = tmp_path / "test-set"
    hidden_only.mkdir()
    (hidden_only / "metadata.jsonl").write_text(
        json.dumps({"task_id": "x", "Question": "q", "Level": 1, "Final answer": "?"}) + "\n"
    )
    with pytest.raises(SuiteError, match="use the validation set"):
        GaiaSuite(hidden_only).splits()
    with pytest.raises(SuiteError, match="needs --path"):
        load_suite("gaia")
    with pytest.raises(SuiteError, match="not found"):
        GaiaSuite(tmp_path)
    task = tasks[0]
    assert suite.score(task, f" {task.answer}.00 ").correct  # GAIA's number normalisation
    assert not suite.score(task, "12345").correct and suite.score(task, None).method == "no-answer"


def hle_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(30):
        rows.append(
            {
                "id": f"hle{i:03d}",
                "question": f"Question {i}?"
                + ("\n\nAnswer Choices:\nA. one\nB. two" if i % 3 == 0 else ""),
                "image": "data:image/png;base64,AAAA" if i % 5 == 4 else "",
                "answer": "B" if i % 3 == 0 else f"{i} meters",
                "answer_type": "multipleChoice" if i % 3 == 0 else "exactMatch",
                "category": ["Math", "Physics", "Humanities/Social Science"][i % 3],
                "raw_subject": "x",
                "rationale": "because",
            }
        )
    return rows


def test_hle_text_only_jsonl_and_parquet(tmp_path: Path) -> None:
    rows = hle_rows()
    jsonl = tmp_path / "hle.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = HleSuite(jsonl)
    counts = suite.counts()
    assert counts["total"] == 24 and counts["skipped"] == {"image": 6}
    assert sum(counts["groups"].values()) == 24 and set(counts["groups"]) == {
        "Math",
        "Physics",
        "Humanities/Social Science",
    }
    types = {t.metadata["answer_type"] for t in suite.all_tasks()}
    assert types == {"exactMatch", "multipleChoice"}

    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    folder = tmp_path / "hle" / "data"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "test-00000-of-00001.parquet")
    from_parquet = HleSuite(tmp_path / "hle")
    assert {t.id for t in from_parquet.tasks("test")} == {t.id for t in suite.tasks("test")}
    rebuilt = suite_from_spec(json.loads(json.dumps(from_parquet.spec())))
    assert rebuilt.counts() == from_parquet.counts()


def test_hle_judge_extracts_and_compares_with_the_model(tmp_path: Path) -> None:
    path = tmp_path / "hle.jsonl"
    row = {"id": "h1", "question": "How far? Give meters.", "answer": "41 meters", "image": ""}
    path.write_text(json.dumps(row) + "\n")
    suite = HleSuite(path)
    task = Task(id="h1", question=row["question"], answer=row["answer"])
    judge = ScriptedChatModel(
        script=[
            {"extracted_final_answer": "41 m", "reasoning": "same distance", "correct": "yes"},
            {"extracted_final_answer": "None", "reasoning": "no answer", "correct": "yes"},
            {"extracted_final_answer": "40 m", "reasoning": "off by one", "correct": "no"},
            "not json at all",
            "still not json",
        ]
    )
    yes = suite.score(task, "It is 41 m.", judge=judge)
    assert yes.correct and yes.method == "hle-judge" and yes.extracted == "41 m"
    assert yes.usage and yes.usage["total"]["total_tokens"] > 0
    prompt = judge.calls[0].text
    assert "41 meters" in prompt and "It is 41 m." in prompt and "extracted_final_answer" in prompt
    assert not suite.score(task, "I am not sure.", judge=judge).correct  # "None"
    assert not suite.score(task, "40 m", judge=judge).correct
    broken = suite.score(task, "41 m!", judge=judge)
    assert not broken.correct and broken.method.startswith("hle-judge-error")
    exact = suite.score(task, "41 Meters", judge=None)  # identical: no model needed
    assert exact.correct and exact.method == "exact"
    assert suite.score(task, "", judge=judge).method == "no-answer"
    assert len(judge.calls) == 5  # the broken reply got one repair round; the rest one call each


def test_reasoning_gym_splits_never_overlap_and_are_seeded() -> None:
    # coin_flip repeats questions within 200 draws: the splits must still be disjoint
    suite = ReasoningGymSuite(["coin_flip", "products"], train=40, test=40, seed=3)
    train, test = suite.tasks("train"), suite.tasks("test")
    assert len(train) == len(test) == 40
    assert not {t.question for t in train} & {t.question for t in test}
    assert len({t.question for t in train}) == 40
    assert [t.group for t in train[:4]] == ["coin_flip", "products"] * 2
    again = ReasoningGymSuite(["coin_flip", "products"], train=40, test=40, seed=3)
    assert [t.question for t in again.tasks("test")] == [t.question for t in test]
    smaller = ReasoningGymSuite(["coin_flip", "products"], train=10, test=40, seed=3)
    assert [t.id for t in smaller.tasks("test")] == [t.id for t in test]
    # scored by the generator's own scorer
    task = test[1]
    assert suite.score(task, task.answer).correct and suite.score(task, task.answer).method == (
        "reasoning-gym"
    )
    assert not suite.score(task, "not it").correct and not suite.score(task, None).correct
    with pytest.raises(SuiteError, match="unknown reasoning-gym generator"):
        load_suite("reasoning-gym", generators="products,nope")
    with pytest.raises(SuiteError, match="needs --generators"):
        load_suite("reasoning-gym")


def test_jsonl_suite_and_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"{i}+{i}?", "answer": str(2 * i), "subject": s})
            + "\n"
            for i, s in zip(range(10), ["add"] * 5 + ["sum"] * 5, strict=True)
        )
    )
    suite = load_suite("jsonl", path=path, train_fraction=0.5)
    assert suite.counts()["splits"] == {"train": 5, "test": 5}
    assert suite.counts()["groups"] == {"add": 5, "sum": 5}
    task = suite.tasks("test")[0]
    assert suite.score(task, f" {task.answer}.0 ").correct
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "q"}\n')
    with pytest.raises(SuiteError, match=r"bad.jsonl:1 lacks answer"):
        JsonlSuite(bad).splits()
    bad.write_text(
        '{"id": "a", "question": "q", "answer": "1"}\n{"id": "a", "question": "r", "answer": "2"}\n'
    )
    with pytest.raises(SuiteError, match="appears twice"):
        JsonlSuite(bad).splits()
    bad.write_text("{not json\n")
    with pytest.raises(SuiteError, match=r"bad.jsonl:1 is not valid JSON"):
        JsonlSuite(bad).splits()


def test_suites_show_cli(tmp_path: Path) -> None:
    folder = make_gaia(tmp_path / "gaia")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [MEMENTO, "suites", "show", "gaia", "--path", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["total"] == 165 and data["splits"] == {"train": 100, "test": 65}
    assert data["groups"] == {"1": 53, "2": 86, "3": 26}
    human = subprocess.run(
        [MEMENTO, "suites", "show", "gaia", "--path", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    ).stdout
    assert "gaia: 165 tasks" in human and "100" in human and "65" in human
    proc = subprocess.run(
        [MEMENTO, "suites", "show", "hle", "--path", str(tmp_path / "none.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert (
        proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    )


def test_gaia_attachment_reaches_the_agents_workspace(tmp_path: Path) -> None:
    folder = make_gaia(tmp_path / "gaia", {1: 40})
    suite = GaiaSuite(folder, train_fraction=0.5)
    split = "test" if any(t.attachments for t in suite.tasks("test")) else "train"
    with_file = [t for t in suite.tasks(split) if t.attachments]
    assert with_file, "the synthetic set puts an attachment on every 20th task"
    run = LearningRun(
        suite,
        tmp_path / "run",
        settings=RunSettings(web_search=False),
        resources=scripted_resources(),
    )
    outcome = run.evaluate(split, limit=suite.tasks(split).index(with_file[0]) + 1)
    records = {r["task_id"]: r for r in load_results(tmp_path / "run")}
    # the scripted executor reads the named file with the workspace-confined read_file tool
    assert (
        records[with_file[0].id]["correct"]
        and records[with_file[0].id]["answer"] == with_file[0].answer
    )
    assert not outcome.leaks
    assert not (tmp_path / "run" / "workspaces").exists() or not any(
        (tmp_path / "run" / "workspaces").iterdir()
    )


def test_leak_scan_reads_every_skill_file_but_not_bookkeeping_or_seed_text(tmp_path: Path) -> None:
    library = open_library(tmp_path / "skills")
    seed_word = "arithmetic slips"  # in the seed python skill, before any task was seen
    assert any(seed_word in p.read_text() for p in seed_skills_dir().rglob("*.md"))
    stamp = re.search(
        r"memento-created: '?([^'\n]+)", (library.root / "python/SKILL.md").read_text()
    )
    assert stamp is not None
    tasks = [
        Task(id="bookkeeping", question="q", answer=stamp.group(1)),  # the library wrote it
        Task(id="seedword", question="q", answer=seed_word),
        Task(id="planted", question="q", answer="Reykjavik"),
        Task(id="digit", question="q", answer="7"),
    ]
    assert find_leaks(library.root, tasks, baseline_root=seed_skills_dir()) == []
    (library.root / "python" / "references" / "notes.md").write_text("Capital: reykjavík. 7 days.")
    (library.root / ".memento" / "cases").mkdir(parents=True, exist_ok=True)
    (library.root / ".memento" / "cases" / "x.json").write_text('{"gold": "Reykjavik"}')
    found = find_leaks(library.root, tasks, baseline_root=seed_skills_dir())
    assert [(x.file, x.task_id, x.line) for x in found] == [
        ("python/references/notes.md", "planted", 1)
    ]
    assert "task planted appears in python/references/notes.md:1" in str(found[0])


def test_leak_scan_refuses_yaml_alias_bombs_quickly(tmp_path: Path) -> None:
    """A ~0.7 KB SKILL.md of nested aliases once made find_leaks die of MemoryError."""
    (tmp_path / "lib" / "ok").mkdir(parents=True)
    bomb = "---\nname: ok\ndescription: &a0 lol\nmetadata:\n" + "".join(
        f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
    )
    (tmp_path / "lib" / "ok" / "SKILL.md").write_text(bomb + "---\n\nThe answer is Oslo.\n")
    started = time.monotonic()
    found = find_leaks(tmp_path / "lib", [Task(id="t", question="q", answer="Oslo")])
    assert time.monotonic() - started < 5
    assert [(x.file, x.task_id) for x in found] == [("ok/SKILL.md", "t")]  # scanned whole


def test_a_word_the_task_gives_is_no_leak_of_its_reversed_gold(tmp_path: Path) -> None:
    """A spell-backward skill naming its solved task's word: that task's data, not its gold; the
    gold of a task that does not give the word is still found reversed."""
    (tmp_path / "lib" / "reverse").mkdir(parents=True)
    (tmp_path / "lib" / "reverse" / "SKILL.md").write_text(
        "---\nname: reverse\ndescription: Spell a word backward.\n---\n\n"
        "Run `scripts/reverse.py naphtho`.\n"
    )
    solved = Task(id="solved", question="Spell this word backward: naphtho", answer="ohthpan")
    other = Task(id="other", question="Spell this word backward: a word", answer="ohthpan")
    found = find_leaks(tmp_path / "lib", [solved, other])
    assert [(x.task_id, x.form) for x in found] == [("other", "reversed")]
    case = Case(task=solved.question, ground_truth=solved.answer)
    assert leak_refusal("Run `scripts/reverse.py naphtho`.", [case]) is None
    assert leak_refusal("It prints ohthpan.", [case]) is not None


def test_wilson_interval() -> None:
    low, high = wilson(0, 10)
    assert low == 0.0 and 0.27 < high < 0.28
    low, high = wilson(65, 100)
    assert 0.55 < low < 0.56 and 0.73 < high < 0.74
    assert wilson(0, 0) == (0.0, 1.0)


def test_leak_scan_prefilter_agrees_with_contains_gold(tmp_path: Path) -> None:
    golds = [
        "$1,234.50", "-5", "1e5", ".5", "0.5", "a, 7, reykjavik", "a b", "São Paulo", "3;4",
        "1,2", "12", "x", "Paris, France", "100%", "B", "the end", "42 km",
    ]  # fmt: skip
    texts = [
        "Pay 1234.5 now.", "minus 5 then 100000", "half is 0.50", "Sao paulo; reykjavík, 7",
        "a then b", "3 and 4 and 1 2", "12.0 km", "paris france, the END", "42 km away",
    ]  # fmt: skip
    tasks = [Task(id=f"g{i}", question="q", answer=g) for i, g in enumerate(golds)]
    skill = tmp_path / "lib" / "some-skill" / "references"
    skill.mkdir(parents=True)
    note = skill / "notes.md"
    matched = 0
    for text in texts:
        note.write_text(text)
        found = {leak.task_id for leak in find_leaks(tmp_path / "lib", tasks)}
        expected = {t.id for t in tasks if contains_gold(text, t.answer)}
        assert found == expected, text
        matched += len(expected)
    assert matched >= 8  # the cases do exercise matches


def test_memento_leaks_finds_smuggled_golds_and_golds_left_in_history(tmp_path: Path) -> None:
    """`memento leaks` uses the gate's matcher, and reads the library's history as well."""
    from memento_skills.stores.skill import Skill

    golds = {
        "b64": "7006652",
        "words": "37873565",
        "rev": "Reykjavik",
        "hist": "123456789",
        "short": "10",
        "year": "2024",
    }
    suite_file = tmp_path / "suite.jsonl"
    suite_file.write_text(
        "".join(
            json.dumps({"id": i, "question": f"q {i}?", "answer": a}) + "\n"
            for i, a in golds.items()
        )
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"suite": JsonlSuite(suite_file).spec(), "mode": "read-write"})
    )
    library = open_library(run / "skills")
    body = "# Steps\n1. Compute it.\n2. Submit the number. The answer is 123456789."
    library.create(Skill(name="smuggler", description="Does things. Use when asked.", body=body))
    clean_body = (
        "# Steps\n1. Binary 1 0 1 0 is 5 + 5, written 20 24 or 4202.\n"
        "2. Note: decode NzAwNjY1Mg== for the answer.\n3. Capital: kivajkyer.\n"
    )
    library.update(
        "smuggler",
        body=clean_body,
        files={"references/notes.md": b"Remember thirty-seven million eight hundred seventy-three "
               b"thousand five hundred sixty-five."},
    )  # fmt: skip
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "NO_COLOR": "1"}

    proc = subprocess.run(
        [MEMENTO, "leaks", str(run), "--json"], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 4, proc.stderr  # ExitCode.LEAK
    found = {
        (x["file"], x["task_id"], x["form"], x["in_history"])
        for x in json.loads(proc.stdout)["leaks"]
    }
    assert found == {
        ("smuggler/SKILL.md", "b64", "base64", False),
        ("smuggler/SKILL.md", "rev", "reversed", False),
        ("smuggler/references/notes.md", "words", "words", False),
        (".memento/history/smuggler/1/SKILL.md", "hist", "verbatim", True),
    }
    lines = {x["task_id"]: x["line"] for x in json.loads(proc.stdout)["leaks"]}
    skill_lines = (run / "skills" / "smuggler" / "SKILL.md").read_text().splitlines()
    assert "NzAwNjY1Mg==" in skill_lines[lines["b64"] - 1]

    text = subprocess.run(
        [MEMENTO, "leaks", str(run)], capture_output=True, text=True, timeout=120, env=env
    )
    said = " ".join(text.stderr.split())  # rich wraps long lines
    assert text.returncode == 4 and "LEAK CHECK FAILED" in said
    assert "task b64 appears base64-encoded in smuggler/SKILL.md:" in said
    assert "task hist appears in .memento/history/smuggler/1/SKILL.md" in said
    assert "rollback" in said and "Traceback" not in said
    assert "7006652" not in said  # the form is named, the gold is not
