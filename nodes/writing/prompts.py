"""What the writer model is asked, and the schemas it fills in: attribution, patch, new skill,
the learning-time search's program and its repair, and the script skill a winning procedure is
distilled into."""

from __future__ import annotations

import ast
import json
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

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


SCRIPT_PROMPT = """A run solved this task with the python code below. Turn that code into one
parameterised script that solves ANY task of this kind.

Task:
{task}

The code the run executed, in order:
{code}

What the run answered: {output}

Write a complete python 3 script that:
- takes every value of the task it depends on (numbers, words, lists, dates...) as command-line
  arguments, in a fixed order (read them with argparse or sys.argv); nothing of this task's values
  is written into the code;
- computes the answer the way the code above does, with the standard library only;
- prints the answer alone on the last line of its output, in the form the task asks for.
Also give args: this task's values, as strings, in the script's argument order, so that running
the script with them prints the answer above."""

SCRIPT_SKILL_PROMPT = """A tested script solves tasks of one kind. Describe the skill that carries it,
so that an agent picks it for tasks of this kind (and only those) and calls it correctly.

A task it solved:
{task}

The script:
```python
{script}
```

It was called with these arguments, in order: {args}

Give:
- name: lowercase words joined by hyphens, naming the KIND of task (not this task's values);
- description: what the skill does and when to use it (and when not), in one or two sentences;
- computes: one sentence saying what the script computes from its arguments;
- arguments: one entry per argument, in order: a short name and what value of a task goes there.
Never write the answer of this particular task."""


PROGRAM_PROMPT = """An attempt at a task failed. Write a Python program that computes the answer to
this task.

Task:
{task}

What the failed attempt did:
{trajectory}

Its final answer, which the judge says is wrong: {answer}
{working}
Reply with the program in one ```python code block: a complete Python 3 program (standard
library only, every import written out), not a command that runs it. At its top, each value of
the task (a number, a word, a list, a date, ...) is written once as a named variable
(`word = "..."`, `n = 12`); the program computes the answer from those variables and prints
only the answer, on its last line, in the form the task asks for. Files the task came with are
in the program's working directory."""

WORKING_CODE = """
A run that the judge passed computed the answer with this code:
```{language}
{code}
```
Make the program this computation, in Python, with the task's values as named variables at the
top.
"""

REPAIR_PROGRAM_PROMPT = """Your program for this task did not give a right answer.

Task:
{task}

Your program:
```python
{script}
```
{run_with}
What the run printed:
{output}

{verdict}

Find the mistake (in the computation, in reading the task's values, or in the form of the
printed answer) and reply with the corrected program in one ```python code block, by the same
rules: each value of the task once, as a named variable at the top; only the answer printed on
the last line."""

RUN_WITH = "Run with the arguments: {args}\n"

WRONG_ANSWER = """Answer taken from its last line: {answer}
The judge says this answer is wrong."""
CRASHED = """It stopped with an error before it could answer. Read the error: fix its cause (a \
missing import, a misspelt name, an argument read wrongly) and keep the computation."""
PRINTED_NOTHING = "It printed nothing: the program must print the answer on its last line."

NOT_PYTHON_PROMPT = """The code you gave for this task is not a Python program, so it was not \
run. Python says: {problem}

Task:
{task}

What you gave as the code:
```
{script}
```

The code must be the program's own Python source: the code that computes the answer, with \
its imports, each value of the task written once as a named variable at its top. Not a \
command line that would run a program, not a call to a tool, not the output of an earlier run. \
Reply with the program again, in one ```python code block."""


class CodeReply(BaseModel):
    """A writer's reply that holds a program. Its field is `code`, as in the python tool: asked
    for a `script`, the stand-in gave a command line that runs one in 4 of 4 probes
    (docs/decisions.md#learning-search). A reply that still says `script` means its code."""

    code: str = Field(description="The program's Python 3 source")

    @model_validator(mode="before")
    @classmethod
    def _script_is_code(cls, value: Any) -> Any:
        if isinstance(value, dict) and "code" not in value and "script" in value:
            return {**{k: v for k, v in value.items() if k != "script"}, "code": value["script"]}
        return value


class Program(CodeReply):
    """A program of the writer's: the code block of its reply (nodes/writing/search.py), and
    the arguments it is run with (none until the task's values are lifted out of it)."""

    args: list[str] = Field(default_factory=list, description="Its command-line arguments")

    @field_validator("code", mode="after")
    @classmethod
    def _unwrapped(cls, value: str) -> str:
        """A script given as a call of the python tool, `python(code="...")`, is that code."""
        return tool_call_code(value) or value

    @field_validator("args", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        """Arguments are text on a command line; a model often gives numbers as numbers."""
        if isinstance(value, list):
            return [v if isinstance(v, str) else json.dumps(v) for v in value]
        return value


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


class ScriptDraft(CodeReply):
    args: list[str] = Field(default_factory=list, description="This task's values, in order")


class ScriptArgument(BaseModel):
    name: str = Field(description="A short name for the argument")
    meaning: str = Field(description="Which value of a task goes there")


class ScriptSkillSpec(BaseModel):
    name: str
    description: str
    computes: str = Field(default="", description="What the script computes from its arguments")
    arguments: list[ScriptArgument] = Field(default_factory=list)


def tool_call_code(text: str) -> str | None:
    """The code of `text` when all it is is a call of the python tool (`python(code="...")`,
    the way prompts show the agent's calls), else None."""
    try:
        tree = ast.parse(text.strip())
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None
    call = tree.body[0].value
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        return None
    given = [*call.args, *(k.value for k in call.keywords if k.arg == "code")]
    if call.func.id != "python" or len(given) != 1:
        return None
    code = given[0]
    if isinstance(code, ast.Constant) and isinstance(code.value, str) and code.value.strip():
        return code.value
    return None


def attempt_text(steps: list[ToolStep]) -> str:
    """The attempt's tool calls for the program prompt: python code as code blocks, since a
    small writer copied the one-line call notation of `trajectory_text` as its script."""
    if not steps:
        return "(no tool calls)"
    parts = []
    for i, s in enumerate(steps, 1):
        out = s["output"].strip()[:300]
        status = "failed" if s["error"] else "printed"
        code = (s.get("args") or {}).get("code")
        if s["tool"] == "python" and isinstance(code, str) and code.strip():
            parts.append(
                f"Step {i}, python ran:\n```python\n{code.strip()}\n```\nand {status}:\n{out}"
            )
        else:
            parts.append(f"Step {i}, {s['tool']}({short_args(s['args'])}) {status}:\n{out}")
    return "\n\n".join(parts)


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
