"""The learned router through the real embedder, Chroma and BM25, on a small synthetic set.

Seen skills have training runs; six of them have descriptions too vague for the untrained router
to tell apart, so only learning can route their tasks. Unseen skills have no runs and good
descriptions: learning the others must not cost them anything.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import AIMessage

from memento_skills.evals.router_eval import name_map, skill_name
from memento_skills.nodes.routing.hybrid import HybridRouter
from memento_skills.nodes.routing.model import RouterModel, Sample
from memento_skills.nodes.routing.service import LearnedRouter
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.router_weights import RouterWeightsError, RouterWeightsStore
from memento_skills.stores.skill import Skill

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
ENV = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "NO_COLOR": "1", "ANONYMIZED_TELEMETRY": "False"}

VAGUE = "General assistant for assorted everyday requests."
CITIES = ["Paris", "Lagos", "Osaka", "Lima", "Oslo", "Denver", "Cairo", "Hanoi", "Quito", "Perth"]
FOODS = ["lasagne", "pad thai", "ramen", "paella", "goulash", "falafel", "risotto", "tacos"]
NAMES = ["Anna", "Bilal", "Chen", "Dora", "Emeka", "Farah", "Gus", "Hana"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
SLOTS: dict[str, list[str]] = {
    "city": CITIES,
    "city2": CITIES[::-1],
    "food": FOODS,
    "n": ["3", "12", "45", "250", "1000", "77"],
    "cur": ["euros", "yen", "dollars", "pesos", "pounds"],
    "cur2": ["rupees", "francs", "won", "krona"],
    "lang": ["Spanish", "German", "Japanese", "Swahili", "Korean"],
    "phrase": ["good morning", "where is the station", "thank you very much", "see you soon"],
    "company": ["Apple", "Toyota", "Siemens", "Nestle", "Tesla", "Samsung"],
    "genre": ["horror", "comedy", "science fiction", "romantic", "documentary"],
    "muscle": ["legs", "back", "shoulders", "core", "arms"],
    "topic": ["the sea", "autumn leaves", "my cat", "the city at night", "old friends"],
    "person": NAMES,
    "day": DAYS,
    "thing": ["a day off", "the budget", "a refund", "the invoice", "a deadline extension"],
    "page": ["2", "5", "7", "11"],
}
# name -> (description, query templates, has training data)
SKILLS: dict[str, tuple[str, list[str], bool]] = {
    "helper-alpha": (
        VAGUE,
        [
            "convert {n} {cur} to {cur2}",
            "how many {cur2} do I get for {n} {cur}",
            "what is the exchange rate between {cur} and {cur2} today",
        ],
        True,
    ),
    "helper-beta": (
        VAGUE,
        [
            "will it rain in {city} tomorrow",
            "weather forecast for {city} this weekend",
            "how hot will it be in {city} on {day}",
        ],
        True,
    ),
    "helper-gamma": (
        VAGUE,
        [
            "how do I cook {food}",
            "give me a recipe for {food} for {n} people",
            "which ingredients do I need for {food}",
        ],
        True,
    ),
    "helper-delta": (
        VAGUE,
        [
            "what's the share price of {company}",
            "how did {company} stock perform today",
            "show me the market value of {company} shares",
        ],
        True,
    ),
    "helper-epsilon": (
        VAGUE,
        [
            "recommend a {genre} movie for tonight",
            "which {genre} films are showing in {city}",
            "suggest a good {genre} film to stream",
        ],
        True,
    ),
    "helper-zeta": (
        VAGUE,
        [
            "plan a {n} minute workout for my {muscle}",
            "exercises to strengthen my {muscle}",
            "a gym routine that targets {muscle}",
        ],
        True,
    ),
    "flight-booking": (
        "Find and book airline flights between cities, compare fares and schedules.",
        [
            "book a flight from {city} to {city2} on {day}",
            "cheapest flights from {city} to {city2}",
            "find me a plane ticket to {city2} leaving {day}",
        ],
        True,
    ),
    "translate-text": (
        "Translate words and sentences between languages.",
        [
            "translate '{phrase}' into {lang}",
            "how do you say {phrase} in {lang}",
            "what is '{phrase}' in {lang}",
        ],
        True,
    ),
    "poem-writer": (
        "Write poems and short verses on any subject.",
        [
            "write a poem about {topic}",
            "compose a short verse about {topic}",
            "a haiku on {topic}, please",
        ],
        True,
    ),
    "unit-math": (
        "Do arithmetic and unit conversions exactly.",
        [
            "what is {n} times {n}",
            "compute the square root of {n}",
            "how many centimetres are in {n} inches",
        ],
        True,
    ),
    "email-writer": (
        "Draft polite emails to colleagues and customers.",
        [
            "write an email to {person} asking for {thing}",
            "draft a message to my manager {person} about {thing}",
        ],
        False,
    ),
    "pdf-tables": (
        "Extract tables from PDF documents into CSV files.",
        [
            "pull the tables out of this PDF report",
            "extract the table on page {page} of the pdf into a spreadsheet",
        ],
        False,
    ),
    "git-helper": (
        "Explain git commands, resolve merge conflicts and manage branches.",
        [
            "how do I undo my last git commit",
            "resolve a merge conflict in git on branch {day}",
        ],
        False,
    ),
    "calendar-planner": (
        "Schedule meetings and manage calendar appointments.",
        [
            "schedule a meeting with {person} on {day}",
            "move my {day} appointment with {person} to next week",
        ],
        False,
    ),
}


def _fill(template: str, rng: random.Random) -> str:
    return template.format(**{k: rng.choice(v) for k, v in SLOTS.items()})


def make_queries(per_skill: int, seed: int, *, with_data: bool) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for name, (_, templates, has_data) in SKILLS.items():
        if has_data != with_data:
            continue
        made: set[str] = set()
        for _ in range(per_skill * 20):
            if len(made) == per_skill:
                break
            made.add(_fill(rng.choice(templates), rng))
        out += [(q, name) for q in sorted(made)]
    return out


TRAIN = make_queries(20, seed=1, with_data=True)
_train_queries = {q for q, _ in TRAIN}
TEST_SEEN = [
    (q, s) for q, s in make_queries(30, seed=2, with_data=True) if q not in _train_queries
][:80]
TEST_UNSEEN = make_queries(6, seed=3, with_data=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("router")
    library = SkillLibrary(root / "skills")
    for name, (description, _, _) in SKILLS.items():
        library.create(Skill(name=name, description=description, body=f"# {name}\n"))
    index = SkillIndex(root / "index")
    skills = {s.name: s for s in library.skills()}
    index.sync(skills.values())
    router = LearnedRouter(seed=0, retrain_every=0, autosave=False)
    report = router.fit([Sample(q, s, 1.0) for q, s in TRAIN], index=index, skills=skills)
    yield {
        "root": root,
        "library": library,
        "index": index,
        "skills": skills,
        "router": router,
        "report": report,
    }
    index.close()


def recall_at_1(router: Any, world: dict[str, Any], items: list[tuple[str, str]]) -> float:
    hits = 0
    for query, skill in items:
        top = router.rank(query, world["skills"], world["index"], 5, "hybrid")
        hits += bool(top) and top[0]["name"] == skill
    return hits / len(items)


def copy_router(world: dict[str, Any], **kwargs: Any) -> LearnedRouter:
    """A fresh router sharing the trained (immutable) model."""
    router = LearnedRouter(seed=0, retrain_every=0, autosave=False, **kwargs)
    router.model = world["router"].model
    return router


def test_learned_beats_untrained_on_seen_and_loses_nothing_on_unseen(world: dict[str, Any]) -> None:
    report = world["report"]
    assert report.classes == 10 and report.successes == len(TRAIN)
    assert report.crossfit is not None  # enough data: the fusion was fitted, not the fixed rule
    untrained, learned = HybridRouter(), world["router"]
    seen_u, seen_l = (
        recall_at_1(untrained, world, TEST_SEEN),
        recall_at_1(learned, world, TEST_SEEN),
    )
    unseen_u = recall_at_1(untrained, world, TEST_UNSEEN)
    unseen_l = recall_at_1(learned, world, TEST_UNSEEN)
    assert seen_l >= 0.9 and seen_l >= seen_u + 0.3, (seen_u, seen_l)
    assert unseen_l >= unseen_u, (unseen_u, unseen_l)


def test_without_evidence_it_ranks_exactly_like_the_untrained_router(world: dict[str, Any]) -> None:
    fresh = LearnedRouter(autosave=False)
    for query, _ in TEST_SEEN[:5] + TEST_UNSEEN[:5]:
        a = fresh.rank(query, world["skills"], world["index"], 5, "hybrid")
        b = HybridRouter().rank(query, world["skills"], world["index"], 5, "hybrid")
        assert [(c["name"], c["score"]) for c in a] == [(c["name"], c["score"]) for c in b]


def test_skill_vectors_from_the_index_cache_rank_as_those_read_from_chroma(
    world: dict[str, Any],
) -> None:
    """Lexical-only hits and the learned extras take stored vectors from the index's memory."""
    router, index, skills = world["router"], world["index"], world["skills"]
    queries = [q for q, _ in TEST_SEEN[:6] + TEST_UNSEEN[:6]]
    for q in queries:
        router.rank(q, skills, index, 3, "hybrid")
    assert index._vector_cache
    warm = [router.rank(q, skills, index, 3, "hybrid") for q in queries]
    cold = []
    for q in queries:
        index._drop_vectors()
        cold.append(router.rank(q, skills, index, 3, "hybrid"))
    assert warm == cold


def test_training_is_deterministic_given_a_seed(world: dict[str, Any]) -> None:
    samples = [Sample(q, s, 1.0) for q, s in TRAIN]
    models = []
    for _ in range(2):
        router = LearnedRouter(seed=7, retrain_every=0, autosave=False)
        router.fit(samples, index=world["index"], skills=world["skills"])
        assert router.model is not None
        models.append(router.model)
    a, b = (m.arrays() for m in models)
    assert a.keys() == b.keys() and "fusion_w1" in a
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    query = TEST_SEEN[0][0]
    ranks = []
    for model in models:
        router = LearnedRouter(autosave=False)
        router.model = model
        ranks.append(router.rank(query, world["skills"], world["index"], 5, "hybrid"))
    assert ranks[0] == ranks[1]


def test_online_update_moves_the_right_skill_up(world: dict[str, Any]) -> None:
    router = LearnedRouter(retrain_every=0, autosave=False)  # untrained: only what it observes
    skills, index = world["skills"], world["index"]
    query = "how many rupees do I get for 250 euros"
    paraphrase = "how many rupees would I get for 300 euros"

    def position(q: str) -> int:
        return [c["name"] for c in router.rank(q, skills, index, 14, "hybrid")].index(
            "helper-alpha"
        )

    before, before_para = position(query), position(paraphrase)
    assert before > 0  # vague description: retrieval alone cannot know
    router.observe(query, None, "helper-alpha", 1.0)
    after = router.rank(query, skills, index, 10, "hybrid")
    assert after[0]["name"] == "helper-alpha" and after[0]["learned"] > 0
    assert position(paraphrase) < before_para  # a paraphrase moves up too

    # a failure pushes its skill down on that query while the skill is unchanged
    wrong = after[1]["name"]
    router.observe("convert 12 yen to won", None, wrong, 0.0, version=1)
    ranked = router.rank("convert 12 yen to won", skills, index, 10, "hybrid")
    demoted = next(c for c in ranked if c["name"] == wrong)
    assert demoted["learned"] < 0
    # ... but a refined skill (a newer version) gets its retry
    refined = {**skills, wrong: skills[wrong].with_changes(version=2)}
    ranked = router.rank("convert 12 yen to won", refined, index, 10, "hybrid")
    assert next(c for c in ranked if c["name"] == wrong)["learned"] >= 0


def test_observe_after_a_trained_fit_keeps_learning(world: dict[str, Any]) -> None:
    router = copy_router(world)
    skills, index = world["skills"], world["index"]
    query = "where is the station in Swahili, said politely"
    target = "poem-writer"  # far from this query, yet it is what succeeded here

    def position() -> int:
        names = [c["name"] for c in router.rank(query, skills, index, 25, "hybrid")]
        return names.index(target) if target in names else len(names)

    before = position()
    assert before > 0
    router.observe(query, None, target, 1.0)
    assert position() < before


def test_weights_persist_and_reload_in_a_fresh_process(
    world: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "router"
    router = copy_router(world, weights_dir=folder)
    saved = router.save()
    assert saved is not None and saved.version == 1 and Path(saved.path).exists()
    text = "translate 'good evening' into Korean"
    router.observe(text, world["index"].embed_query(text), "translate-text", 1.0)
    assert router.save() is not None and RouterWeightsStore(folder).load() is not None
    query = TEST_SEEN[3][0]
    expected = router.rank(query, world["skills"], world["index"], 5, "hybrid")
    script = f"""
import json
from memento_skills.nodes.routing.service import LearnedRouter
r = LearnedRouter({str(folder)!r}, autosave=False)
m = r.model
print(json.dumps({{"version": r.version, "cases": len(m.case_skill), "classes": len(m.classes),
                  "fusion": m.fusion is not None, "error": r.load_error,
                  "sum": float(m.weights.sum()), "last": m.queries[-1]}}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    model = router.model
    assert model is not None
    assert got == {
        "version": 2,
        "cases": len(TRAIN) + 1,
        "classes": 10,
        "fusion": True,
        "error": None,
        "sum": float(model.weights.sum()),
        "last": "translate 'good evening' into Korean",
    }
    # the reloaded router ranks the same
    reloaded = LearnedRouter(folder, autosave=False)
    assert reloaded.rank(query, world["skills"], world["index"], 5, "hybrid") == expected
    assert len(list(folder.glob("v*.npz"))) <= 5


def test_corrupt_weights_give_a_clear_error_and_untrained_routing(
    world: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "router"
    saved = copy_router(world, weights_dir=folder).save()
    assert saved is not None
    data = Path(saved.path).read_bytes()
    Path(saved.path).write_bytes(data[: len(data) // 2])  # truncated by a crash or a bad copy
    with pytest.raises(RouterWeightsError, match=r"checksum.*memento router train"):
        RouterWeightsStore(folder).load()
    with pytest.warns(UserWarning, match="routing untrained"):
        router = LearnedRouter(folder, autosave=False)
    assert router.model is None and router.load_error and str(saved.path) in router.load_error
    query = TEST_SEEN[0][0]
    assert router.rank(query, world["skills"], world["index"], 5, "hybrid") == HybridRouter().rank(
        query, world["skills"], world["index"], 5, "hybrid"
    )
    (folder / "current.json").write_text("{not json")
    with pytest.raises(RouterWeightsError, match=r"current\.json is unreadable"):
        RouterWeightsStore(folder).load()
    # a damaged file with a matching checksum (hand-written arrays) is caught by the shape check
    store = RouterWeightsStore(folder)
    arrays = world["router"].model.arrays()
    arrays["weights"] = arrays["weights"][:5]
    store.save(arrays, world["router"].model.header())
    with pytest.warns(UserWarning, match="inconsistent shapes"):
        assert LearnedRouter(folder, autosave=False).model is None


def test_embedder_dimension_change_disables_learning_with_a_reason(world: dict[str, Any]) -> None:
    router = LearnedRouter(autosave=False)
    router.model = RouterModel.empty(8).with_cases(
        [Sample("q", "helper-alpha", 1.0)], np.ones((1, 8), np.float32)
    )
    with pytest.warns(UserWarning, match="8-dimensional"):
        top = router.rank("weather in Oslo", world["skills"], world["index"], 5, "hybrid")
    assert top == HybridRouter().rank(
        "weather in Oslo", world["skills"], world["index"], 5, "hybrid"
    )
    assert router.model is None and "memento router train" in str(router.load_error)


def test_the_graph_feeds_every_judged_run_to_the_router(tmp_path: Path) -> None:
    from memento_skills.graph.builder import build_graph
    from memento_skills.graph.context import Context
    from memento_skills.stores.settings import open_library
    from memento_skills.testing import ScriptedChatModel

    library = open_library(tmp_path / "skills")
    index = SkillIndex(tmp_path / "index")
    router = LearnedRouter(retrain_every=0)
    answer = ScriptedChatModel(script=[lambda m: AIMessage(content="42")] * 10)
    graph = build_graph(
        chat_models={"executor": answer, "judge": answer, "writer": answer, "router": answer},
        library=library,
        index=index,
        router=router,
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"),
        run_log=str(tmp_path / "runs.jsonl"),
        write_policy="full",  # passing runs: utility and regression cases only, no skill edits
        web_search=False,
        max_attempts=1,
    )
    try:
        out = graph.invoke(
            {"task": "What is six times seven? Use python.", "ground_truth": "42"}, context=ctx
        )
        again = graph.invoke(
            {"task": "What is seven times six? Use python.", "ground_truth": "42"}, context=ctx
        )
    finally:
        index.close()
    assert out["verdict"]["passed"] and again["verdict"]["passed"]
    model = router.model
    assert model is not None and model.case_reward.tolist() == [1.0, 1.0]
    assert model.queries[0] == "What is six times seven? Use python."
    assert model.names[0] == out["selected_skill"]
    assert router.store is not None and router.store.root == library.root / ".memento" / "router"
    assert RouterWeightsStore(router.store.root).load() is not None  # saved after each run
    from memento_skills.stores.run_log import RunLog

    first, second = (r["candidates"] for r in RunLog(ctx.run_log).records())
    assert "learned" not in first[0]  # nothing learned yet: the untrained score
    top = second[0]
    assert top["name"] == out["selected_skill"] and top["learned"] > 0


def test_the_routers_and_the_index_fit_the_seams_the_nodes_are_given(
    world: dict[str, Any],
) -> None:
    """The builder injects these through the Protocols of routing/seams.py (mypy checks the
    signatures through the annotated names; isinstance checks the methods are there)."""
    from memento_skills.graph.resources import Resources
    from memento_skills.nodes.routing.seams import (
        LearningRouter,
        Retriever,
        RetrieverSource,
        Router,
    )

    learned: LearningRouter = LearnedRouter(autosave=False)
    untrained: Router = HybridRouter()
    index: Retriever = world["index"]
    source: RetrieverSource = Resources()
    assert isinstance(learned, LearningRouter) and isinstance(learned, Router)
    assert isinstance(untrained, Router) and not isinstance(untrained, LearningRouter)
    assert isinstance(index, Retriever) and isinstance(source, RetrieverSource)


def test_build_graph_makes_one_learned_router_per_resources() -> None:
    """No router given: the builder makes a LearnedRouter and keeps it on the resources, so
    every graph built from them (and the write phase) learns in the same one."""
    from memento_skills.graph.builder import build_graph
    from memento_skills.graph.resources import Resources

    resources = Resources()
    assert resources.router is None
    build_graph(resources=resources)
    made = resources.router
    assert isinstance(made, LearnedRouter)
    build_graph(resources=resources)
    assert resources.router is made
    given = HybridRouter()
    build_graph(resources=(pinned := Resources(router=given)))
    assert pinned.router is given


def test_skill_names_from_tool_names_are_valid_and_deterministic() -> None:
    assert skill_name("PDF&URLTool") == "pdf-url-tool"
    assert (
        skill_name("MixerBox_Translate_AI_language_tutor")
        == "mixer-box-translate-ai-language-tutor"
    )
    assert skill_name("AI2sql") == "ai2sql"
    mapped = name_map(["Foo Bar", "foo_bar", "FooBar", "x" * 80])
    assert list(mapped.values()) == ["foo-bar", "foo-bar-2", "foo-bar-3", "x" * 64]
    assert name_map(["Foo Bar", "foo_bar"]) == name_map(["Foo Bar", "foo_bar"])


# ----------------------------------------------------------------------------- the CLI

MEMENTO = str(Path(sys.executable).with_name("memento"))
RAW = {"pdf-tables": "PDFTables"}  # a tool-style name the eval must map to a skill name


def memento(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**ENV, "MEMENTO_HOME": str(home)}
    proc = subprocess.run(
        [MEMENTO, "router", *args], env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    skills = [{"name": RAW.get(n, n), "description": d} for n, (d, _, _) in SKILLS.items()]
    train = [{"query": q, "skill": s} for q, s in random.Random(0).sample(TRAIN, len(TRAIN))]
    test = [{"query": q, "skill": RAW.get(s, s)} for q, s in TEST_SEEN[::4] + TEST_UNSEEN[::2]]
    return {
        "skills": write_jsonl(tmp_path / "skills.jsonl", skills),
        "train": write_jsonl(tmp_path / "train.jsonl", train),
        "test": write_jsonl(tmp_path / "test.jsonl", test),
    }


def test_eval_cli_prints_the_figures_as_json(files: dict[str, Path], tmp_path: Path) -> None:
    proc = memento(
        "eval",
        *("--skills", str(files["skills"]), "--train", str(files["train"])),
        *("--test", str(files["test"]), "--json"),
        home=tmp_path / "home",
    )
    data = json.loads(proc.stdout)
    quality = {"recall_at_1", "recall_at_5", "mrr", "n_test"}
    assert set(data) == quality | {"p50_ms", "p95_ms", "seen", "unseen"}
    assert set(data["seen"]) == quality and set(data["unseen"]) == quality
    n_test = len(files["test"].read_text().splitlines())
    assert data["n_test"] == n_test == data["seen"]["n_test"] + data["unseen"]["n_test"]
    assert data["unseen"]["n_test"] == len(TEST_UNSEEN[::2])
    assert 0 <= data["unseen"]["recall_at_1"] <= data["unseen"]["recall_at_5"] <= 1
    assert data["seen"]["recall_at_1"] >= 0.7 and 0 < data["p50_ms"] <= data["p95_ms"]
    human = memento(
        "eval",
        *("--skills", str(files["skills"]), "--train", str(files["train"])),
        *("--test", str(files["test"])),
        home=tmp_path / "home",
    ).stdout
    assert "unseen skills" in human and "p50" in human


def test_eval_cli_names_bad_input(files: dict[str, Path], tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"query": "hello", "skill": "NoSuchTool"}])
    proc = memento(
        "eval",
        *("--skills", str(files["skills"]), "--train", str(files["train"])),
        *("--test", str(bad), "--json"),
        home=tmp_path / "home",
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # bad input
    assert "'NoSuchTool'" in proc.stderr and "not in the skills file" in proc.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"query": "x"}\n')
    proc = memento(
        "eval",
        *("--skills", str(files["skills"]), "--train", str(broken), "--test", str(bad)),
        home=tmp_path / "home",
        check=False,
    )
    assert proc.returncode == 2 and "broken.jsonl:1" in proc.stderr


def test_replay_cli_prints_the_curve_and_writes_a_png(
    files: dict[str, Path], tmp_path: Path
) -> None:
    png = tmp_path / "out" / "curve.png"
    proc = memento(
        "replay",
        *("--skills", str(files["skills"]), "--stream", str(files["train"])),
        *("--block", "50", "--png", str(png), "--json", "--temperature", "0.02"),
        home=tmp_path / "home",
    )
    data = json.loads(proc.stdout)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["tasks"] == len(TRAIN) and len(data["blocks"]) == 4
    assert all(0 <= b["hit_rate"] <= 1 for b in data["blocks"])
    # it learns from rewards alone: the last block beats the first and the untrained router
    first, last = data["blocks"][0], data["blocks"][-1]
    assert last["hit_rate"] > first["hit_rate"] and last["hit_rate"] > last["untrained_hit_rate"]


def test_train_cli_learns_from_the_run_log(tmp_path: Path) -> None:
    library = SkillLibrary(tmp_path / "lib")
    for name, (description, _, _) in SKILLS.items():
        library.create(Skill(name=name, description=description, body=f"# {name}\n"))
    runs = [
        {"task": q, "skill": s, "reward": 1.0, "skill_version": 1, "verdict": {"passed": True}}
        for q, s in TRAIN[:12]
    ]
    runs.append({"task": "convert 3 yen to won", "skill": "poem-writer", "reward": 0.0})
    runs.append({"task": "no skill fitted", "skill": None, "reward": 0.0})
    log = write_jsonl(tmp_path / "runs.jsonl", runs)  # type: ignore[arg-type]
    args = (
        "train",
        "--from",
        str(log),
        "--dir",
        str(library.root),
        "--index",
        str(tmp_path / "ix"),
    )
    data = json.loads(memento(*args, "--json", home=tmp_path / "home").stdout)
    assert data["samples"] == 13 and data["successes"] == 12 and data["failures"] == 1
    assert data["version"] == 1 and data["embedded"] == 13
    assert data["crossfit"] is None  # too few runs to fit the fusion: the fixed rule
    assert Path(data["weights"]).parent == library.root / ".memento" / "router"
    router = LearnedRouter(autosave=False)
    router.bind(library.root)
    assert router.model is not None and len(router.model.case_skill) == 13
    again = json.loads(memento(*args, "--json", home=tmp_path / "home").stdout)
    assert again["version"] == 2 and again["embedded"] == 0  # vectors reused from the weights
    missing = memento("train", "--json", home=tmp_path / "empty", check=False)
    assert missing.returncode == 2 and "no run log" in missing.stderr
