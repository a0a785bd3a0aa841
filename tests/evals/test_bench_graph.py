"""The graph benchmark at toy sizes: the figures exist and make sense (timing is not judged here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memento_skills.evals.bench_graph import listing_words, run_graph_bench
from memento_skills.evals.bench_store import write_library


def test_small_bench_reports_sane_figures(tmp_path: Path) -> None:
    result = run_graph_bench(tasks=4, warmup=1, sizes=(3, 40), workdir=tmp_path)
    for key in (
        "overhead_ms_p50",
        "overhead_ms_p95",
        "overhead_ms_p50_40",
        "prompt_tokens_3",
        "prompt_tokens_40",
        "listing_tokens_40",
    ):
        assert isinstance(result[key], int | float) and result[key] > 0, key
    assert result["overhead_ms_p50"] <= result["overhead_ms_p95"]
    # the executor sees one skill whatever the library size; a full listing grows with it
    assert result["prompt_tokens_40"] < 2 * result["prompt_tokens_3"]
    assert result["listing_tokens_40"] > result["prompt_tokens_40"]
    assert 0 <= result["same_skill_share"] <= 1
    assert result["tasks"] == 4 and "words" in result["token_unit"]
    # the benchmark writes real folders and a real run log
    assert len(list((tmp_path / "skills-40").glob("*/SKILL.md"))) == 40
    assert len((tmp_path / "runs-40.jsonl").read_text().splitlines()) == 5


def test_listing_counts_every_skill(tmp_path: Path) -> None:
    skills = write_library(tmp_path, 5)
    per_skill = [listing_words([s]) for s in skills]
    assert listing_words(skills) == sum(per_skill)
    assert all(n >= 3 for n in per_skill)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"sizes": (10, 10)}, "small then large"), ({"tasks": 0}, "tasks must be")],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_graph_bench(**kwargs)
