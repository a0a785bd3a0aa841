"""reflect_write: the write phase — change the library from what happened.

A subgraph of six steps so that a human approval (`interrupt`) never re-runs model calls:

    reflect     — utility counts; on failure: ask the writer why (attribution), `decide` what
                  to change (nodes/writing/decision.py), and propose it: a minimal patch to the
                  skill used, or a new skill when none fitted (near-duplicates are refined)
    search      — on a failure with a known answer and a write decided: look for a procedure
                  the judge passes (nodes/writing/search.py); one found is distilled into a
                  skill that carries it, and that proposal replaces the prose one
    approve     — with approval on, pause with the proposed diff; resume accepts, edits or rejects
    commit      — write the change as a new version, gate it by replaying regression cases and
                  the failing task, roll back on regression
    log         — append the attempt's run-log record
    learn_route — the router learns from the judged attempt

The writer sees the task, the skill, the trajectory, the answer and the judge's critique — never
the gold answer, which the judge and the gate alone handle.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, NotRequired, cast

from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.models import structured
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import (
    AttemptState,
    LibraryWrite,
    Proposal,
    ReflectOutput,
    State,
    attachment_paths,
    task_text,
)
from memento_skills.nodes.gate import ReplayGraph, pick_siblings, run_gate
from memento_skills.nodes.routing.seams import LearningRouter
from memento_skills.nodes.writing.checks import cosine, file_refusal
from memento_skills.nodes.writing.decision import (
    decide,
    fallback_attribution,
    needs_attribution,
    records_outcome,
)
from memento_skills.nodes.writing.distil import distil
from memento_skills.nodes.writing.heuristics import answer_evidence, worked_example
from memento_skills.nodes.writing.lifecycle import settle
from memento_skills.nodes.writing.prompts import ATTRIBUTION_PROMPT, Attribution, trajectory_text
from memento_skills.nodes.writing.proposals import (
    already_written,
    effect_key,
    emit_proposal,
    example_proposal,
    on_probation,
    propose_new,
    propose_patch,
    trial_base,
    unchanged,
)
from memento_skills.nodes.writing.router_learning import append_run_log, observe_route
from memento_skills.nodes.writing.search import JudgeCall, Search, not_run, search_gate
from memento_skills.stores.cases import Case
from memento_skills.stores.skill import (
    Lifecycle,
    Skill,
    SkillError,
    SkillValidationError,
    parse_skill,
)
from memento_skills.stores.trust import script_files

MAY_CHANGE = ("refine", "full")
"""Write policies under which the write phase may change an existing skill (its lifecycle too)."""


class ReflectState(State):
    """Inside the subgraph: the full state and the subgraph's own keys. It starts from the
    parent's AttemptState (tips and writes empty) and hands back only ReflectOutput, so nothing
    is appended to the parent twice."""

    write_decided: NotRequired[bool]  # reflect decided a refine or create
    searched: NotRequired[bool]  # the search ran (or was reported as not run) in this pass


class _Reflect:
    def __init__(
        self,
        resources: Resources,
        router: LearningRouter | None,
        replay: Callable[[], ReplayGraph],
        judge: JudgeCall,
    ) -> None:
        self.resources = resources
        self.router = router
        self.replay = replay
        self.judge = judge

    # ------------------------------------------------------------------ reflect

    def reflect(self, state: ReflectState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Count the outcome, decide what the library should learn, and propose it."""
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
        update: dict[str, Any] = {"proposal": None, "writes": writes}

        if records_outcome(ctx.write_policy, skill_name):
            assert skill_name is not None
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
                # a draft failing past its uses retires, where existing skills may change
                settled = settle(library, skill_name) if ctx.write_policy in MAY_CHANGE else s
                if settled.lifecycle != s.lifecycle:
                    writes.append(
                        LibraryWrite(
                            action="lifecycle",
                            skill=skill_name,
                            version=settled.version,
                            accepted=True,
                            reason=f"{s.lifecycle} -> {settled.lifecycle}: "
                            f"{settled.lifecycle_reason}",
                        )
                    )
            except SkillError as e:
                writes.append(unchanged(skill_name, f"utility not recorded: {e}"))
        skill = _skill(library, skill_name)
        last_attempt = int(state.get("attempt") or 0) >= ctx.max_attempts
        trajectory = state.get("trajectory") or []
        example = worked_example(state) if passed and skill is not None else None
        attribution: Attribution | None = None
        analysis = ""
        writer: Any = None
        if needs_attribution(passed, ctx.write_policy, last_attempt):
            writer = self.resources.model("writer", ctx)
            attribution, analysis = self._attribute(writer, state, skill, verdict)
            if attribution.tip.strip():
                update["tips"] = [attribution.tip.strip()[:300]]
        decision = decide(
            verdict,
            attribution,
            trajectory,
            skill,
            ctx.write_policy,
            last_attempt=last_attempt,
            example=example,
        )
        update["write_decided"] = decision.action in ("refine", "create")
        if decision.behaviour:
            emit("reflect_write", {"event": "behaviour", "policy": dict(decision.policy)})
        if decision.action == "nothing":
            if decision.reason:
                writes.append(unchanged(skill_name, decision.reason))
            return update
        if decision.action == "example":
            assert skill is not None and example is not None
            try:
                proposal = example_proposal(skill, example)
            except SkillError as e:  # its call reads as code the skill's tools cannot run
                writes.append(unchanged(skill_name, f"the worked example was refused: {e}"[:500]))
                return update
            update["proposal"] = proposal
            emit_proposal(proposal)
            return update
        try:
            if decision.action == "refine":
                assert skill is not None
                proposal = propose_patch(
                    writer,
                    skill,
                    analysis,
                    policy=decision.policy,
                    evidence=answer_evidence(state),
                    task=task_text(state),
                )
            else:
                proposal = propose_new(
                    writer,
                    library,
                    lambda: self.resources.synced_index(ctx)[0],
                    task_text(state),
                    analysis,
                    decision.policy,
                )
                if proposal["action"] == "refine" and not decision.may_merge:
                    raise SkillError(
                        f"near-duplicate of {proposal['skill']!r}, and refining is off"
                    )
        except Exception as e:
            writes.append(
                unchanged(
                    skill_name, f"the writer's proposal was unusable: {type(e).__name__}: {e}"[:500]
                )
            )
            return update
        update["proposal"] = proposal
        emit_proposal(proposal)
        return update

    @staticmethod
    def _attribute(
        writer: Any, state: ReflectState, skill: Skill | None, verdict: Any
    ) -> tuple[Attribution, str]:
        """The writer's account of why the attempt failed (a fallback when it is unusable), and
        the analysis the patch or new skill is written from."""
        skill_block = (
            f"Skill used: {skill.name} (version {skill.version})\n<skill>\n{skill.authored_text()}\n</skill>"
            if skill
            else "No skill was used: none in the library fitted the task."
        )
        critique = str(verdict.get("critique") or state.get("execute_error") or "")
        try:
            attribution = structured(
                writer,
                Attribution,
                ATTRIBUTION_PROMPT.format(
                    task=task_text(state),
                    skill_block=skill_block,
                    trajectory=trajectory_text(state.get("trajectory") or []),
                    answer=state.get("answer") or "(none)",
                    critique=critique or "(none)",
                ),
            )
        except Exception as e:
            attribution = fallback_attribution(skill is not None, critique)
            emit("reflect_write", {"event": "attribution_fallback", "error": f"{type(e).__name__}"})
        tip = attribution.tip.strip()
        emit(
            "reflect_write",
            {
                "event": "attribution",
                "cause": attribution.cause,
                "action": attribution.action,
                "tip": tip,
            },
        )
        analysis = (
            f"cause: {attribution.cause}; failed step: {attribution.failed_step}; "
            f"critique: {critique or '(none)'}; tip: {tip or '(none)'}"
        )
        return attribution, analysis

    # ------------------------------------------------------------------ search

    def search(self, state: ReflectState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Search for a procedure that passes (nodes/writing/search.py); distil one found into
        the proposal. With none found, reflect's proposal stands."""
        ctx = runtime.context or Context()
        gate = search_gate(state, ctx, bool(state.get("write_decided")))
        if gate is None:
            return {"searched": False}
        if gate != "run":
            return {"search": not_run(gate), "procedure": None, "searched": True}
        library = self.resources.library(ctx)
        skill = _skill(library, state.get("selected_skill"))
        search = Search(
            state,
            ctx,
            replay=self.replay,
            judge=self.judge,
            writer=lambda: self.resources.model("writer", ctx),
            skill=skill,
        )
        try:
            procedure, report = search.run()
        except GraphBubbleUp:
            raise
        except Exception as e:  # the search is an extra: its failure leaves reflect's proposal
            failure = f"{type(e).__name__}: {e}"[:300]
            emit("reflect_write", {"event": "search_error", "error": failure})
            search.spend.outcomes.append(f"error: {failure}")
            report = search.spend.report(None, "exhausted")
            return {"search": report, "procedure": None, "searched": True}
        update: dict[str, Any] = {"search": report, "procedure": procedure, "searched": True}
        if procedure is None:
            return update
        try:
            proposal = distil(
                procedure,
                task_text(state),
                self.resources.model("writer", ctx),
                library,
                lambda: self.resources.synced_index(ctx)[0],
                skill,
            )
        except Exception as e:  # SkillError, or the writer failing: the prose proposal stands
            update["writes"] = [
                unchanged(
                    state.get("selected_skill"),
                    f"the search found a procedure ({procedure['found_by']}) that could not be "
                    f"made a skill: {type(e).__name__}: {e}"[:500],
                )
            ]
            return update
        update["proposal"] = proposal
        emit_proposal(proposal)
        return update

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
                "files": sorted(proposal.get("files") or {}),
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
            writes.append(self._apply(state, ctx, proposal))
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
            return already_written(proposal, *found)
        refusal = file_refusal(proposal.get("files") or {})
        if refusal is not None:  # checked when proposed; a state edited since is checked again
            return unchanged(proposal["skill"], f"write refused: {refusal}"[:500])
        failing = Case(
            task=task_text(state),
            ground_truth=state.get("ground_truth"),
            rubric=state.get("rubric"),
            task_id=str(state.get("task_id") or ""),
        )
        # the trial starts before the write, so a kill at any point after it is undone
        with library.change_on_trial(proposal["skill"], trial_base(proposal), change):
            try:
                live = self._write(library, proposal, new, source, change)
            except SkillError as e:
                return unchanged(proposal["skill"], f"write failed: {e}"[:500])
            return self._vet(state, ctx, proposal, live, new, failing)

    @staticmethod
    def _write(library: Any, proposal: Proposal, new: Skill, source: str, change: str) -> Skill:
        """Write the proposal as a new live version carrying its change key, with the files it
        carries (a learned skill's script; a refine keeps the skill's trust as it was, so the
        scripts of a skill nobody trusted still need approval)."""
        files = {rel: text.encode("utf-8") for rel, text in (proposal.get("files") or {}).items()}
        if proposal["action"] == "create":
            return cast(
                Skill,
                library.create(
                    new.with_changes(
                        provenance="learned",
                        source=source,
                        trusted=True,
                        change=change,
                        lifecycle="draft",  # unvetted: the gate says what it becomes (_vet)
                        lift=None,
                        lifecycle_reason="",
                    ),
                    files=files,
                ),
            )
        base = proposal["base_version"]

        def patch(current: Skill) -> dict[str, Any]:
            if current.version != base:
                raise SkillError(
                    f"{current.name} changed (v{current.version}, proposal based on v{base})"
                )
            if current.lifecycle == "deprecated":  # retired: not routed, so never refined
                raise SkillError(f"{current.name} is deprecated; roll it back to refine it")
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

        return cast(Skill, library.update(proposal["skill"], files=files, apply=patch))

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
        scripts = dict(proposal.get("files") or {})
        result = run_gate(
            self.replay(),
            self.resources.cases(ctx),
            ctx,
            live.name,
            live.authored_text(),
            failing,
            attachment_paths(state.get("attachments")),
            live.answer_pattern,
            scripts=scripts,
            siblings=self._siblings(ctx, live, failing)
            if script_files(library.skill_dir(live.name))
            else [],
        )
        if on_probation(proposal, result, bool(new.first_tools)):
            _mark(library, live, "draft", "on probation: its task still fails")
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
            if live.lifecycle == "draft":  # a new skill, or a draft refined, that passed
                _mark(library, live, "candidate", "passed its gate")
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
        library.take_back(live.name, live.version, trial_base(proposal))
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

    def _siblings(self, ctx: Context, live: Skill, failing: Case) -> list[Case]:
        """The learner's training tasks the script skill `live` would be routed to (none
        outside a learning run)."""
        training = self.resources.training_cases
        if training is None or ctx.gate_siblings <= 0:
            return []
        cases = [c for c in training() if c.task.strip() != failing.task.strip()]
        if not cases:
            return []
        index = self.resources.index(ctx)
        document = index.embed_query(live.document)
        return pick_siblings(
            cases,
            lambda task: cosine(index.embed_query(task), document),
            failing.task_id,
            ctx.min_route_score,
            ctx.gate_siblings,
        )

    # ------------------------------------------------------------------ log, learn_route

    def log(self, state: ReflectState, runtime: Runtime[Context]) -> dict[str, Any]:
        """Append the attempt's run-log record, with every write this phase made."""
        ctx = runtime.context or Context()
        searched = state.get("search") if state.get("searched") else None
        append_run_log(self.resources.run_log(ctx), state, ctx, searched)
        return {}

    def learn_route(self, state: ReflectState, runtime: Runtime[Context]) -> dict[str, Any]:
        """The router learns from the judged attempt (a learning router only)."""
        ctx = runtime.context or Context()
        observe_route(
            self.router,
            state,
            ctx,
            lambda: self.resources.library(ctx).root,
            lambda: self.resources.index(ctx),
        )
        return {}

    # ------------------------------------------------------------------ routing

    @staticmethod
    def after_search(state: ReflectState, runtime: Runtime[Context]) -> str:
        ctx = runtime.context or Context()
        if state.get("proposal") and ctx.approval_required:
            return "approve"
        return "commit"


def _mark(library: Any, live: Skill, state: Lifecycle, reason: str) -> None:
    """The gate's verdict as the vetted version's lifecycle (docs/decisions.md#lifecycle-and-lift);
    a version replaced meanwhile by another writer keeps the state it was written with."""
    try:
        library.record_gate(live.name, live.version, state, reason=reason)
    except SkillError as e:
        emit(
            "reflect_write", {"event": "lifecycle_not_marked", "skill": live.name, "error": str(e)}
        )


def _skill(library: Any, name: str | None) -> Skill | None:
    """The skill the attempt used, as the library holds it now (None: none, or it is gone)."""
    if not name:
        return None
    try:
        return cast(Skill, library.get(name))
    except SkillError:
        return None


def build_reflect_write_graph(
    resources: Resources,
    *,
    router: LearningRouter | None = None,
    replay: Callable[[], ReplayGraph],
    judge: JudgeCall,
) -> CompiledStateGraph[ReflectState, Context, AttemptState, ReflectOutput]:
    """The write-phase subgraph; `router` learns from each judged attempt (None: no router
    learns), `replay` gives the execute → judge graph the gate and the search replay with
    (asked for at first use, so a graph that writes nothing never compiles it), `judge` judges
    the search's programs."""
    r = _Reflect(resources, router, replay, judge)
    builder = StateGraph(
        ReflectState, input_schema=AttemptState, output_schema=ReflectOutput, context_schema=Context
    )
    builder.add_node("reflect", r.reflect)
    builder.add_node("search", r.search)
    builder.add_node("approve", r.approve)
    builder.add_node("commit", r.commit)
    builder.add_node("log", r.log)
    builder.add_node("learn_route", r.learn_route)
    builder.add_edge(START, "reflect")
    builder.add_edge("reflect", "search")
    builder.add_conditional_edges("search", r.after_search, ["approve", "commit"])
    builder.add_edge("approve", "commit")
    builder.add_edge("commit", "log")
    builder.add_edge("log", "learn_route")
    builder.add_edge("learn_route", END)
    return builder.compile(name="reflect_write")
