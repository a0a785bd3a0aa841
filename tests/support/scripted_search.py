"""Scripted models for the learning-time search tests: an executor that never solves the task
and a writer whose programs the test gives, in order.

The executor guesses when free to; when the search forces python (or shell) on it, it computes
the wrong thing. The writer explains the failure, proposes a prose patch or skill, and answers
the program prompts in plain text with the programs it was given (the numbers of the task it is
shown written in for VALUES). Everything else in a run is real.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from memento_skills.testing import ScriptedChatModel

TASK = "Compute the sum of the squares of 3, 4 and 12."
GOLD = "169"
GUESS = "150"
VALUES = "{values}"
"""Where a program given to the writer has the numbers of the task it is shown written in."""
SUM_OF_SQUARES = f"values = [{VALUES}]\nprint(sum(v * v for v in values))\n"
PLAIN_SUM = f"values = [{VALUES}]\nprint(sum(values))\n"
CALLS = 400
PROGRAM_PROMPTS = ("Write a Python program", "Your program for this task", "not a Python program")
"""How the program prompt, its repair and the not-python repair begin."""


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


class Executor:
    """Guesses when free to; forced to a computing tool, computes the wrong thing (or, with
    `right_when_forced`, forced to python it computes the right thing for this task's values,
    as `python` when given; forced to shell it runs `shell`)."""

    def __init__(
        self, *, right_when_forced: bool = False, shell: str = "echo 19", python: str = ""
    ) -> None:
        self.right_when_forced = right_when_forced
        self.shell = shell
        self.python = python
        self.model = ScriptedChatModel(script=[self.reply] * CALLS)

    def reply(self, messages: list[BaseMessage]) -> AIMessage:
        options = self.model.calls[-1].kwargs
        last = messages[-1]
        if isinstance(last, ToolMessage):
            printed = re.findall(r"-?\d+", str(last.content).split("stdout:")[-1])
            return _call("submit_answer", {"answer": printed[-1] if printed else "0"})
        if options.get("tool_choice") == "python":
            task = next(str(m.content) for m in messages if isinstance(m, HumanMessage))
            numbers = re.findall(r"\d+", task)
            if self.right_when_forced:
                squares = f"print({' + '.join(f'{n}**2' for n in numbers)})"
                return _call("python", {"code": self.python or squares})
            return _call("python", {"code": f"print({' + '.join(numbers)})"})  # not the squares
        if options.get("tool_choice") == "run_skill_script":  # follows a skill that carries one
            system = next(str(m.content) for m in messages if isinstance(m, SystemMessage))
            task = next(str(m.content) for m in messages if isinstance(m, HumanMessage))
            script = re.findall(r"scripts/[\w.-]+\.py", system)
            args = {"script": script[0] if script else "", "args": re.findall(r"\d+", task)}
            return _call("run_skill_script", args)
        if options.get("tool_choice") == "shell":
            return _call("shell", {"command": self.shell})
        return AIMessage(content=GUESS)

    def temperatures(self) -> list[Any]:
        return [c.kwargs.get("temperature") for c in self.model.calls]


class Writer:
    """Explains the failure, proposes a prose patch or skill, and gives `programs` in order."""

    def __init__(self, programs: Sequence[dict[str, Any]]) -> None:
        self.programs: Iterator[dict[str, Any]] = iter(programs)
        self.model = ScriptedChatModel(script=[self.reply] * CALLS)

    def reply(self, messages: list[BaseMessage]) -> dict[str, Any] | str:
        prompt = "\n".join(str(m.content) for m in messages)
        if "Work out why" in prompt:
            return {"cause": "skill", "failed_step": None, "action": "refine", "tip": "Compute it."}
        if "Improve this skill" in prompt:
            return {"edits": [], "append": "Check the result once more.", "rationale": "care"}
        if "Write a new skill" in prompt:
            return {
                "name": "sum-of-squares",
                "description": "Add up the squares of given whole numbers.",
                "body": "# Sum of squares\n1. Square each number and add them up.",
                "allowed_tools": ["python"],
            }
        if "A tested script solves tasks" in prompt:  # distil describing the script's skill
            return {
                "name": "sum-of-squares",
                "description": "Add up the squares of whole numbers. Use when a task asks for "
                "the sum of the squares of some numbers.",
                "computes": "The sum of the squares of its arguments.",
                "arguments": [{"name": "numbers", "meaning": "the whole numbers to square"}],
            }
        if any(marker in prompt for marker in PROGRAM_PROMPTS):
            task = prompt.split("Task:\n", 1)[1].split("\n", 1)[0]
            return reply(next(self.programs)["code"], task)
        raise AssertionError(f"unexpected writer prompt: {prompt[:200]}")

    def program_prompts(self) -> list[str]:
        return [
            c.text for c in self.model.calls if any(marker in c.text for marker in PROGRAM_PROMPTS)
        ]


def program(script: str) -> dict[str, Any]:
    """A program the writer gives, the numbers of the task it is shown in place of VALUES."""
    return {"code": script}


def filled(script: str, task: str) -> str:
    """`script` with the numbers of `task` in place of VALUES."""
    return script.replace(VALUES, ", ".join(re.findall(r"\d+", task)))


def reply(script: str, task: str) -> str:
    """The writer's plain-text reply holding `script` (filled for `task`) in a code block, or
    `script` as it is when it brings its own fences."""
    code = filled(script, task)
    return code if "```" in code else f"Here is the program:\n```python\n{code.rstrip()}\n```\n"
