"""reflect_write: the write phase — change the library from what happened.

A subgraph of three steps so that a human approval (`interrupt`) never re-runs model calls:

    reflect  — utility counts; on failure: attribute it, draft a tip, propose a minimal patch
               to the skill used, or a new skill when none fitted (near-duplicates are refined)
    approve  — with approval on, pause with the proposed diff; resume accepts, edits or rejects
    commit   — write the change as a new version, gate it by replaying regression cases and
               the failing task, roll back on regression; append the run log record

The writer sees the task, the skill, the trajectory, the answer and the judge's critique — never
the gold answer, which the judge and the gate alone handle.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal, cast

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.models import structured
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import (
    AttemptState,
    LibraryWrite,
    ReflectOutput,
    State,
    ToolStep,
)
from memento_skills.nodes.execute import earlier_step, task_attachments, task_text
from memento_skills.nodes.gate import GateResult, run_gate
from memento_skills.nodes.tools import TOOL_NAMES
from memento_skills.stores.cases import Case
from memento_skills.stores.mcp_config import is_mcp_tool_name
from memento_skills.stores.skill import (
    Skill,
    SkillError,
    SkillValidationError,
    check_name,
    clean_skill,
    parse_skill,
    serialise,
)

NEAR_DUPLICATE = 0.9
"""Cosine similarity of descriptions above which a new skill is merged into the existing one."""

ATTRIBUTION_PROMPT = """An attempt at a task failed. Work out why and what the skill library should learn.

Task:
{task}

{skill_block}

Steps the agent took:
{trajectory}

Final answer given: {answer}
Judge's critique: {critique}

Decide:
- cause: "skill" if the skill's instructions were wrong, incomplete or misleading; "execution" if the
  skill was right but the agent did not follow it; "no-skill" if no skill in the library fits this kind
  of task; "task" if the task cannot be answered.
- failed_step: the number of the step where it went wrong, or null.
- action: "refine" to patch the skill used, "create" to write a new skill for this kind of task, or
  "none".
- tip: one sentence the next attempt at this same task should follow. Never state a final answer.
A skill carries policy as well as prose: a tool its first step must call, and an answer pattern.
If the agent answered without using a tool it needed, or used the wrong one, or formatted the
answer badly, the fix is a policy change: choose "refine"."""

PATCH_PROMPT = """Improve this skill so that tasks of this kind succeed next time. Make the smallest change that
fixes the cause; keep everything that works.

Skill {name} (version {version}):
<skill>
{skill_md}
</skill>

What went wrong: {analysis}

Return edits as exact substrings of the body to replace (old → new), and/or a short section to
append, and a new description only if the current one makes the skill trigger on the wrong tasks.
allowed_tools, if you set it, is a subset of: {tools}.
Policy binds where prose does not: set first_tool to the tool(s) the first steps must call (e.g.
["python"]) when the agent skipped or misused a tool, and answer_pattern to a regular expression
whose last match in the reply is the answer when the answer's format was wrong.
Write general procedure that transfers to other tasks of the kind. Never write the answer of this
particular task into the skill."""

CREATE_PROMPT = """No skill in the library fitted this task. Write a new skill for this KIND of task.

How to write a good skill:
<guide>
{guide}
</guide>

Task that had no fitting skill:
{task}

What happened: {analysis}

Give a name (lowercase words joined by hyphens), a description that says what the skill does and
when to use it (and when not), and a body of concrete steps. allowed_tools, if set, is a subset of:
{tools}. Write general procedure; never write the answer of this particular task into the skill."""


class Attribution(BaseModel):
    cause: Literal["skill", "execution", "no-skill", "task"] = "skill"
    failed_step: int | None = None
    action: Literal["refine", "create", "none"] = "none"
    tip: str = ""


class SkillEdit(BaseModel):
    old: str = Field(description="Exact text in the current body")
    new: str = Field(description="Replacement text")


class SkillPatch(BaseModel):
    edits: list[SkillEdit] = Field(default_factory=list)
    append: str | None = Field(default=None, description="A section to append to the body")
    description: str | None = Field(default=None, description="New description, or null to keep")
    allowed_tools: list[str] | None = Field(
        default=None, description="New tool list, or null to keep"
    )
    first_tool: list[str] | None = Field(
        default=None, description="Tools the first steps must call, in order, or null to keep"
    )
    answer_pattern: str | None = Field(
        default=None, description="Regex whose last match is the answer, or null to keep"
    )
    rationale: str = ""


class NewSkill(BaseModel):
    name: str
    description: str
    body: str
    allowed_tools: list[str] = Field(default_factory=list)


class Proposal(TypedDict):
    action: Literal["refine", "create"]
    skill: str
    base_version: int | None
    skill_md: str
    diff: str
    reason: str


ReflectState = State
"""Inside the subgraph: the full state. It starts from the parent's AttemptState (tips and
writes empty) and hands back only ReflectOutput, so nothing is appended to the parent twice."""


def _trajectory_text(state: State) -> str:
    steps = state.get("trajectory") or []
    if not steps:
        return "(no tool calls)"
    lines = []
    for i, s in enumerate(steps, 1):
        out = s["output"].replace("\n", " ")[:300]
        lines.append(
            f"{i}. {s['tool']}({_short(s['args'])}) -> {'ERROR ' if s['error'] else ''}{out}"
        )
    return "\n".join(lines)


def _short(args: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return text if len(text) <= 300 else text[:300] + "..."


class _Reflect:
    def __init__(self, resources: Resources):
        self.resources = resources

    # ------------------------------------------------------------------ reflect

    def reflect(self, state: ReflectState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        library = self.resources.library(ctx)
        verdict = state.get("verdict") or {
            "passed": False,
            "critique": "",
            "score": 0.0,
            "method": "",
        }
        passed = bool(verdict.get("passed"))
        skill_name = state.get("selected_skill")
        writes: list[LibraryWrite] = []
        update: dict[str, Any] = {"proposal": None}

        if ctx.write_policy != "off" and skill_name:
            try:
                s = library.record_outcome(skill_name, passed, key=effect_key(state, "utility"))
                writes.append(
                    LibraryWrite(
                        action="utility",
                        skill=skill_name,
                        version=s.version,
                        accepted=True,
                        reason=f"{'success' if passed else 'failure'} recorded "
                        f"({s.utility.successes}/{s.utility.failures})",
                    )
                )
            except SkillError as e:
                writes.append(_unchanged(skill_name, f"utility not recorded: {e}"))
        last_attempt = int(state.get("attempt") or 0) >= ctx.max_attempts
        if passed or (ctx.write_policy == "off" and last_attempt):
            # Nothing could use an attribution: no write is allowed and no attempt follows
            # to take a tip (an eval's failures would otherwise each cost a writer call).
            if not passed:
                writes.append(
                    _unchanged(skill_name, "no change: write policy 'off' and no attempt left")
                )
            elif (example := self._example_proposal(state, ctx)) is not None:
                update["proposal"] = example
                _emit_proposal(example)
            update["writes"] = writes
            return update

        task = task_text(state)
        skill = None
        if skill_name:
            try:
                skill = library.get(skill_name)
            except SkillError:
                skill = None
        writer = self.resources.model("writer", ctx)
        skill_block = (
            f"Skill used: {skill.name} (version {skill.version})\n<skill>\n{skill.to_markdown()}\n</skill>"
            if skill
            else "No skill was used: none in the library fitted the task."
        )
        critique = str(verdict.get("critique") or state.get("execute_error") or "")
        try:
            attribution = structured(
                writer,
                Attribution,
                ATTRIBUTION_PROMPT.format(
                    task=task,
                    skill_block=skill_block,
                    trajectory=_trajectory_text(state),
                    answer=state.get("answer") or "(none)",
                    critique=critique or "(none)",
                ),
            )
        except Exception as e:
            attribution = Attribution(
                cause="no-skill" if skill is None else "skill",
                action="create" if skill is None else "refine",
                tip=f"The previous attempt failed: {critique}"[:300] if critique else "",
            )
            emit("reflect_write", {"event": "attribution_fallback", "error": f"{type(e).__name__}"})
        tip = attribution.tip.strip()
        if tip:
            update["tips"] = [tip[:300]]
        analysis = (
            f"cause: {attribution.cause}; failed step: {attribution.failed_step}; "
            f"critique: {critique or '(none)'}; tip: {tip or '(none)'}"
        )
        emit(
            "reflect_write",
            {
                "event": "attribution",
                "cause": attribution.cause,
                "action": attribution.action,
                "tip": tip,
            },
        )

        action = attribution.action
        policy = behaviour_policy(state, skill)
        if policy and skill is not None and action in ("none", "refine"):
            action = "refine"  # the trajectory shows a behaviour failure: policy fixes it
            emit("reflect_write", {"event": "behaviour", "policy": policy})
        if skill is None and (action != "none" or attribution.cause != "task"):
            # Nothing in the library fitted a task that failed: that is the gap a new skill
            # fills, whatever the writer's action says. A 0.5B writer answered "none" to the
            # stand-in's first LCM failure, and the library learned nothing from it. Only a
            # task judged unanswerable ("task") is left without a skill.
            action = "create"
        allowed = {
            "off": set(),
            "create": {"create"},
            "refine": {"refine"},
            "full": {"refine", "create"},
        }[ctx.write_policy]
        if action == "none" or action not in allowed:
            writes.append(
                _unchanged(
                    skill_name,
                    f"no change: attribution says {attribution.action!r}, write policy {ctx.write_policy!r}",
                )
            )
            update["writes"] = writes
            return update

        try:
            if action == "refine" and skill is not None:
                proposal = self._propose_patch(
                    writer,
                    skill,
                    analysis,
                    policy=policy,
                    evidence=_answer_evidence(state),
                    task=task,
                )
            else:
                proposal = self._propose_new(
                    writer, ctx, task, analysis, behaviour_policy(state, None)
                )
                if proposal["action"] == "refine" and "refine" not in allowed:
                    raise SkillError(
                        f"near-duplicate of {proposal['skill']!r}, and refining is off"
                    )
        except Exception as e:
            writes.append(
                _unchanged(
                    skill_name, f"the writer's proposal was unusable: {type(e).__name__}: {e}"[:500]
                )
            )
            update["writes"] = writes
            return update
        update["proposal"] = proposal
        update["writes"] = writes
        _emit_proposal(proposal)
        return update

    def _example_proposal(self, state: ReflectState, ctx: Context) -> Proposal | None:
        """Keep what worked: a learned skill that just solved a task gains that task's tool calls
        as a worked example, once.

        A 0.5B executor follows a call it can copy far better than prose: told to count 1 bits
        "with python", it wrote `import bin`; shown `print(bin(N1).count("1"))` it substitutes the
        numbers. Seed skills are left alone: they serve every kind of task, and one task's example
        would pull the others towards it. The gate replays the skill's cases with the example.
        """
        skill_name = state.get("selected_skill")
        if ctx.write_policy not in ("refine", "full") or not skill_name:
            return None
        try:
            skill = self.resources.library(ctx).get(skill_name)
        except SkillError:
            return None
        if skill.provenance == "seed" or EXAMPLE_HEADING in skill.body:
            return None
        example = worked_example(state)
        if example is None:
            return None
        new = skill.with_changes(body=skill.body.rstrip() + "\n\n" + example)
        return self._proposal("refine", new, skill, "keep what worked: a worked example")

    def _propose_patch(
        self,
        writer: Any,
        skill: Skill,
        analysis: str,
        extra: str = "",
        policy: Mapping[str, Any] | None = None,
        evidence: str = "",
        task: str = "",
    ) -> Proposal:
        try:
            patch = self._ask_patch(writer, skill, analysis, extra)
        except Exception:
            if not policy:
                raise
            patch = SkillPatch(
                rationale="policy from the trajectory (the writer's patch was unusable)"
            )
        return self._apply_patch(skill, patch, analysis, policy, evidence, task)

    def _ask_patch(self, writer: Any, skill: Skill, analysis: str, extra: str) -> SkillPatch:
        return structured(
            writer,
            SkillPatch,
            PATCH_PROMPT.format(
                name=skill.name,
                version=skill.version,
                skill_md=skill.to_markdown(),
                analysis=analysis + extra,
                tools=", ".join(TOOL_NAMES),
            ),
        )

    def _apply_patch(
        self,
        skill: Skill,
        patch: SkillPatch,
        analysis: str,
        policy: Mapping[str, Any] | None,
        evidence: str = "",
        task: str = "",
    ) -> Proposal:
        body = skill.body
        applied = 0
        for edit in patch.edits:
            if edit.old and edit.old in body and edit.old != edit.new:
                body = body.replace(edit.old, edit.new, 1)
                applied += 1
        if patch.append and patch.append.strip():
            body = body.rstrip() + "\n\n" + patch.append.strip()
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
        if patch.answer_pattern and _pattern_fits(patch.answer_pattern, evidence):
            proposed_policy.setdefault("answer_pattern", patch.answer_pattern)
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
        return self._proposal("refine", new, skill, f"refine: {patch.rationale or analysis}")

    def _propose_new(
        self, writer: Any, ctx: Context, task: str, analysis: str, policy: Mapping[str, Any]
    ) -> Proposal:
        library = self.resources.library(ctx)
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
        name = _slug(spec.name)
        tools = tuple(t for t in spec.allowed_tools if t in TOOL_NAMES)
        if tools and "submit_answer" not in tools:
            tools = (*tools, "submit_answer")
        first = policy.get("first_tools", ())
        if first and tools and not set(first) <= set(tools):
            tools = (*tools, *(t for t in first if t not in tools))
        new = Skill(
            first_tools=first,
            answer_pattern=policy.get("answer_pattern"),
            name=name,
            description=generalise(spec.description.strip(), task),
            body=generalise(spec.body.strip(), task),
            allowed_tools=tools,
            provenance="learned",
        )
        # near-duplicate: refine the existing skill instead of adding a second one
        index, _ = self.resources.synced_index(ctx)
        nearest = index.dense_search(new.document, 1) if index.count() else []
        if nearest and nearest[0][1] >= NEAR_DUPLICATE:
            existing = library.get(nearest[0][0])
            emit(
                "reflect_write",
                {"event": "near_duplicate", "of": existing.name, "similarity": nearest[0][1]},
            )
            return self._propose_patch(
                writer,
                existing,
                analysis,
                extra=f"\nA new skill was proposed that duplicates this one; merge its useful steps:\n{new.body}",
                task=task,
            )
        if library.exists(name):
            name = _unique_name(library, name)
            new = new.with_changes(name=name)
        return self._proposal("create", new, None, f"create: {analysis}")

    @staticmethod
    def _proposal(
        action: Literal["refine", "create"], new: Skill, old: Skill | None, reason: str
    ) -> Proposal:
        import difflib

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
        return Proposal(
            action=action,
            skill=new.name,
            base_version=old.version if old else None,
            skill_md=new_md,
            diff=diff,
            reason=reason[:500],
        )

    # ------------------------------------------------------------------ approve

    def approve(self, state: ReflectState, runtime: Runtime[Context]) -> dict[str, Any]:
        proposal = state.get("proposal")
        assert proposal is not None
        answer = interrupt(
            {
                "question": f"Apply this {proposal['action']} of skill {proposal['skill']!r}?",
                "action": proposal["action"],
                "skill": proposal["skill"],
                "diff": proposal["diff"],
                "resume_with": "'accept', 'reject', or {'action': 'edit', 'skill_md': '<full SKILL.md>'}",
            }
        )
        if (
            answer is True
            or answer == "accept"
            or (isinstance(answer, dict) and answer.get("action") == "accept")
        ):
            return {"decision": "accept"}
        if isinstance(answer, dict) and answer.get("action") == "edit" and answer.get("skill_md"):
            try:
                edited = parse_skill(
                    str(answer["skill_md"]), "<edited proposal>", folder_name=proposal["skill"]
                )
            except SkillValidationError as e:
                return {
                    "decision": "reject",
                    "writes": [
                        LibraryWrite(
                            action="rejected",
                            skill=proposal["skill"],
                            version=None,
                            accepted=False,
                            reason=f"the edited skill is invalid: {e}"[:500],
                        )
                    ],
                }
            return {
                "decision": "accept",
                "proposal": {**proposal, "skill_md": edited.to_markdown()},
            }
        return {
            "decision": "reject",
            "writes": [
                LibraryWrite(
                    action="rejected",
                    skill=proposal["skill"],
                    version=None,
                    accepted=False,
                    reason="rejected by the reviewer",
                )
            ],
        }

    # ------------------------------------------------------------------ commit

    def commit(self, state: ReflectState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        proposal = state.get("proposal")
        writes: list[LibraryWrite] = []
        if proposal is not None and state.get("decision", "accept") == "accept":
            writes.append(self._apply(state, ctx, cast(Proposal, proposal)))
        self._log(state, ctx, writes)
        return {"writes": writes}

    def _apply(self, state: ReflectState, ctx: Context, proposal: Proposal) -> LibraryWrite:
        library = self.resources.library(ctx)
        new = parse_skill(
            proposal["skill_md"], f"<proposed {proposal['skill']}>", folder_name=proposal["skill"]
        )
        source = f"run:{state.get('task_id') or 'task'}"
        change = effect_key(state, "change") or uuid.uuid4().hex[:16]
        found = library.find_change(proposal["skill"], change)
        if found is not None:  # a replay after a crash: the change was written and vetted
            return _already_written(proposal, *found)
        failing = Case(
            task=task_text(state),
            ground_truth=state.get("ground_truth"),
            rubric=state.get("rubric"),
            task_id=str(state.get("task_id") or ""),
        )
        # the trial starts before the write, so a kill at any point after it is undone
        with library.change_on_trial(proposal["skill"], _trial_base(proposal), change):
            try:
                live = self._write(library, proposal, new, source, change)
            except SkillError as e:
                return _unchanged(proposal["skill"], f"write failed: {e}"[:500])
            return self._vet(state, ctx, proposal, live, new, failing)

    @staticmethod
    def _write(library: Any, proposal: Proposal, new: Skill, source: str, change: str) -> Skill:
        """Write the proposal as a new live version carrying its change key."""
        if proposal["action"] == "create":
            return cast(
                Skill,
                library.create(
                    new.with_changes(
                        provenance="learned", source=source, trusted=True, change=change
                    )
                ),
            )
        base = proposal["base_version"]

        def patch(current: Skill) -> dict[str, Any]:
            if current.version != base:
                raise SkillError(
                    f"{current.name} changed (v{current.version}, proposal based on v{base})"
                )
            return {
                "description": new.description,
                "body": new.body,
                "allowed_tools": new.allowed_tools,
                "first_tools": new.first_tools,
                "answer_pattern": new.answer_pattern,
                "provenance": "learned",
                "source": source,
                "change": change,
            }

        return cast(Skill, library.update(proposal["skill"], apply=patch))

    def _vet(
        self,
        state: ReflectState,
        ctx: Context,
        proposal: Proposal,
        live: Skill,
        new: Skill,
        failing: Case,
    ) -> LibraryWrite:
        """The gate's verdict on a change already live: keep it, keep it on probation, or take
        it back."""
        library = self.resources.library(ctx)
        emit("reflect_write", {"event": "gate", "skill": live.name, "version": live.version})
        started = time.time()
        result = run_gate(
            self.resources, ctx, live.name, live.authored_text(), failing, task_attachments(ctx)
        )
        if _on_probation(proposal, result, bool(new.first_tools)):
            emit(
                "reflect_write",
                {"event": "probation", "skill": live.name, "version": live.version},
            )
            return LibraryWrite(
                action="create",
                skill=live.name,
                version=live.version,
                accepted=True,
                reason=f"{proposal['reason'][:300]} | gate: no case to break; the failing task "
                "still fails, so it is live on probation (its failures count against it)",
            )
        if result.passed:
            emit(
                "reflect_write",
                {
                    "event": "accepted",
                    "skill": live.name,
                    "version": live.version,
                    "gate": result.reason,
                },
            )
            return LibraryWrite(
                action=proposal["action"],
                skill=live.name,
                version=live.version,
                accepted=True,
                reason=f"{proposal['reason'][:300]} | gate: {result.reason} ({result.replayed} replayed, {time.time() - started:.1f}s)",
            )
        library.take_back(live.name, live.version, _trial_base(proposal))
        emit(
            "reflect_write",
            {
                "event": "rolled_back",
                "skill": live.name,
                "version": live.version,
                "gate": result.reason,
            },
        )
        return LibraryWrite(
            action="rollback",
            skill=live.name,
            version=live.version,
            accepted=False,
            reason=f"{proposal['action']} rolled back: {result.reason}",
        )

    def _log(self, state: ReflectState, ctx: Context, writes: list[LibraryWrite]) -> None:
        verdict: Mapping[str, Any] = state.get("verdict") or {}
        steps = state.get("trajectory") or []
        record = {
            "time": time.time(),
            "task_id": state.get("task_id"),
            "task": task_text(state),
            "attempt": state.get("attempt"),
            "candidates": state.get("candidates") or [],
            "skill": state.get("selected_skill"),
            "skill_version": state.get("selected_version"),
            "route_reason": state.get("route_reason"),
            "trajectory": {
                "steps": len(steps),
                "tools": [s["tool"] for s in steps],
                "errors": sum(1 for s in steps if s["error"]),
            },
            "answer": state.get("answer"),
            "execute_error": state.get("execute_error"),
            "verdict": {k: verdict.get(k) for k in ("passed", "score", "method")},
            "reward": 1.0 if verdict.get("passed") else 0.0,
            "writes": [*(state.get("writes") or []), *writes],
            "usage": state.get("usage") or {},
            "write_policy": ctx.write_policy,
        }
        try:
            self.resources.run_log(ctx).append(record, key=effect_key(state, "log"))
        except OSError as e:
            emit("reflect_write", {"event": "run_log_error", "error": str(e)})
        observe = getattr(self.resources.router, "observe", None)
        learning = (
            ctx.write_policy != "off"
        )  # the read-only ablation learns nothing, router included
        if callable(observe) and record["skill"] and learning:  # the router learns from judged runs
            try:
                bind = getattr(self.resources.router, "bind", None)
                if callable(bind):  # a resumed task may reach here before route_skill bound it
                    bind(self.resources.library(ctx).root)
                accepts = inspect.signature(observe).parameters
                extra: dict[str, Any] = {}
                if "key" in accepts:
                    extra["key"] = effect_key(state, "router")
                if "index" in accepts:
                    extra["index"] = self.resources.index(ctx)
                observe(
                    record["task"],
                    None,
                    record["skill"],
                    record["reward"],
                    version=record["skill_version"],
                    **extra,
                )
            except Exception as e:  # learning must never fail the task; it is reported
                emit(
                    "reflect_write", {"event": "router_error", "error": f"{type(e).__name__}: {e}"}
                )

    # ------------------------------------------------------------------ routing

    @staticmethod
    def after_reflect(state: ReflectState, runtime: Runtime[Context]) -> str:
        ctx = runtime.context or Context()
        if state.get("proposal") and ctx.approval_required:
            return "approve"
        return "commit"


NUMBER_PATTERN = r"-?\d[\d,]*(?:\.\d+)?"
COMPUTE_TOOLS = frozenset({"python", "shell", "run_skill_script"})


def _on_probation(proposal: Proposal, result: GateResult, carries_policy: bool) -> bool:
    """A new skill that carries a tool policy goes live even if its replay still fails.

    It replaces nothing: the task failed without it, and it has no regression cases to break
    (a leak is still refused). Deleting it threw away the behaviour it carries: on the 0.5B
    stand-in, a count-bits skill with a forced python step was rolled back because the one
    replay wrote `import bin`, and every later task of the kind fell back to no skill. Kept, it
    routes the next tasks of its kind to a computing step, gains a worked example once one of
    them passes, and is refined like any skill; its failures lower its utility prior. A skill of
    prose alone changes no behaviour the replay did not already show: it is deleted as before.
    """
    return (
        proposal["action"] == "create"
        and carries_policy
        and not result.broken
        and result.failing_fixed is False
    )


def _trial_base(proposal: Proposal) -> int | None:
    """The version a change on trial falls back to: none for a new skill."""
    return proposal["base_version"] if proposal["action"] == "refine" else None


def _emit_proposal(proposal: Proposal) -> None:
    emit(
        "reflect_write",
        {
            "event": "proposal",
            "action": proposal["action"],
            "skill": proposal["skill"],
            "diff": proposal["diff"],
        },
    )


def effect_key(state: Mapping[str, Any], effect: str) -> str:
    """The key of one side effect of this attempt ("utility", "change", "log", "router"): the
    same when the node that makes it is replayed after a crash, so the effect is made once.
    Empty (no de-duplication) for a state begun before run ids existed."""
    run_id = state.get("run_id")
    if not run_id:
        return ""
    text = f"{run_id}:{int(state.get('attempt') or 0)}:{effect}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _already_written(proposal: Proposal, version: int, live: bool) -> LibraryWrite:
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


def _unchanged(skill: str | None, reason: str) -> LibraryWrite:
    """A write-phase outcome that left the library as it was, and why."""
    return LibraryWrite(action="none", skill=skill, version=None, accepted=False, reason=reason)


def behaviour_policy(state: State, skill: Skill | None) -> dict[str, Any]:
    """Policy the trajectory itself argues for, whatever the writer model says.

    No tool that computes was used (the model answered from its head, or only listed and read
    files: a 0.5B model given every tool lists an empty workspace for an LCM) → the first step
    must call one; the judge saw the right kind of value buried in words → an answer contract.
    A wrong guess costs nothing lasting: the gate replays the failing task and the skill's
    regression cases with the change before it goes live.
    """
    policy: dict[str, Any] = {}
    steps = state.get("trajectory") or []
    used = {s["tool"] for s in steps}
    offered = set(skill.allowed_tools) if skill and skill.allowed_tools else set(TOOL_NAMES)
    if not used & COMPUTE_TOOLS and not (skill and skill.first_tools):
        for tool in ("python", "shell"):
            if tool in offered:
                policy["first_tools"] = (tool,)
                break
    verdict: Mapping[str, Any] = state.get("verdict") or {}
    if verdict.get("format") == "number" and not (skill and skill.answer_pattern):
        policy["answer_pattern"] = NUMBER_PATTERN
    return policy


EXAMPLE_HEADING = "## Worked example"


def worked_example(state: Mapping[str, Any]) -> str | None:
    """The solved task and the compute-tool calls that solved it, as a skill section, with the
    task's numbers generalised (N1, N2, ...) in both; None when no compute tool ran cleanly.

    Only the calls go in, never their output or the answer: those are this task's values.
    """
    task = task_text(state)
    calls: list[ToolStep] = []
    for step in state.get("trajectory") or []:
        if step["tool"] not in COMPUTE_TOOLS or step["error"]:
            continue
        if earlier_step(calls, step["tool"], step["args"]) is None:
            calls.append(step)  # a call it reran (a 0.5B model repeats its snippet) shows once
    if not calls:
        return None
    lines = [EXAMPLE_HEADING, "", f"A solved task of this kind: {task.strip()[:400]}", ""]
    for i, step in enumerate(calls[:3], start=1):
        args = step["args"] or {}
        call = args.get("code") or args.get("command")
        if not isinstance(call, str):
            call = _short(args)
        lines += [f"Step {i}, {step['tool']}:", "```", call.strip()[:800], "```", ""]
    lines.append(
        "Its output gave the answer. For a new task, make the same call with the new task's "
        "values in place of N1, N2, ..."
    )
    return generalise("\n".join(lines), task)


_TASK_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")


def generalise(text: str, task: str) -> str:
    """`text` with the task's own numbers (two digits or more) replaced by N1, N2, ...

    A 0.5B writer copies the task into the skill ("Find the LCM of these numbers: 98, 54"): the
    skill then fits that one task, and its numbers collide with other tasks' answers (the leak
    check flagged the LCM of 49 and 98). A skill is for the kind of task, not for its values.
    """
    found = [n for n in _TASK_NUMBER_RE.findall(task) if sum(c.isdigit() for c in n) >= 2]
    names = {n: f"N{i}" for i, n in enumerate(dict.fromkeys(found), start=1)}  # first seen: N1
    for number in sorted(names, key=len, reverse=True):  # 1234 before 123: never half-replaced
        text = re.sub(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", names[number], text)
    return text


def _answer_evidence(state: Mapping[str, Any]) -> str:
    """What the attempt produced, gold-free: its answer and its tool outputs."""
    outputs = [str(s["output"]) for s in state.get("trajectory") or [] if not s["error"]]
    return "\n".join([str(state.get("answer") or ""), *outputs])


def _pattern_fits(pattern: str, evidence: str) -> bool:
    """A writer's answer contract must extract something from what the attempt produced.

    A 0.5B writer proposed `-?\\b\\bb\\b?` for an LCM skill: a valid regex that matches no
    number. The contract falls back to the raw answer when nothing matches, so the gate's replay
    could not tell it was useless; checking it against the attempt's own output can.
    """
    if not _valid_regex(pattern) or re.fullmatch(pattern, ""):
        return False
    return any(m.group(0).strip() for m in re.finditer(pattern, evidence[:8000]))


def _valid_regex(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return len(pattern) <= 200


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    if check_name(slug):
        raise SkillError(f"the writer proposed an unusable skill name {name!r}")
    return slug


def _unique_name(library: Any, name: str) -> str:
    for i in range(2, 100):
        candidate = f"{name[:60]}-{i}"
        if not library.exists(candidate):
            return candidate
    raise SkillError(f"no free name near {name!r}")


def build_reflect_write_graph(
    resources: Resources,
) -> CompiledStateGraph[State, Context, AttemptState, ReflectOutput]:
    r = _Reflect(resources)
    builder = StateGraph(
        ReflectState, input_schema=AttemptState, output_schema=ReflectOutput, context_schema=Context
    )
    builder.add_node("reflect", r.reflect)
    builder.add_node("approve", r.approve)
    builder.add_node("commit", r.commit)
    builder.add_edge(START, "reflect")
    builder.add_conditional_edges("reflect", r.after_reflect, ["approve", "commit"])
    builder.add_edge("approve", "commit")
    builder.add_edge("commit", END)
    return builder.compile(name="reflect_write")
