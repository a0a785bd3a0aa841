"""Workers sharing a library learn into one router: a running router loads what another process
taught it (real processes, the real weights files next to the library)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from memento_skills.nodes.routing.service import LearnedRouter
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.router_weights import RouterWeightsStore
from memento_skills.stores.skill import Skill

SKILLS = {
    "csv-report": "Summarize a CSV file into a short report of its columns and totals.",
    "email-draft": "Draft a polite email from a few notes.",
    "unit-convert": "Convert a quantity between units of length, mass or temperature.",
}
QUERY = "turn these notes into a message for my landlord"

OTHER_WORKER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from memento_skills.nodes.routing.service import LearnedRouter

    root, query, skill, vector = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    router = LearnedRouter(retrain_every=0)
    router.bind(root)
    router.observe(query, np.asarray(vector, np.float32), skill, 1.0, key=f"other-{skill}")
    print(router.version, flush=True)
    """
)


def _teach(root: Path, query: str, skill: str, vector: list[float]) -> int:
    """Another worker process observes one success; the weights version it saved."""
    taught = subprocess.run(
        [sys.executable, "-c", OTHER_WORKER, str(root), query, skill, json.dumps(vector)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(taught.stdout.strip())


@contextmanager
def _world(tmp_path: Path) -> Iterator[tuple[SkillLibrary, SkillIndex, dict[str, Skill], Any]]:
    """The SKILLS library, its synced index, and a router bound to it that saves what it learns."""
    library = SkillLibrary(tmp_path / "skills")
    for name, description in SKILLS.items():
        library.create(Skill(name=name, description=description, body=f"# {name}\n"))
    with SkillIndex(tmp_path / "index", library=library.root) as index:
        skills = {s.name: s for s in library.skills()}
        index.sync(skills.values())
        router = LearnedRouter(retrain_every=0)
        router.bind(library.root)
        yield library, index, skills, router


def test_a_running_router_loads_what_another_worker_taught(tmp_path: Path) -> None:
    with _world(tmp_path) as (library, index, skills, router):
        assert not router.refresh()  # nothing saved yet: nothing to load
        before = {c["name"]: c for c in router.rank(QUERY, skills, index, 3, "hybrid")}
        assert before["csv-report"].get("learned", 0.0) == 0.0

        # another worker (its own process and router) learns that csv-report solved this query
        vector = [float(x) for x in index.embed_query(QUERY)]
        saved = _teach(library.root, QUERY, "csv-report", vector)

        assert router.refresh() and router.version == saved
        assert not router.refresh()  # loaded once: the next check is one small read
        after = {c["name"]: c for c in router.rank(QUERY, skills, index, 3, "hybrid")}
        assert after["csv-report"]["learned"] > 0, after["csv-report"]
        assert after["csv-report"]["score"] > before["csv-report"]["score"]

        # what this worker learns next adds to the other's case, it does not replace it
        miles = [float(x) for x in index.embed_query("convert 3 miles to km")]
        assert _teach(library.root, "convert 3 miles to km", "unit-convert", miles) == saved + 1
        router.observe("a third task", None, "email-draft", 1.0, index=index, key="mine")
        assert router.model is not None
        model = router.model
        assert sorted(model.names[i] for i in set(model.case_skill.tolist())) == sorted(SKILLS)
        assert len(model.queries) == 3


class _RacedStore:
    """The router's weights store, where another worker's save lands right before this router's
    first save: the moment between loading the live weights and saving over them."""

    def __init__(self, store: Any, race: Callable[[], int]) -> None:
        self.store, self.race, self.raced = store, race, 0

    def save(self, *args: Any, **kwargs: Any) -> Any:
        if not self.raced:
            self.raced = self.race()
        return self.store.save(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_an_observation_saved_while_another_worker_saves_is_not_lost(tmp_path: Path) -> None:
    with _world(tmp_path) as (library, index, skills, router):
        router.rank(QUERY, skills, index, 3, "hybrid")
        vector = [float(x) for x in index.embed_query("convert 3 miles to km")]
        raced = _RacedStore(
            router.store,
            lambda: _teach(library.root, "convert 3 miles to km", "unit-convert", vector),
        )
        router.store = cast(RouterWeightsStore, raced)  # the real store, raced
        router.observe(QUERY, None, "email-draft", 1.0, key="mine")
        # the other worker's save came first (v1); this one was refused over it, reloaded, and
        # saved both cases as v2
        assert raced.raced == 1 and router.version == 2
        fresh = LearnedRouter(retrain_every=0)
        fresh.bind(library.root)
        assert fresh.model is not None and fresh.version == 2
        taught = {fresh.model.names[i] for i in fresh.model.case_skill.tolist()}
        assert taught == {"unit-convert", "email-draft"}
        assert set(fresh.model.observed) == {"other-unit-convert", "mine"}
