"""The write phase moves lifecycles through the real graph: a draft that keeps failing retires,
and a retired skill is then neither routed nor refined (real library, index, gate replays)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from memento_skills.graph.builder import build_graph
from memento_skills.graph.context import Context
from memento_skills.nodes.writing.lifecycle import DRAFT_USES
from memento_skills.stores.index import SkillIndex
from memento_skills.stores.library import SkillLibrary
from memento_skills.stores.run_log import RunLog
from memento_skills.stores.skill import Skill
from memento_skills.testing import ScriptedChatModel

DRAFT = "count-vowels"
WORDS = ["banana", "kitchen", "umbrella", "orchestra", "window", "elephant"]


def writer(messages: list[BaseMessage]) -> dict[str, Any]:
    prompt = "\n".join(str(m.content) for m in messages)
    if "Work out why" in prompt:
        return {"cause": "skill", "failed_step": None, "action": "refine", "tip": "Count again."}
    if "Improve this skill" in prompt:
        return {"edits": [], "append": "Count each letter twice.", "rationale": "care"}
    return {}  # a new skill: unusable, so nothing else enters the library


def draft_world(tmp_path: Path, policy: str) -> tuple[SkillLibrary, list[str | None], Context]:
    """A draft that fits vowel-counting tasks, an executor that always answers 0, and WORDS run
    through the graph under write `policy`: the library, the skill each run chose, the context."""
    library = SkillLibrary(tmp_path / "skills")
    library.create(
        Skill(
            name=DRAFT,
            description="Count the vowels in an English word. Use when a task asks how many "
            "vowels a word has.",
            body="Call python to count the letters a, e, i, o and u, then submit the count.",
            allowed_tools=("python",),
            first_tools=("python",),
            provenance="learned",
            lifecycle="draft",
        )
    )
    index = SkillIndex(tmp_path / "index")
    wrong = ScriptedChatModel(script=[lambda m: AIMessage(content="0")] * 2000)
    graph = build_graph(
        chat_models={
            "executor": wrong,
            "judge": wrong,
            "writer": ScriptedChatModel(script=[writer] * 200),
            "router": wrong,
        },
        library=library,
        index=index,
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"),
        run_log=str(tmp_path / "runs.jsonl"),
        max_attempts=1,
        web_search=False,
        write_policy=policy,  # type: ignore[arg-type]
    )
    routed: list[str | None] = []
    try:
        for i, word in enumerate(WORDS):
            gold = str(sum(ch in "aeiou" for ch in word))
            out = graph.invoke(
                {
                    "task": f"How many vowels does the word {word!r} have?",
                    "task_id": f"w{i}",
                    "ground_truth": gold,
                },
                context=ctx,
            )
            routed.append(out["selected_skill"])
    finally:
        index.close()
    return library, routed, ctx


def test_a_draft_that_keeps_failing_is_retired_then_neither_routed_nor_refined(
    tmp_path: Path,
) -> None:
    library, routed, ctx = draft_world(tmp_path, "full")
    assert routed == [DRAFT] * DRAFT_USES + [None] * (len(WORDS) - DRAFT_USES)
    skill = library.get(DRAFT)
    assert skill.lifecycle == "deprecated" and "never passed" in skill.lifecycle_reason
    assert skill.utility.failures == DRAFT_USES
    writes = [w for r in RunLog(ctx.run_log).records() for w in r.get("writes", [])]
    (retired,) = [w for w in writes if w["action"] == "lifecycle"]
    assert "draft -> deprecated" in retired["reason"]
    # the refine proposed right after the retirement is refused, none is ever written
    assert any("is deprecated" in w["reason"] for w in writes)
    assert not [w for w in writes if w["action"] == "refine" and w["accepted"]]
    # the retirement is a version of its own: rollback brings the draft back, routed again
    assert library.read_version(DRAFT, skill.version - 1).lifecycle == "draft"
    assert library.rollback(DRAFT, skill.version - 1).lifecycle == "draft"


def test_a_write_policy_that_may_not_change_skills_retires_none(tmp_path: Path) -> None:
    library, routed, _ = draft_world(tmp_path, "create")
    assert routed == [DRAFT] * len(WORDS)
    assert library.get(DRAFT).lifecycle == "draft" and library.get(DRAFT).version == 1


def test_a_new_skill_near_a_retired_one_is_written_beside_it_never_into_it(
    tmp_path: Path,
) -> None:
    library = SkillLibrary(tmp_path / "skills")
    description = "Count the vowels in an English word. Use when a task asks how many vowels."
    retired = library.create(
        Skill(
            name=DRAFT,
            description=description,
            body="Answer 0.",
            provenance="learned",
            lifecycle="deprecated",
        )
    )

    def proposes_the_same(messages: list[BaseMessage]) -> dict[str, Any]:
        prompt = "\n".join(str(m.content) for m in messages)
        if "Work out why" in prompt:
            return {"cause": "no-skill", "failed_step": None, "action": "create", "tip": ""}
        if "Write a new skill" in prompt:
            return {
                "name": "Count Vowels",
                "description": description,
                "body": "Call python to count the letters a, e, i, o and u; submit the count.",
                "allowed_tools": ["python"],
            }
        raise AssertionError(f"unexpected writer prompt: {prompt[:200]}")

    index = SkillIndex(tmp_path / "index")
    wrong = ScriptedChatModel(script=[lambda m: AIMessage(content="0")] * 200)
    graph = build_graph(
        chat_models={
            "executor": wrong,
            "judge": wrong,
            "writer": ScriptedChatModel(script=[proposes_the_same] * 20),
            "router": wrong,
        },
        library=library,
        index=index,
    )
    ctx = Context(
        workspace_dir=str(tmp_path / "ws"),
        run_log=str(tmp_path / "runs.jsonl"),
        max_attempts=1,
        web_search=False,
    )
    try:
        out = graph.invoke(
            {"task": "How many vowels does 'banana' have?", "task_id": "b", "ground_truth": "3"},
            context=ctx,
        )
    finally:
        index.close()
    assert out["selected_skill"] is None  # the retired skill is not routed
    (made,) = [w for w in out["writes"] if w["action"] in ("create", "rollback", "refine")]
    assert made["skill"] != DRAFT, made  # a new skill, not a refine of the retired one
    assert library.get(DRAFT).version == retired.version  # untouched
