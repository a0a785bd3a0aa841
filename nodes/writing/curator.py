"""The curator: keeps a learned library clean by retiring, merging, trimming and renaming skills.

`plan_curation` decides, by rule and from what it is given only (the skills with their lift and
utility, the index's similarities, the skills' script files), which steps the library needs;
`apply_curation` makes one step as a versioned write through the library, gated where it changes
what the executor sees (a merge, a drop), and only with approval where approval is needed
(docs/decisions.md#curation). Seed skills are never touched; imported (and API-written) skills
are only retired or renamed, and only with approval.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from markdown_it import MarkdownIt
from pydantic import BaseModel, Field

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.models import structured
from memento_skills.nodes.gate import (
    ReplayGraph,
    ReplayUnjudged,
    leak_refusal,
    replay,
    run_gate,
)
from memento_skills.nodes.writing.checks import DATA_LANGS
from memento_skills.nodes.writing.heuristics import slug
from memento_skills.nodes.writing.lifecycle import DRAFT_USES, MIN_LIFT_CASES, next_state, why
from memento_skills.nodes.writing.proposals import NEAR_DUPLICATE, apply_patch, ask_patch
from memento_skills.stores.cases import Case, Cases, MissingCaseFiles
from memento_skills.stores.embedder import embed
from memento_skills.stores.skill import Skill, SkillError, check_name, parse_skill

Action = Literal["retire", "merge", "drop", "rename"]

RETIRE_EVIDENCE = MIN_LIFT_CASES
"""Cases measured each way (with and without the skill) before a lift moves a skill: retired
at 0 or less, active above (the lifecycle's rule, nodes/writing/lifecycle.py)."""
NAME_FIT = 0.15
"""Cosine of a name's words to its own description below which the name says nothing of what
the skill does (every seed skill is above it: the lowest, `filesystem`, at 0.18)."""
NAME_ELSEWHERE = 0.1
"""How much better a name must fit another skill's description than its own to be misleading."""
SCRIPT_CALL = "run_skill_script"

_STOP = frozenset(STOPWORDS_EN) | {
    *("use", "used", "using", "whenever", "task", "tasks", "asks", "ask", "given", "give"),
    *("gives", "answer", "answers", "exactly", "run", "running", "skill", "one", "two"),
}
"""Words a name made from a description leaves out: they say when, not what."""


RENAME_PROMPT = """A skill's name does not say what it does. Name it for the kind of task it \
solves: two to four lowercase words joined by hyphens, none of them a value from one task.

Description: {description}
Current name: {name}"""


class NewName(BaseModel):
    """The writer's name for a misnamed skill."""

    name: str = Field(description="two to four lowercase words joined by hyphens")


@dataclass(frozen=True)
class CurationStep:
    """One change the curator plans: what, to which skill, why, and the evidence for it."""

    action: Action
    skill: str
    base_version: int
    """The version the step was planned on: a skill changed since is left for the next plan."""
    why: str
    evidence: str
    into: str = ""
    """merge: the skill that stays (and takes the other's useful body and cases)."""
    into_version: int = 0
    new_name: str = ""
    """rename: the name the rule derives from the description (a writer may propose a better one)."""
    body: str = ""
    """drop: the body without the text the script made redundant."""
    needs_approval: bool = False
    """An imported or API-written skill: curated only when someone approves the step."""

    def line(self) -> str:
        """One line for a plan: action, skill, why, evidence."""
        target = f" into {self.into}" if self.into else ""
        target += f" -> {self.new_name}" if self.new_name else ""
        ask = " (needs approval)" if self.needs_approval else ""
        return f"{self.action} {self.skill}{target}: {self.why} [{self.evidence}]{ask}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.body:
            data.pop("body")
        return data


@dataclass(frozen=True)
class Similarities:
    """What the index says about the skills the curator may touch (see `library_similarities`)."""

    documents: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """Cosine of two skills' indexed documents, keyed by the sorted pair of names."""
    name_own: Mapping[str, float] = field(default_factory=dict)
    """Cosine of a skill's name (as words) to its own description."""
    name_other: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    """The other skill whose description a skill's name fits best, and how well."""
    suggested: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    """A name made from the skill's description by rule, and its fit to that description."""

    def document(self, a: str, b: str) -> float:
        return self.documents.get((min(a, b), max(a, b)), 0.0)


@dataclass
class CurationResult:
    """What applying one step did: the versions it wrote and the commands that take it back."""

    step: CurationStep
    applied: bool
    detail: str
    undo: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step.to_dict(),
            "applied": self.applied,
            "detail": self.detail,
            "undo": self.undo,
            "versions": self.versions,
        }


@dataclass(frozen=True)
class CurationGate:
    """What a step that changes what the executor sees is replayed with: the gate's replay
    graph (None when no model is available: such a step then waits unless it has no cases to
    replay), the library's cases and the run configuration."""

    replay: ReplayGraph | None
    cases: Cases
    ctx: Context


# --- planning ------------------------------------------------------------------------------


def _curatable(skill: Skill) -> bool:
    return skill.provenance != "seed" and skill.lifecycle != "deprecated"


def _learned(skill: Skill) -> bool:
    return skill.provenance == "learned" and skill.lifecycle != "deprecated"


def _lift_text(skill: Skill) -> str:
    lift = skill.lift
    if lift is None:
        return "lift not measured"
    value = "n/a" if lift.value is None else f"{lift.value:+.2f}"
    return (
        f"lift {value}: {lift.with_passed}/{lift.with_total} with, "
        f"{lift.without_passed}/{lift.without_total} without (v{lift.version})"
    )


def _merit(skill: Skill) -> tuple[float, float, int, str]:
    """Which of two near-duplicates stays: better lift, then success rate, then successes."""
    lift = skill.lift.value if skill.lift is not None else None
    u = skill.utility
    rate = u.successes / u.runs if u.runs else 0.0
    return (lift if lift is not None else 0.0, rate, u.successes, skill.name)


def retire_reason(skill: Skill) -> tuple[str, str] | None:
    """(why, evidence) when `skill` should be retired, else None."""
    lift = skill.lift
    if (
        lift is not None
        and lift.value is not None
        and lift.with_total >= RETIRE_EVIDENCE
        and lift.without_total >= RETIRE_EVIDENCE
        and lift.value <= 0
    ):
        return "measured lift is not positive", _lift_text(skill)
    u = skill.utility
    if skill.lifecycle == "draft" and u.successes == 0 and u.runs >= DRAFT_USES:
        return "a draft that kept failing", f"{u.runs} judged uses, none passed"
    return None


def redundant_text(body: str, scripts: Sequence[str]) -> tuple[str, str] | None:
    """(the body without it, what was dropped) when `body` re-derives what its `scripts` compute.

    The call instructions are the blocks that name a script or the script tool; a fenced code
    block in a programming language, or a numbered step list, that names neither re-derives the
    computation the script already does. Dropped only when call instructions remain.
    """
    if not scripts:
        return None
    names = _script_names(scripts)

    def calls(text: str) -> bool:
        return any(n in text for n in names)

    lines = body.splitlines(keepends=True)
    drop: list[tuple[int, int]] = []
    kinds = {"code block": 0, "step list": 0}
    depth = 0
    for token in MarkdownIt("commonmark").parse(body):
        if token.type in ("ordered_list_close", "bullet_list_close"):
            depth -= 1
        if token.map is None:
            continue
        start, end = token.map
        text = "".join(lines[start:end])
        if token.type == "fence" and depth == 0:
            lang = (token.info.strip().split() or [""])[0].strip("{}.").lower()
            if lang not in DATA_LANGS and not calls(text):
                drop.append((start, end))
                kinds["code block"] += 1
        elif token.type == "ordered_list_open":
            if depth == 0 and not calls(text) and _items(text) >= 2:
                drop.append((start, end))
                kinds["step list"] += 1
            depth += 1
        elif token.type == "bullet_list_open":
            depth += 1
    if not drop:
        return None
    kept = [line for i, line in enumerate(lines) if not any(a <= i < b for a, b in drop)]
    new_body = _tidy("".join(kept))
    if not calls(new_body) or new_body == body.strip():
        return None
    what = ", ".join(f"{n} {k}(s)" for k, n in kinds.items() if n)
    return new_body, f"{what} that do not call {', '.join(scripts)}"


def _script_names(scripts: Sequence[str]) -> list[str]:
    names = {SCRIPT_CALL}
    for rel in scripts:
        names.add(rel)
        base = rel.rsplit("/", 1)[-1]
        names.add(base)
    return sorted(names)


def _items(text: str) -> int:
    return len(re.findall(r"^\s*\d+[.)]\s", text, re.M))


def _tidy(body: str) -> str:
    """Collapse the blank lines a drop left, and headings left with nothing under them."""
    lines = body.strip().splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        heading = re.match(r"^(#+)\s", line)
        if heading:
            rest = next((x for x in lines[i + 1 :] if x.strip()), None)
            deeper = rest is not None and re.match(r"^(#+)\s", rest)
            if rest is None or (deeper and len(deeper.group(1)) <= len(heading.group(1))):
                continue
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def suggest_name(description: str) -> str | None:
    """A name made by rule from what the description says first: its leading content words."""
    first = re.split(r"(?<=[.!?])\s", description.strip(), maxsplit=1)[0]
    words = list(
        dict.fromkeys(w for w in re.findall(r"[a-z0-9]+", first.lower()) if w not in _STOP)
    )
    name = "-".join(words[:4])[:64].strip("-")
    return name if name and not check_name(name) else None


def misnamed(skill: Skill, sims: Similarities) -> tuple[str, str] | None:
    """(why, evidence) when `skill`'s name does not say what it does, else None."""
    own = sims.name_own.get(skill.name)
    if own is None:
        return None
    other, elsewhere = sims.name_other.get(skill.name, ("", -1.0))
    if own < NAME_FIT:
        return "its name says nothing of what it does", f"name fits its description {own:.2f}"
    if other and elsewhere >= own + NAME_ELSEWHERE:
        return (
            f"its name fits {other}'s description better than its own",
            f"name fits its description {own:.2f}, {other}'s {elsewhere:.2f}",
        )
    return None


def plan_curation(
    skills: Sequence[Skill],
    similarities: Similarities,
    scripts: Mapping[str, Sequence[str]],
) -> list[CurationStep]:
    """The steps the library needs, at most one per skill (the next plan sees its result).

    Pure: decided from `skills` (their lifecycle, lift and utility), `similarities` (from the
    index) and `scripts` (skill name -> its script files) alone. Retire first (a skill on its way
    out is not merged or renamed), then merge near-duplicates, drop redundant text, rename.
    """
    steps: list[CurationStep] = []
    busy: set[str] = set()
    live = sorted((s for s in skills if _curatable(s)), key=lambda s: s.name)
    for s in live:
        reason = retire_reason(s)
        if reason is not None:
            steps.append(
                CurationStep(
                    "retire",
                    s.name,
                    s.version,
                    *reason,
                    needs_approval=s.provenance != "learned",
                )
            )
            busy.add(s.name)
    learned = [s for s in live if _learned(s) and s.name not in busy]
    pairs = sorted(
        (
            (similarities.document(a.name, b.name), a, b)
            for i, a in enumerate(learned)
            for b in learned[i + 1 :]
        ),
        key=lambda p: (-p[0], p[1].name, p[2].name),
    )
    for sim, a, b in pairs:
        if sim < NEAR_DUPLICATE or a.name in busy or b.name in busy:
            continue
        keep, other = (a, b) if _merit(a) >= _merit(b) else (b, a)
        steps.append(
            CurationStep(
                "merge",
                other.name,
                other.version,
                "a near-duplicate of a skill that does at least as well",
                f"documents {sim:.2f} alike (>= {NEAR_DUPLICATE}); kept: {_lift_text(keep)}, "
                f"{keep.utility.successes}/{keep.utility.failures} ok/fail; merged: "
                f"{_lift_text(other)}, {other.utility.successes}/{other.utility.failures} ok/fail",
                into=keep.name,
                into_version=keep.version,
            )
        )
        busy.update((a.name, b.name))
    for s in learned:
        if s.name in busy:
            continue
        found = redundant_text(s.body, scripts.get(s.name, ()))
        if found is not None:
            steps.append(
                CurationStep(
                    "drop",
                    s.name,
                    s.version,
                    "body text re-derives what its script computes",
                    found[1],
                    body=found[0],
                )
            )
            busy.add(s.name)
    taken = {s.name for s in skills}
    for s in live:
        if s.name in busy:
            continue
        reason = misnamed(s, similarities)
        suggested = similarities.suggested.get(s.name)
        if reason is None or suggested is None:
            continue
        name, fit = suggested
        own = similarities.name_own.get(s.name, 0.0)
        if fit < max(NAME_FIT, own + NAME_ELSEWHERE):
            continue  # the rule's name would not say it better: leave it to a writer or a person
        name = _free(name, taken)
        taken.add(name)
        steps.append(
            CurationStep(
                "rename",
                s.name,
                s.version,
                reason[0],
                f"{reason[1]}; {name} fits it {fit:.2f}",
                new_name=name,
                needs_approval=s.provenance != "learned",
            )
        )
    return steps


def _free(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    for i in range(2, 100):
        candidate = f"{name[:60]}-{i}"
        if candidate not in taken:
            return candidate
    return name


# --- what the planner is given -----------------------------------------------------------------


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)


def library_similarities(index: Any, skills: Sequence[Skill]) -> Similarities:
    """The index's similarities for the skills the curator may touch: their stored document
    vectors pairwise, and each name's words against its own description and every other live
    skill's (seeds included), embedded here in one batch with the index's embedder."""
    live = [s for s in skills if _curatable(s)]
    if not live:
        return Similarities()
    vectors = index.vectors([s.name for s in live])
    documents: dict[tuple[str, str], float] = {}
    learned = [s for s in live if _learned(s) and s.name in vectors]
    for i, a in enumerate(learned):
        for b in learned[i + 1 :]:
            key = (min(a.name, b.name), max(a.name, b.name))
            documents[key] = _cosine(vectors[a.name], vectors[b.name])
    described = [s for s in skills if s.lifecycle != "deprecated"]
    candidates = {s.name: suggest_name(s.description) for s in live}
    wanted = [c for n, c in candidates.items() if c is not None and c != n]
    texts = [
        *(s.description for s in described),
        *(s.name.replace("-", " ") for s in live),
        *(c.replace("-", " ") for c in wanted),
    ]
    rows = _unit(embed(index.embedder, texts))
    desc = dict(zip((s.name for s in described), rows[: len(described)], strict=True))
    names = rows[len(described) : len(described) + len(live)]
    made = dict(zip(wanted, rows[len(described) + len(live) :], strict=True))
    name_own: dict[str, float] = {}
    name_other: dict[str, tuple[str, float]] = {}
    suggested: dict[str, tuple[str, float]] = {}
    for s, words in zip(live, names, strict=True):
        own = desc.get(s.name)
        if own is None:
            continue
        name_own[s.name] = float(words @ own)
        others = [
            (o.name, float(words @ desc[o.name]))
            for o in described
            if o.name != s.name and o.description != s.description
        ]
        if others:
            name_other[s.name] = max(others, key=lambda x: x[1])
        candidate = candidates[s.name]
        if candidate is not None and candidate in made:
            suggested[s.name] = (candidate, float(made[candidate] @ own))
    return Similarities(documents, name_own, name_other, suggested)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def script_files(library: Any, skills: Sequence[Skill]) -> dict[str, list[str]]:
    """Each learned skill's script files (skill-relative paths under scripts/)."""
    return {
        s.name: [f for f in library.list_files(s.name) if f.startswith("scripts/")]
        for s in skills
        if _learned(s)
    }


def plan_library(library: Any, index: Any) -> list[CurationStep]:
    """`plan_curation` on the library as it is now, with the index (in line with it)."""
    skills = library.skills()
    return plan_curation(skills, library_similarities(index, skills), script_files(library, skills))


# --- applying ------------------------------------------------------------------------------


def apply_curation(
    step: CurationStep,
    library: Any,
    gate: CurationGate,
    *,
    writer: Any = None,
    approve: Callable[[CurationStep], bool] | None = None,
) -> CurationResult:
    """Make `step` as a versioned write (undone with the commands in the result).

    `approve` decides each step when given (a prompt, or --yes); without it, a step that needs
    approval (an imported skill, or ctx.approval_required) is not made. A merge or a drop
    replays the regression cases of what it changes through `gate` and is taken back on a
    regression. A step whose skill changed since it was planned is left for the next plan.
    """
    if approve is not None:
        if not approve(step):
            return CurationResult(step, False, "not approved")
    elif step.needs_approval or gate.ctx.approval_required:
        return CurationResult(step, False, "needs approval: not applied")
    try:
        current = library.get(step.skill)
    except SkillError as e:
        return CurationResult(step, False, f"skipped: {e}")
    if current.version != step.base_version:
        return CurationResult(
            step, False, f"skipped: {step.skill} changed since planned (now v{current.version})"
        )
    try:
        if step.action == "retire":
            result = _retire(step, library)
        elif step.action == "rename":
            result = _rename(step, library, gate.cases, writer)
        elif step.action == "drop":
            result = _drop(step, library, gate, current)
        else:
            result = _merge(step, library, gate, current, writer)
    except SkillError as e:
        result = CurationResult(step, False, f"not applied: {e}"[:500])
    emit(
        "curator",
        {"event": "curated", "action": step.action, "skill": step.skill, **result.to_dict()},
    )
    return result


def _rollback(name: str, version: int) -> str:
    return f"memento skills rollback {name} {version}"


def _retire(step: CurationStep, library: Any) -> CurationResult:
    done = library.set_lifecycle(step.skill, "deprecated", reason=f"curator: {step.why}")
    return CurationResult(
        step,
        True,
        f"retired {step.skill} (v{done.version}): {step.why}",
        [_rollback(step.skill, step.base_version)],
        {step.skill: done.version},
    )


def _rename(step: CurationStep, library: Any, cases: Cases, writer: Any) -> CurationResult:
    name = step.new_name
    if writer is not None:
        name = _writer_name(writer, library.get(step.skill)) or name
    if library.exists(name):
        return CurationResult(step, False, f"skipped: {name} already exists")
    done = library.rename(step.skill, name)
    cases.rename(step.skill, name)
    return CurationResult(
        step,
        True,
        f"renamed {step.skill} to {name} (v{done.version}): {step.why}",
        [f"memento skills rename {name} {step.skill}"],
        {name: done.version},
    )


def _writer_name(writer: Any, skill: Skill) -> str | None:
    """The writer's name for what `skill` does, if usable."""
    try:
        proposed = structured(
            writer,
            NewName,
            RENAME_PROMPT.format(description=skill.description, name=skill.name),
        )
        return slug(proposed.name)
    except Exception:  # an unusable or failed answer: the rule's name stands
        return None


def _gate_cases(gate: CurationGate, names: Sequence[str]) -> list[Case]:
    if gate.ctx.gate_cases <= 0:
        return []
    return [c for n in names for c in gate.cases.load(n)[-gate.ctx.gate_cases :]]


def _drop(step: CurationStep, library: Any, gate: CurationGate, current: Skill) -> CurationResult:
    if gate.replay is None and _gate_cases(gate, [step.skill]):
        return CurationResult(step, False, "waits: its cases need a model to be replayed")
    change = uuid.uuid4().hex[:16]
    with library.change_on_trial(step.skill, current.version, change):
        live = library.update(step.skill, body=step.body, change=change)
        verdict = _vet(gate, live, [])
        if verdict is not None:
            library.take_back(step.skill, live.version, current.version)
            return CurationResult(step, False, f"taken back: {verdict}")
    return CurationResult(
        step,
        True,
        f"dropped from {step.skill} (v{live.version}): {step.evidence}",
        [_rollback(step.skill, current.version)],
        {step.skill: live.version},
    )


def _merge(
    step: CurationStep, library: Any, gate: CurationGate, current: Skill, writer: Any
) -> CurationResult:
    keep = library.get(step.into)
    if keep.version != step.into_version:
        return CurationResult(
            step, False, f"skipped: {step.into} changed since planned (now v{keep.version})"
        )
    theirs = _gate_cases(gate, [step.skill])
    if gate.replay is None and (theirs or _gate_cases(gate, [keep.name])):
        return CurationResult(step, False, "waits: its cases need a model to be replayed")
    folded = _fold(writer, keep, current) if writer is not None else None
    change = uuid.uuid4().hex[:16]
    undo = [_rollback(step.skill, current.version)]
    versions: dict[str, int] = {}
    with library.change_on_trial(keep.name, keep.version, change):
        live = keep
        if folded is not None:
            live = library.update(
                keep.name, body=folded.body, description=folded.description, change=change
            )
        verdict = _vet(gate, live, theirs, gate.cases.load(step.skill))
        if verdict is not None:
            if folded is not None:
                library.take_back(keep.name, live.version, keep.version)
            return CurationResult(step, False, f"taken back: {verdict}")
    if folded is not None:
        undo.insert(0, _rollback(keep.name, keep.version))
        versions[keep.name] = live.version
    retired = library.set_lifecycle(
        step.skill, "deprecated", reason=f"curator: merged into {keep.name}"
    )
    versions[step.skill] = retired.version
    for case in gate.cases.load(step.skill):
        try:
            files = gate.cases.files_of(case)
        except MissingCaseFiles:
            continue
        gate.cases.add(keep.name, case, files)
    body = "its body folded in" if folded is not None else "no writer: body not folded"
    return CurationResult(
        step,
        True,
        f"merged {step.skill} into {keep.name} ({body}); {step.skill} deprecated "
        f"(v{retired.version})",
        undo,
        versions,
    )


def _fold(writer: Any, keep: Skill, other: Skill) -> Skill | None:
    """`keep` with the writer's patch folding in what `other`'s body adds; None when the writer
    gives no usable patch (the merge then keeps `keep` as it is)."""
    analysis = f"The skill {other.name} duplicates this one and is being merged into it."
    try:
        patch = ask_patch(
            writer, keep, analysis, f"\nMerge its useful steps that this skill lacks:\n{other.body}"
        )
        proposal = apply_patch(keep, patch, analysis, None)
    except Exception:  # an unusable patch: merge without folding
        return None
    return parse_skill(proposal["skill_md"], f"<merged {keep.name}>", folder_name=keep.name)


def _vet(
    gate: CurationGate, live: Skill, extra: Sequence[Case], joining: Sequence[Case] = ()
) -> str | None:
    """Why the live change must be taken back, or None: a gold of a case it keeps or gains
    (`joining`) in its text, or a broken case of its own or of `extra` (replayed with it)."""
    text = live.authored_text()
    refusal = leak_refusal(text, [*joining, *extra])
    if refusal is not None:
        return refusal
    if gate.replay is None:
        return None  # nothing to replay (checked by the caller)
    result = run_gate(
        gate.replay, gate.cases, gate.ctx, live.name, text, None, None, live.answer_pattern
    )
    if not result.passed:
        return f"gate: {result.reason}"
    broken = []
    for case in extra:
        try:
            files = gate.cases.files_of(case)
        except MissingCaseFiles:
            continue
        try:
            if not replay(gate.replay, gate.ctx, live.name, case, files):
                broken.append(case.task_id or case.task[:60])
        except ReplayUnjudged as e:
            return f"gate: not gated: {e}; the step is taken back untested, check the endpoint"
    if broken:
        return f"gate: broke {len(broken)} case(s) of the merged skill ({', '.join(broken)})"
    return None


# --- a whole pass -----------------------------------------------------------------------------


def promote(library: Any, skill: Skill) -> Skill:
    """A learned draft or candidate whose lift is shown positive becomes active (the lifecycle's
    rule); retiring on evidence is left to the plan, so it is logged, approved and undoable."""
    if skill.lifecycle != "active" and next_state(skill) == "active":
        return cast(Skill, library.set_lifecycle(skill.name, "active", reason=why(skill, "active")))
    return skill


def measure_lifts(
    library: Any,
    measure: Callable[[str, Sequence[Case]], Any],
    extra: Callable[[Skill], Sequence[Case]] = lambda _s: (),
    *,
    record: bool = True,
) -> dict[str, Any]:
    """Measure the lift of every live learned skill (`measure(name, extra cases)`, i.e.
    nodes/writing/lift.py's measure_lift bound to a replay graph) and, with `record`, keep it
    and promote those it shows useful; returns name -> Lift. A skill with no case to measure on
    keeps what it had."""
    lifts: dict[str, Any] = {}
    for skill in library.skills():
        if not _learned(skill):
            continue
        lift = measure(skill.name, extra(skill))
        if lift.with_total == 0:
            continue
        lifts[skill.name] = lift
        if not record:
            continue
        try:
            recorded = library.record_lift(skill.name, lift)
        except SkillError as e:  # changed while it was measured: the next pass measures it
            emit("curator", {"event": "lift_not_recorded", "skill": skill.name, "reason": str(e)})
            del lifts[skill.name]
            continue
        promote(library, recorded)
    return lifts


def curate(
    library: Any,
    index: Any,
    gate: CurationGate,
    *,
    writer: Any = None,
    approve: Callable[[CurationStep], bool] | None = None,
) -> list[CurationResult]:
    """Plan on the library as it is (with `index` in line with it) and apply every step."""
    return [
        apply_curation(step, library, gate, writer=writer, approve=approve)
        for step in plan_library(library, index)
    ]
