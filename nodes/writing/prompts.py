"""What the writer model is asked, and the schemas it fills in: attribution, patch, new skill."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from memento_skills.graph.state import ToolStep
from memento_skills.nodes.writing.heuristics import short_args

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


def trajectory_text(steps: list[ToolStep]) -> str:
    """The attempt's tool calls as numbered lines for the attribution prompt."""
    if not steps:
        return "(no tool calls)"
    lines = []
    for i, s in enumerate(steps, 1):
        out = s["output"].replace("\n", " ")[:300]
        lines.append(
            f"{i}. {s['tool']}({short_args(s['args'])}) -> {'ERROR ' if s['error'] else ''}{out}"
        )
    return "\n".join(lines)
