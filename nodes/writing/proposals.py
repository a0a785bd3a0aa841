"""The writer's proposals: a patch to a skill or a new skill, built, checked and announced.

A proposal is the one typed `Proposal` of the state (graph/state.py): the full SKILL.md it would
write, the diff against the version it is based on, and why. Here too: the outcome a proposal
comes to (the `LibraryWrite` recorded for it), and `effect_key`, which keys every side effect
it leads to so that a node replayed after a crash makes it once.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

from memento_skills.graph.events import emit
from memento_skills.graph.models import structured
from memento_skills.graph.state import LibraryWrite, Proposal
from memento_skills.nodes.execution.tools import TOOL_NAMES
from memento_skills.nodes.gate import GateResult
from memento_skills.nodes.placeholders import generalise
from memento_skills.nodes.writing.checks import (
    code_refusal,
    file_refusal,
    kind_refusal,
    missing_file_refusal,
)
from memento_skills.nodes.writing.heuristics import (
    pattern_fits,
    slug,
    unique_name,
    writer_text,
)
from memento_skills.nodes.writing.prompts import CREATE_PROMPT, PATCH_PROMPT, NewSkill, SkillPatch
from memento_skills.stores.mcp_config import is_mcp_tool_name
from memento_skills.stores.skill import Skill, SkillError, clean_skill, serialise

NEAR_DUPLICATE = 0.9
"""Cosine similarity of descriptions above which a new skill is merged into the existing one."""


def effect_key(state: Mapping[str, Any], effect: str) -> str:
    """The key of one side effect of this attempt ("utility", "change", "log", "router"): the
    same when the node that makes it is replayed after a crash, so the effect is made once.
    Empty (no de-duplication) for a state begun before run ids existed."""
    run_id = state.get("run_id")
    if not run_id:
        return ""
    text = f"{run_id}:{int(state.get('attempt') or 0)}:{effect}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def emit_proposal(proposal: Proposal) -> None:
    """Announce a proposal on the event stream (the CLI and Studio show its diff)."""
    emit(
        "reflect_write",
        {
            "event": "proposal",
            "action": proposal["action"],
            "skill": proposal["skill"],
            "diff": proposal["diff"],
        },
    )


def make_proposal(
    action: Literal["refine", "create"],
    new: Skill,
    old: Skill | None,
    reason: str,
    files: Mapping[str, str] | None = None,
    old_files: Mapping[str, str] | None = None,
) -> Proposal:
    """`new` as a proposal against `old` (None: a new skill), refused early if the library
    would refuse it or its body adds code its tools cannot run (nodes/writing/checks.py).

    `files` (skill-relative path -> text) are written with it and shown in its diff, one
    unified diff per file against `old_files` (the old version's text of those paths); they
    are checked before anything is written (docs/decisions.md#script-skills)."""
    files = {rel: _ended(text) for rel, text in (files or {}).items()}
    refusal = file_refusal(files)
    if refusal is not None:
        raise SkillError(refusal)
    new, removed = clean_skill(new)
    if removed:
        note = (
            f" (removed {sum(removed.values())} control character(s) from the writer's "
            f"{', '.join(sorted(removed))})"
        )
        reason = reason[: 500 - len(note)] + note
        emit(
            "reflect_write",
            {"event": "cleaned", "skill": new.name, "removed_control_characters": removed},
        )
    refusal = code_refusal(new.body, new.allowed_tools or TOOL_NAMES, old.body if old else "")
    if refusal is None and old is None:
        refusal = missing_file_refusal(new.body, files)
    if refusal is not None:
        raise SkillError(refusal)
    # refuse early what the library would refuse: the same bytes, read back the same way
    new_md = serialise(new, f"<proposed {new.name}>").decode("utf-8")
    old_md = old.to_markdown() if old else ""
    diff = "".join(
        difflib.unified_diff(
            old_md.splitlines(keepends=True),
            new_md.splitlines(keepends=True),
            fromfile=f"{new.name}@v{old.version}" if old else "/dev/null",
            tofile=f"{new.name}@proposed",
        )
    )
    for rel, text in sorted(files.items()):
        before = (old_files or {}).get(rel)
        diff += "".join(
            difflib.unified_diff(
                (before or "").splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{new.name}@v{old.version}/{rel}"
                if old and before is not None
                else "/dev/null",
                tofile=f"{new.name}@proposed/{rel}",
            )
        )
    proposal = Proposal(
        action=action,
        skill=new.name,
        base_version=old.version if old else None,
        skill_md=new_md,
        diff=diff,
        reason=reason[:500],
    )
    if files:
        proposal["files"] = files
    return proposal


def _ended(text: str) -> str:
    """`text` ending in a newline, so the last line of a file diff is a whole line."""
    return text if text.endswith("\n") else text + "\n"


def example_proposal(skill: Skill, example: str) -> Proposal:
    """`skill` with a worked example section appended (keep what worked)."""
    new = skill.with_changes(body=skill.body.rstrip() + "\n\n" + example)
    return make_proposal("refine", new, skill, "keep what worked: a worked example")


def propose_patch(
    writer: Any,
    skill: Skill,
    analysis: str,
    extra: str = "",
    policy: Mapping[str, Any] | None = None,
    evidence: str = "",
    task: str = "",
) -> Proposal:
    """Ask the writer for a minimal patch to `skill`; with a behaviour `policy`, an unusable
    patch still carries the policy."""
    try:
        patch = ask_patch(writer, skill, analysis, extra)
    except Exception:
        if not policy:
            raise
        patch = SkillPatch(rationale="policy from the trajectory (the writer's patch was unusable)")
    return apply_patch(skill, patch, analysis, policy, evidence, task)


def ask_patch(writer: Any, skill: Skill, analysis: str, extra: str) -> SkillPatch:
    """The writer's patch to `skill` for what went wrong."""
    return structured(
        writer,
        SkillPatch,
        PATCH_PROMPT.format(
            name=skill.name,
            version=skill.version,
            skill_md=skill.authored_text(),  # not the counts, times and hashes it keeps
            analysis=analysis + extra,
            tools=", ".join(TOOL_NAMES),
        ),
    )


def apply_patch(
    skill: Skill,
    patch: SkillPatch,
    analysis: str,
    policy: Mapping[str, Any] | None,
    evidence: str = "",
    task: str = "",
) -> Proposal:
    """`skill` with the writer's `patch` and the behaviour `policy` applied, generalised; a
    patch that changes nothing is refused."""
    body = skill.body
    applied = 0
    for edit in patch.edits:
        if edit.old and edit.old in body and edit.old != edit.new:
            body = body.replace(edit.old, edit.new, 1)
            applied += 1
    appended = writer_text(patch.append or "", task, analysis)
    if appended:
        body = body.rstrip() + "\n\n" + appended
        applied += 1
    changes: dict[str, Any] = {"body": generalise(body, task)}
    description = generalise((patch.description or "").strip(), task)
    if description and description != skill.description:
        changes["description"] = description
        applied += 1
    if patch.allowed_tools is not None:
        tools = tuple(t for t in patch.allowed_tools if t in TOOL_NAMES)
        if tools:  # the writer is shown our tools only: the skill's MCP names stay
            tools += tuple(t for t in skill.allowed_tools if is_mcp_tool_name(t))
        if tools and tools != skill.allowed_tools:
            changes["allowed_tools"] = tools
            applied += 1
    proposed_policy = dict(policy or {})
    if patch.first_tool:
        first = tuple(t for t in patch.first_tool if t in TOOL_NAMES)
        if first:
            proposed_policy.setdefault("first_tools", first)
    if patch.answer_pattern and pattern_fits(patch.answer_pattern, evidence):
        proposed_policy.setdefault("answer_pattern", patch.answer_pattern)
    if _unfit_pattern(proposed_policy.get("answer_pattern"), task):
        del proposed_policy["answer_pattern"]
    for key, value in proposed_policy.items():
        if getattr(skill, key) != value:
            changes[key] = value
            applied += 1
    allowed = changes.get("allowed_tools", skill.allowed_tools)
    first_tools = changes.get("first_tools", skill.first_tools)
    if allowed and not set(first_tools) <= set(allowed) | {"submit_answer"}:
        changes["allowed_tools"] = (*allowed, *(t for t in first_tools if t not in allowed))
    if not applied:
        raise SkillError("the patch changed nothing (no edit matched the body)")
    new = skill.with_changes(**changes)
    return make_proposal("refine", new, skill, f"refine: {patch.rationale or analysis}")


def propose_new(
    writer: Any,
    library: Any,
    synced_index: Callable[[], Any],
    task: str,
    analysis: str,
    policy: Mapping[str, Any],
) -> Proposal:
    """Ask the writer for a new skill for this kind of task; a near-duplicate of an existing
    skill (by `synced_index`, the index in line with the library) becomes a patch to it."""
    guide = ""
    try:
        guide = library.get("skill-creator").body
    except SkillError:
        guide = "Name it for the kind of task; describe what it does and when to use it; give concrete steps."
    spec = structured(
        writer,
        NewSkill,
        CREATE_PROMPT.format(
            guide=guide, task=task, analysis=analysis, tools=", ".join(TOOL_NAMES)
        ),
    )
    name = slug(spec.name)
    tools = tuple(t for t in spec.allowed_tools if t in TOOL_NAMES)
    if tools and "submit_answer" not in tools:
        tools = (*tools, "submit_answer")
    first = policy.get("first_tools", ())
    if first and tools and not set(first) <= set(tools):
        tools = (*tools, *(t for t in first if t not in tools))
    pattern = policy.get("answer_pattern")
    description = generalise(spec.description.strip(), task)
    body = writer_text(spec.body, task, analysis)
    if body != spec.body.strip():
        emit("reflect_write", {"event": "writer_text_dropped", "kept": len(body)})
    new = Skill(
        first_tools=first,
        answer_pattern=None if _unfit_pattern(pattern, task) else pattern,
        name=name,
        description=description,
        body=generalise(body, task) or description,  # all echo: the policy is what it carries
        allowed_tools=tools,
        provenance="learned",
    )
    # near-duplicate: refine the existing skill instead of adding a second one
    index = synced_index()
    nearest = index.dense_search(new.document, 1) if index.count() else []
    existing = library.get(nearest[0][0]) if nearest and nearest[0][1] >= NEAR_DUPLICATE else None
    if existing is not None and existing.lifecycle != "deprecated":  # retired: never refined
        emit(
            "reflect_write",
            {"event": "near_duplicate", "of": existing.name, "similarity": nearest[0][1]},
        )
        return propose_patch(
            writer,
            existing,
            analysis,
            extra=f"\nA new skill was proposed that duplicates this one; merge its useful steps:\n{new.body}",
            task=task,
        )
    if library.exists(name):
        name = unique_name(library, name)
        new = new.with_changes(name=name)
    return make_proposal("create", new, None, f"create: {analysis}")


def _unfit_pattern(pattern: str | None, task: str) -> bool:
    """An answer pattern that cannot give the kind of answer `task` asks for is not set (a
    numbers-only pattern turns a hex or word answer into a number), and the event says why."""
    reason = kind_refusal(pattern, task) if pattern else None
    if reason is not None:
        emit("reflect_write", {"event": "answer_pattern_dropped", "reason": reason})
    return reason is not None


def on_probation(proposal: Proposal, result: GateResult, carries_policy: bool) -> bool:
    """A new skill that carries a tool policy goes live even if its replay still fails.

    It replaces nothing: the task failed without it, and it has no regression cases to break
    (a leak is still refused). Rolling it back threw away the behaviour it carries
    (docs/decisions.md#probation): kept, it routes the next tasks of its kind to a computing step,
    gains a worked example once one of them passes, and is refined like any skill; its failures
    lower its utility prior. A skill of prose alone changes no behaviour the replay did not
    already show: it is deleted as before.
    """
    return (
        proposal["action"] == "create"
        and carries_policy
        and not result.broken
        and result.failing_fixed is False
    )


def trial_base(proposal: Proposal) -> int | None:
    """The version a change on trial falls back to: none for a new skill."""
    return proposal["base_version"] if proposal["action"] == "refine" else None


def already_written(proposal: Proposal, version: int, live: bool) -> LibraryWrite:
    """The outcome of a change found written when its commit is replayed after a crash: the
    gate kept it (live) or took it back (in history only)."""
    if live:
        return LibraryWrite(
            action=proposal["action"],
            skill=proposal["skill"],
            version=version,
            accepted=True,
            reason=f"{proposal['reason'][:300]} | vetted before the run was resumed",
        )
    return LibraryWrite(
        action="rollback",
        skill=proposal["skill"],
        version=version,
        accepted=False,
        reason=f"{proposal['action']} rolled back before the run was resumed",
    )


def unchanged(skill: str | None, reason: str) -> LibraryWrite:
    """A write-phase outcome that left the library as it was, and why."""
    return LibraryWrite(action="none", skill=skill, version=None, accepted=False, reason=reason)
