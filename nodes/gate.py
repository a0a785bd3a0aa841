"""The gate: a skill change goes live only if replaying its regression cases still passes.

Replays run the real execute subgraph and the real judge with the skill forced, so a change is
measured by what the model does with it, not by what it says. The gate also refuses any skill
text that gives a gold answer away, verbatim or smuggled (base64, words, spaced, reversed,
arithmetic: `stores/gold_match.py`); it is the judge's side of the write phase, so the gold it
handles never reaches the writer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.state import Attachment, State
from memento_skills.nodes.execution.sandbox import reachable_dir
from memento_skills.nodes.writing.checks import answer_refusal
from memento_skills.stores.cases import Case, Cases, MissingCaseFiles
from memento_skills.stores.gold_match import HOW, GoldScan


@dataclass
class GateResult:
    passed: bool
    replayed: int = 0
    broken: list[str] = field(default_factory=list)
    failing_fixed: bool | None = None
    reason: str = ""
    skipped: list[str] = field(default_factory=list)
    """Cases not replayed, each with why (its stored files are gone)."""
    siblings_passed: int = 0
    """Other training tasks of the skill's kind that passed with it (a script skill only)."""
    siblings_replayed: int = 0
    unjudged: bool = False
    """The model endpoint failed under a replay: the change was not judged at all."""


ReplayGraph = CompiledStateGraph[State, Context, State, State]
"""execute → judge with a given skill: what the gate replays a case with."""


class JudgeNode(Protocol):
    """The judge node as the replay graph runs it."""

    def __call__(self, state: State, *, runtime: Runtime[Context]) -> dict[str, Any]: ...


def build_replay_graph(
    execute: CompiledStateGraph[Any, Context, Any, Any], judge: JudgeNode
) -> ReplayGraph:
    """`execute` (the execute subgraph) → `judge` (the judge node), with the skill the input
    names: no routing, no writes, no checkpointer."""
    builder = StateGraph(State, context_schema=Context)
    builder.add_node("execute", execute)
    builder.add_node("judge", judge)
    builder.add_edge(START, "execute")
    builder.add_edge("execute", "judge")
    builder.add_edge("judge", END)
    return builder.compile(checkpointer=False, name="replay")


def leak_refusal(text: str, cases: list[Case]) -> str | None:
    """Why `text` may not go live because of the golds of `cases`, or None if it may."""
    golded = [c for c in cases if c.ground_truth]
    if not golded or not text:
        return None
    scan = GoldScan(text)
    found = (scan.find(c.ground_truth or "", task=c.task) for c in golded)
    form = next((f for f in found if f is not None), None)
    if form is not None:
        how = "" if form == "verbatim" else f" ({HOW[form]})"
        return f"the proposed skill contains a gold answer of a task{how}"
    if scan.truncated:
        return "the proposed skill holds too many expressions to check it for gold answers"
    return None


def pattern_refusal(pattern: str | None, cases: list[Case]) -> str | None:
    """Why answer `pattern` may not go live because it does not keep the golds of `cases`
    (a numbers-only pattern on a word answer), or None; the reason never shows a gold."""
    if not pattern:
        return None
    for case in cases:
        if case.ground_truth:
            reason = answer_refusal(pattern, case.ground_truth, "a task's gold answer")
            if reason is not None:
                return reason
    return None


class ReplayUnjudged(Exception):
    """A replay the model endpoint failed under: it says nothing about the skill, and counted as
    a failure it would refuse good changes (and retire good skills) during an outage."""


def replay(
    graph: ReplayGraph, ctx: Context, skill: str | None, case: Case, files: Mapping[str, Path]
) -> bool:
    """Run `case` through `graph` with `skill` forced and the case's own files (name → file) as
    its attachments; whether the judge passed it. ReplayUnjudged when the endpoint failed.

    `ctx` is the task being learned from: its attachments are that task's, never the case's.
    """
    state = replay_state(graph, ctx, skill, case, files)
    if state.get("execute_error_kind") == "endpoint":
        raise ReplayUnjudged(
            "the model endpoint failed during a replay "
            f"({str(state.get('execute_error') or '')[:200]})"
        )
    verdict = state.get("verdict") or {}
    return bool(verdict.get("passed"))


def replay_state(
    graph: ReplayGraph, ctx: Context, skill: str | None, case: Case, files: Mapping[str, Path]
) -> dict[str, Any]:
    """`replay`'s run, whole: the final state (verdict, execute_error_kind, ...)."""
    with _own_workspace(ctx) as replay_ctx:
        result: dict[str, Any] = graph.invoke(
            {
                "task": case.task,
                "task_id": case.task_id,
                "ground_truth": case.ground_truth,
                "rubric": case.rubric,
                "selected_skill": skill,
                "attachments": [
                    Attachment(name=name, path=str(path)) for name, path in files.items()
                ],
                "tips": [],
            },
            context=replay_ctx,
        )
    return result


@contextmanager
def _own_workspace(ctx: Context) -> Iterator[Context]:
    """`ctx` with a workspace base of its own, deleted afterwards. It sits under
    ctx.workspace_dir when set, so whoever cleans that folder up also removes what a killed
    replay left behind."""
    parent = reachable_dir(ctx.workspace_dir) if ctx.workspace_dir else None
    with tempfile.TemporaryDirectory(
        prefix="memento-replay-", dir=parent, ignore_cleanup_errors=True
    ) as base:
        # traversable (not listable), as a workspace's every parent must be for the levels
        # without namespaces; mkdtemp's 0700 kept the sandbox's uid out of its own workspace
        Path(base).chmod(0o711)
        yield replace(ctx, workspace_dir=base)


def run_gate(
    graph: ReplayGraph,
    store: Cases,
    ctx: Context,
    skill: str,
    skill_text: str,
    failing: Case | None,
    failing_files: Mapping[str, Path] | None = None,
    answer_pattern: str | None = None,
    *,
    scripts: Mapping[str, str] | None = None,
    siblings: Sequence[Case] = (),
) -> GateResult:
    """Replay, through `graph`, the skill's cases in `store` (at most ctx.gate_cases) and the
    failing task, each with its own attachments: a stored case with the files the store kept
    for it, the failing task with `failing_files`.

    Refused before any replay: text that gives a gold away, an `answer_pattern` that does not
    keep the golds whole. A case whose stored files are gone is skipped and named, not counted as broken: without its
    files it fails whatever the change, and would refuse every change to the skill.

    `scripts` (path -> text, the files the change writes) are scanned for the distinctive golds
    of every case. A skill that passed is then replayed on `siblings` (for a skill with scripts:
    other training tasks of its kind, `pick_siblings`), and refused when it passes none of two
    or more: its script solved one instance, not the kind (docs/decisions.md#script-skills).
    Sibling golds stay here, never in a writer's prompt.
    """
    cases = store.load(skill)[-ctx.gate_cases :] if ctx.gate_cases > 0 else []
    judged = [*cases, *([failing] if failing else []), *siblings]
    refusal = (
        leak_refusal(skill_text, judged)
        or _script_leak(scripts or {}, judged)
        or pattern_refusal(answer_pattern, judged)
    )
    if refusal is not None:
        return GateResult(False, reason=refusal)
    try:
        return _replay_all(graph, store, ctx, skill, cases, failing, failing_files, siblings)
    except ReplayUnjudged as e:
        return GateResult(
            False,
            reason=f"not gated: {e}; the change is taken back untested, check the endpoint",
            unjudged=True,
        )


def _replay_all(
    graph: ReplayGraph,
    store: Cases,
    ctx: Context,
    skill: str,
    cases: Sequence[Case],
    failing: Case | None,
    failing_files: Mapping[str, Path] | None,
    siblings: Sequence[Case],
) -> GateResult:
    """The gate's replays: the stored cases, the failing task, then the siblings."""
    broken: list[str] = []
    skipped: list[str] = []
    for case in cases:
        try:
            files = store.files_of(case)
        except MissingCaseFiles as e:
            skipped.append(f"{_label(case)}: {e}")
            emit("reflect_write", {"event": "case_skipped", "case": _label(case), "reason": str(e)})
            continue
        if not replay(graph, ctx, skill, case, files):
            broken.append(_label(case))
    fixed = replay(graph, ctx, skill, failing, failing_files or {}) if failing is not None else None
    replayed = len(cases) - len(skipped) + (failing is not None)
    if broken:
        passed, reason = False, f"broke {len(broken)} regression case(s)"
    elif fixed is False:
        passed, reason = False, "the failing task still fails with the change"
    else:
        passed, reason = True, "no regression; the failing task now passes"
    if skipped:
        reason += f"; skipped {len(skipped)} case(s): {'; '.join(skipped)}"
    result = GateResult(passed, replayed, broken, fixed, reason, skipped)
    if passed and siblings:
        result = _replay_siblings(graph, ctx, skill, siblings, result)
    return result


def _replay_siblings(
    graph: ReplayGraph, ctx: Context, skill: str, siblings: Sequence[Case], result: GateResult
) -> GateResult:
    """`result` with the sibling replays counted in, refused when none of 2+ passed."""
    passed = sum(replay(graph, ctx, skill, case, {}) for case in siblings)
    total = len(siblings)
    emit("reflect_write", {"event": "siblings", "skill": skill, "passed": passed, "of": total})
    if total >= 2 and passed == 0:
        return replace(
            result,
            passed=False,
            replayed=result.replayed + total,
            reason=f"its script passes none of {total} other training tasks of its kind: it "
            "solves its own instance, not the kind",
            siblings_passed=0,
            siblings_replayed=total,
        )
    return replace(
        result,
        replayed=result.replayed + total,
        reason=f"{result.reason}; {passed} of {total} other training task(s) of its kind pass",
        siblings_passed=passed,
        siblings_replayed=total,
    )


def pick_siblings(
    cases: Sequence[Case],
    fit: Callable[[str], float],
    exclude: str,
    threshold: float,
    limit: int,
) -> list[Case]:
    """The training `cases` a skill would be routed to, best first: `fit(task)` (the dense
    similarity of a case's task to the skill's document) at or above `threshold`, at most
    `limit`, never the task being learned from (task id `exclude`, or the same text), only
    cases with a gold (the judge needs one) and no attachments (a sibling is replayed bare)."""
    if limit <= 0:
        return []
    scored = []
    for case in cases:
        if not case.ground_truth or (exclude and case.task_id == exclude):
            continue
        score = fit(case.task)
        if score >= threshold:
            scored.append((score, case))
    scored.sort(key=lambda sc: -sc[0])
    return [case for _, case in scored[:limit]]


DISTINCTIVE_GOLD = 4
"""Letters and digits a gold needs before a script holding it counts as a leak: code is full of
short numbers (`range(10)`), a hard-coded answer of any length is what the siblings catch."""


def _script_leak(scripts: Mapping[str, str], cases: Sequence[Case]) -> str | None:
    """Why the skill's scripts may not go live because they hold a distinctive gold of
    `cases`, or None."""
    distinctive = [
        c
        for c in cases
        if c.ground_truth and sum(ch.isalnum() for ch in c.ground_truth) >= DISTINCTIVE_GOLD
    ]
    for rel, text in scripts.items():
        reason = leak_refusal(text, distinctive)
        if reason is not None:
            return reason.replace("the proposed skill", f"its script {rel}")
    return None


def _label(case: Case) -> str:
    return case.task_id or case.task[:60]
