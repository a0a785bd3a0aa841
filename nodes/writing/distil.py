"""Distil a winning procedure into a skill that carries it as tested code.

The search (nodes/writing/search.py) finds a way of solving a training task that the judge
passed; here it becomes `scripts/<slug>.py`, a parameterised script checked to reproduce the
winning answer in the sandbox, and a SKILL.md built from a template that says how to call it
(`run_skill_script` with the task's values as arguments). The executor then fills in arguments
instead of writing code (docs/decisions.md#script-skills).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langgraph.runtime import get_runtime

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.models import structured
from memento_skills.graph.state import Procedure, Proposal, ToolStep
from memento_skills.nodes.execution.sandbox import (
    SandboxError,
    SandboxLimits,
    Workspace,
    reachable_dir,
)
from memento_skills.nodes.execution.tools import RUN_PY_SCRIPT
from memento_skills.nodes.placeholders import generalise
from memento_skills.nodes.scoring import exact_match
from memento_skills.nodes.writing.checks import description_fit, python_error
from memento_skills.nodes.writing.heuristics import slug, unique_name
from memento_skills.nodes.writing.prompts import (
    SCRIPT_PROMPT,
    SCRIPT_SKILL_PROMPT,
    ScriptDraft,
    ScriptSkillSpec,
)
from memento_skills.nodes.writing.proposals import NEAR_DUPLICATE, make_proposal
from memento_skills.stores.skill import Skill, SkillError

SCRIPT_TOOLS = ("run_skill_script", "submit_answer")
"""What a script skill offers: the call of its script and the answer; the executor computes
nothing itself, so a wrong program of its own cannot replace the tested one."""


def distil(
    procedure: Procedure,
    task: str,
    writer: Any,
    library: Any,
    synced_index: Callable[[], Any],
    existing: Skill | None,
    *,
    ctx: Context | None = None,
) -> Proposal:
    """The winning procedure as a skill that carries it: scripts/<slug>.py (the parameterised
    script, checked to compile) and a SKILL.md whose instructions say how to call it with the
    task's values (run_skill_script), first tool run_skill_script. `existing`: the skill the
    attempt used, patched (a refine proposal) when it is a learned skill of the same kind; else a
    new skill (create). Raises SkillError when it cannot make a usable skill.

    A script the writer turns out of a winning trajectory is run in a sandbox workspace with
    this task's arguments and must print the answer the winning run gave; `ctx` gives the
    sandbox's limits and the routing threshold a skill's name and description must reach on
    its own task (default: the context of the graph run it is called in, else Context()).
    """
    ctx = ctx or running_context()
    script, args = procedure["script"], [str(a) for a in procedure["args"]]
    if not script.strip():
        script, args = _script_from_steps(writer, task, procedure["steps"], procedure["output"])
    error = python_error(script)
    if error is not None:
        raise SkillError(f"the distilled script is not python that compiles: {error}")
    check_reproduces(script, args, procedure["output"], ctx)
    index = synced_index()
    target = _target(library, index, task, existing, ctx)
    spec = _describe(writer, index, task, script, args, ctx, keep_name=target)
    if target is None:  # a near-duplicate by description is refined, as propose_new does
        duplicate = near_duplicate(
            index, Skill(name=slug(spec.name), description=spec.description, body="").document
        )
        if duplicate is not None and library.exists(duplicate):
            target = _refinable(library.get(duplicate))
            emit(
                "reflect_write",
                {"event": "near_duplicate", "of": duplicate, "refined": target is not None},
            )
    if target is not None:
        name = target.name
    else:
        name = slug(spec.name)
        if library.exists(name):
            name = unique_name(library, name)
    rel = f"scripts/{name.replace('-', '_')}.py"
    description = generalise(spec.description.strip(), task)
    body = script_body(rel, spec, args, task)
    reason = f"distil: {procedure['found_by']} passed; its program as {rel}"
    if target is not None:
        new = target.with_changes(
            description=description,
            body=body,
            allowed_tools=SCRIPT_TOOLS,
            first_tools=("run_skill_script",),
            answer_pattern=None,
        )
        old_files = {}
        if rel in library.list_files(target.name):
            old_files[rel] = library.read_file(target.name, rel).decode("utf-8", "replace")
        return make_proposal("refine", new, target, reason, {rel: script}, old_files)
    new = Skill(
        name=name,
        description=description,
        body=body,
        allowed_tools=SCRIPT_TOOLS,
        first_tools=("run_skill_script",),
        provenance="learned",
        trusted=True,
    )
    return make_proposal("create", new, None, reason, {rel: script})


def running_context() -> Context:
    """The context of the graph run this is called in (a node's), else the defaults."""
    try:
        runtime = get_runtime(Context)
    except RuntimeError:  # not inside a graph run
        return Context()
    context = getattr(runtime, "context", None)
    return context if isinstance(context, Context) else Context()


def _script_from_steps(
    writer: Any, task: str, steps: Sequence[ToolStep], output: str
) -> tuple[str, list[str]]:
    """The writer's parameterised script for the python a winning trajectory ran, and this
    task's arguments for it."""
    code = python_calls(steps)
    if not code:
        raise SkillError("the winning run ran no python: there is no program to distil")
    listing = "\n\n".join(f"# call {i}\n{c}" for i, c in enumerate(code, start=1))
    draft = structured(
        writer, ScriptDraft, SCRIPT_PROMPT.format(task=task, code=listing, output=output)
    )
    if not draft.code.strip():
        raise SkillError("the writer gave no script")
    return draft.code, [str(a) for a in draft.args]


def python_calls(steps: Sequence[ToolStep]) -> list[str]:
    """The code of each python call that ran cleanly, once each, in order."""
    seen: list[str] = []
    for step in steps:
        code = (step.get("args") or {}).get("code")
        if step["tool"] != "python" or step["error"] or not isinstance(code, str):
            continue
        if code.strip() and code not in seen:
            seen.append(code)
    return seen


def check_reproduces(script: str, args: Sequence[str], expected: str, ctx: Context) -> None:
    """Run `script` with `args` in a sandbox workspace of its own, as run_skill_script would
    run it from a skill folder; raise SkillError unless it prints the answer `expected` (its
    whole output or its last line, compared as the judge compares an exact answer)."""
    parent = reachable_dir(ctx.workspace_dir) if ctx.workspace_dir else None
    base = Path(tempfile.mkdtemp(prefix="memento-distil-", dir=parent))
    try:
        base.chmod(0o711)
        skill_root = base / "ws" / "skill"
        (skill_root / "scripts").mkdir(parents=True)
        path = skill_root / "scripts" / "candidate.py"
        path.write_text(script, encoding="utf-8")
        try:
            workspace = Workspace(base / "ws", isolation=ctx.sandbox_level)
            result = workspace.run(
                [workspace.python, "-I", "-c", RUN_PY_SCRIPT, str(skill_root), str(path), *args],
                SandboxLimits(
                    wall_s=ctx.sandbox_wall_s,
                    memory_mb=ctx.sandbox_memory_mb,
                    disk_mb=ctx.sandbox_disk_mb,
                ),
            )
        except SandboxError as e:
            raise SkillError(f"the distilled script could not be run: {e}") from e
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if not result.ok:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        why = result.killed_reason or (lines[-1][:200] if lines else "no error output")
        raise SkillError(
            f"the distilled script failed on this task's arguments (exit code "
            f"{result.exit_code}: {why})"
        )
    printed = result.stdout.strip()
    last = printed.splitlines()[-1].strip() if printed else ""
    if not printed or not (exact_match(printed, expected) or exact_match(last, expected)):
        raise SkillError(
            f"the distilled script does not reproduce the winning answer (it printed {last[:80]!r})"
        )
    emit("reflect_write", {"event": "script_checked", "args": list(args)[:10]})


def _target(
    library: Any, index: Any, task: str, existing: Skill | None, ctx: Context
) -> Skill | None:
    """The skill to refine with the script: the one the attempt used when it is a learned skill
    of this kind whose scripts run unasked (none trusted by hand, so a new script needs no new
    `trust`); else None (a new skill). A near-duplicate is found later, by the new document."""
    if existing is None or _refinable(existing) is None:
        return None
    if description_fit(index, task, existing.document) < ctx.min_route_score:
        return None
    return existing


def _refinable(skill: Skill) -> Skill | None:
    """`skill` when a script may replace its body: a learned skill whose scripts run unasked.
    A seed, imported or hand-written skill keeps its text (it serves more than this kind), and
    one trusted by hand would need a new `trust` for the new script."""
    if skill.provenance != "learned" or not skill.trusted or skill.trust_digest:
        return None
    return skill


def _describe(
    writer: Any,
    index: Any,
    task: str,
    script: str,
    args: Sequence[str],
    ctx: Context,
    *,
    keep_name: Skill | None,
) -> ScriptSkillSpec:
    """The writer's name, description and argument meanings for the script skill, asked once
    more when the document they make would not be routed to for its own task; SkillError when
    the second answer misses too ("a skill's name and description must describe its task")."""
    prompt = SCRIPT_SKILL_PROMPT.format(task=task, script=script, args=json.dumps(list(args)))
    fit = 0.0
    for ask in range(2):
        spec = structured(writer, ScriptSkillSpec, prompt)
        name = keep_name.name if keep_name is not None else slug(spec.name)
        document = Skill(name=name, description=spec.description.strip(), body="").document
        fit = description_fit(index, task, document)
        if fit >= ctx.min_route_score and spec.description.strip():
            return spec
        emit("reflect_write", {"event": "misnamed", "name": name, "fit": round(fit, 3)})
        if ask == 0:
            prompt += (
                f"\n\nYour previous answer (name {spec.name!r}, description "
                f"{spec.description[:200]!r}) does not describe this task: a router would not "
                "pick it for it. Name and describe what this task asks for."
            )
    raise SkillError(
        f"the skill's name and description do not describe its task (it matches its own task "
        f"at {fit:.2f}, under the routing threshold {ctx.min_route_score})"
    )


def script_body(rel: str, spec: ScriptSkillSpec, args: Sequence[str], task: str) -> str:
    """The skill's instructions, from a template: what the script computes, how to call it with
    each argument described, how to submit, and one worked call with the task's values
    generalised (a word of the task becomes its argument's name, a number N1, N2, ...; the
    problem's constants stay)."""
    names = [_arg_name(spec, i) for i in range(len(args))]
    meanings = [
        spec.arguments[i].meaning.strip() if i < len(spec.arguments) else f"value {i + 1}"
        for i in range(len(args))
    ]
    shown = [
        f"<{names[i]}>" if any(c.isalpha() for c in a) and a in task else a
        for i, a in enumerate(args)
    ]
    call = generalise(f"run_skill_script(script={rel!r}, args={json.dumps(shown)})", task)
    computes = generalise(spec.computes.strip() or spec.description.strip(), task).rstrip(".")
    lines = [
        f"# {spec.name.strip() or rel}",
        "",
        f"The tested script `{rel}` computes the answer: {computes}.",
        "Do not write your own code for it: call the script.",
        "",
        "## Steps",
        "",
        f"1. Call `run_skill_script` with script `{rel}` and args, in this order "
        "(each as a string, taken from the task):",
    ]
    if not names:
        lines[-1] = f"1. Call `run_skill_script` with script `{rel}` and no args."
    for i, (name, meaning) in enumerate(zip(names, meanings, strict=True), start=1):
        lines.append(f"   {i}. `{name}`: {generalise(meaning, task)}")
    lines += [
        "2. The last line the script prints is the answer: submit it with `submit_answer`, "
        "exactly as printed.",
        "3. If the script reports an error, read it, correct the arguments and call it again.",
        "",
        "## Worked call",
        "",
        "```text",
        call,
        "```",
    ]
    return "\n".join(lines)


def _arg_name(spec: ScriptSkillSpec, i: int) -> str:
    name = spec.arguments[i].name.strip() if i < len(spec.arguments) else ""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name).strip("_")
    return cleaned[:40] or f"arg{i + 1}"


def near_duplicate(index: Any, document: str) -> str | None:
    """The skill whose document is a near-duplicate of `document`, or None."""
    nearest = index.dense_search(document, 1) if index.count() else []
    return str(nearest[0][0]) if nearest and nearest[0][1] >= NEAR_DUPLICATE else None
