"""Rules the writer applies from the trajectory itself, whatever the writer model says.

The behaviour policy a failed attempt argues for, the worked example a solved one leaves, the
task's numbers generalised out of skill text, the check that an answer pattern extracts
something, and the skill names a writer's proposal may take.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from memento_skills.graph.state import ToolStep, Verdict, task_text
from memento_skills.nodes.execution.policies import earlier_step
from memento_skills.nodes.execution.tools import TOOL_NAMES
from memento_skills.nodes.placeholders import generalise
from memento_skills.stores.skill import Skill, SkillError, check_name

NUMBER_PATTERN = r"-?\d[\d,]*(?:\.\d+)?"
COMPUTE_TOOLS = frozenset({"python", "shell", "run_skill_script"})
EXAMPLE_HEADING = "## Worked example"


def short_args(args: dict[str, Any]) -> str:
    """A tool call's arguments as `k=v, ...`, cut at 300 characters."""
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return text if len(text) <= 300 else text[:300] + "..."


def behaviour_policy(
    trajectory: Sequence[ToolStep], verdict: Verdict | None, skill: Skill | None
) -> dict[str, Any]:
    """Policy the trajectory itself argues for, whatever the writer model says.

    No tool that computes was used (the model answered from its head, or only listed and read
    files) → the first step must call one; the judge saw the right kind of value buried in words
    → an answer contract (docs/decisions.md#behaviour-policy). A wrong guess costs nothing
    lasting: the gate replays the failing task and the skill's regression cases with the change
    before it goes live.
    """
    policy: dict[str, Any] = {}
    used = {s["tool"] for s in trajectory}
    offered = set(skill.allowed_tools) if skill and skill.allowed_tools else set(TOOL_NAMES)
    if not used & COMPUTE_TOOLS and not (skill and skill.first_tools):
        for tool in ("python", "shell"):
            if tool in offered:
                policy["first_tools"] = (tool,)
                break
    if verdict and verdict.get("format") == "number" and not (skill and skill.answer_pattern):
        policy["answer_pattern"] = NUMBER_PATTERN
    return policy


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
            calls.append(step)  # a call it reran shows once (docs/decisions.md#worked-example)
    if not calls:
        return None
    lines = [EXAMPLE_HEADING, "", f"A solved task of this kind: {task.strip()[:400]}", ""]
    for i, step in enumerate(calls[:3], start=1):
        args = step["args"] or {}
        call = args.get("code") or args.get("command")
        if not isinstance(call, str):
            call = short_args(args)
        lines += [f"Step {i}, {step['tool']}:", "```", call.strip()[:800], "```", ""]
    lines.append(
        "Its output gave the answer. For a new task, make the same call with the new task's "
        "values in place of N1, N2, ..."
    )
    return generalise("\n".join(lines), task)


def answer_evidence(state: Mapping[str, Any]) -> str:
    """What the attempt produced, gold-free: its answer and its tool outputs."""
    outputs = [str(s["output"]) for s in state.get("trajectory") or [] if not s["error"]]
    return "\n".join([str(state.get("answer") or ""), *outputs])


def pattern_fits(pattern: str, evidence: str) -> bool:
    """A writer's answer contract must extract something from what the attempt produced.

    A valid pattern that matches nothing falls back to the raw answer, so the gate's replay
    cannot tell it is useless; the attempt's own output can
    (docs/decisions.md#answer-pattern-check).
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


def slug(name: str) -> str:
    """The writer's proposed name as a valid skill name (lowercase words joined by hyphens)."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    if check_name(text):
        raise SkillError(f"the writer proposed an unusable skill name {name!r}")
    return text


def unique_name(library: Any, name: str) -> str:
    """`name` with the first free numeric suffix in `library` (name-2, name-3, ...)."""
    for i in range(2, 100):
        candidate = f"{name[:60]}-{i}"
        if not library.exists(candidate):
            return candidate
    raise SkillError(f"no free name near {name!r}")


ECHO_MIN_CHARS = 20
"""A body line this long or longer that the writer's prompt holds is an echo, not a step."""
PROMPT_LABELS = ("what happened:", "what went wrong:", "task that had no fitting skill:")
"""Labels of the writer's prompts (CREATE_PROMPT, PATCH_PROMPT) that a copied line starts with."""


def echo_removed(text: str, task: str, analysis: str) -> str:
    """`text` without the lines that restate the writer's prompt: a line under one of its
    labels, a line holding the whole task or the whole analysis, or a sentence of the task.

    A small writer asked for a skill sometimes returns its prompt (the task, and the analysis
    with the judge's critique) as the body: a note about one task, not a procedure for its kind
    (docs/decisions.md#prompt-echo). What remains is the writer's own text.
    """
    flat_task = _squashed(task)
    whole = [p for p in (flat_task, _squashed(analysis)) if len(p) >= ECHO_MIN_CHARS]
    lines, kept = text.splitlines(), []
    for line in lines:
        flat = _squashed(line)
        echoed = flat.startswith(PROMPT_LABELS) or (
            len(flat) >= ECHO_MIN_CHARS and (flat in flat_task or any(p in flat for p in whole))
        )
        if not echoed:
            kept.append(line)
    if len(kept) == len(lines):
        return text.strip()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def _squashed(text: str) -> str:
    """`text` lower-cased with its runs of white space as one space, for comparing lines."""
    return " ".join(text.lower().split())


def repeats_removed(text: str) -> str:
    """`text` with each paragraph of prose kept once: a small writer caught in a loop repeats
    whole paragraphs until its token limit (docs/decisions.md#prompt-echo); the first of each
    stays. Code blocks are kept as they are."""
    paragraphs = re.split(r"\n[ \t]*\n", text.strip())
    seen: set[str] = set()
    kept, fences = [], 0
    for paragraph in paragraphs:
        flat = _squashed(paragraph)
        in_code = fences % 2 == 1 or "```" in paragraph
        fences += paragraph.count("```")
        if flat and flat in seen and not in_code:
            continue
        seen.add(flat)
        kept.append(paragraph)
    return text.strip() if len(kept) == len(paragraphs) else "\n\n".join(kept)


def writer_text(text: str, task: str, analysis: str) -> str:
    """What of a writer's skill text is its own: no line of its prompt, no paragraph twice."""
    return repeats_removed(echo_removed(text, task, analysis))
