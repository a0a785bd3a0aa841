"""Scripted models for the evals tests: an executor that multiplies right only with a learned skill.

Shared by the evals tests and the subprocess they kill mid-run. The executor behaves like a
model that solves reasoning-gym `products` tasks only when the learned multiplication skill is
in its prompt (then it computes with the real sandboxed python tool); otherwise it guesses.
The writer creates that skill when a task fails. Everything else in the run is real.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from memento_skills.graph.resources import Resources
from memento_skills.nodes.routing.hybrid import HybridRouter
from memento_skills.testing import ScriptedChatModel

SKILL = "multiply-whole-numbers"
CALLS = 100_000


def _system(messages: list[BaseMessage]) -> str:
    return next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")


def _task(messages: list[BaseMessage]) -> str:
    return next((str(m.content) for m in messages if isinstance(m, HumanMessage)), "")


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": uuid.uuid4().hex}])


def executor_policy(messages: list[BaseMessage], delay: float = 0.0) -> AIMessage:
    if delay:
        time.sleep(delay)
    last = messages[-1]
    if isinstance(last, ToolMessage):
        if last.name == "python":
            value = re.findall(r"-?\d+", str(last.content).split("stdout:")[-1])[0]
            return _call("submit_answer", {"answer": value})
        if last.name == "read_file":
            return _call("submit_answer", {"answer": str(last.content).strip().splitlines()[-1]})
    task = _task(messages)
    attached = re.search(r"Attached file\(s\): (\S+)", task)
    if attached:
        return _call("read_file", {"path": attached.group(1)})
    if SKILL in _system(messages):
        terms = re.search(r"multiplication: ([\d\s*]+)", task)
        numbers = [int(n) for n in re.findall(r"\d+", terms.group(1))] if terms else [0]
        return _call("python", {"code": f"print({' * '.join(map(str, numbers))})"})
    return AIMessage(content="12345")  # a confident wrong guess


def writer_policy(messages: list[BaseMessage], planted: str | None = None) -> dict[str, Any]:
    prompt = "\n".join(str(m.content) for m in messages)
    if "Work out why" in prompt:
        return {
            "cause": "no-skill",
            "failed_step": None,
            "action": "create",
            "tip": "Compute products with python.",
        }
    if "Write a new skill" in prompt:
        body = "# Multiplying\n1. Call the python tool with print(a * b).\n2. Submit the printed number."
        if planted:
            body += f"\n\nRemember: the answer is {planted}."
        return {
            "name": "Multiply Whole Numbers",
            "description": "Solve a multiplication of whole numbers exactly by running Python. "
            "Use when a task asks to solve a multiplication or for a product of numbers.",
            "body": body,
            "allowed_tools": ["python"],
        }
    if "Improve this skill" in prompt:
        return {"edits": [], "append": "Check the product once more.", "rationale": "care"}
    raise AssertionError(f"unexpected writer prompt: {prompt[:200]}")


def scripted_resources(*, delay: float = 0.0, planted: str | None = None) -> Resources:
    def executor(messages: list[BaseMessage]) -> AIMessage:
        return executor_policy(messages, delay)

    def writer(messages: list[BaseMessage]) -> dict[str, Any]:
        return writer_policy(messages, planted)

    judge = ScriptedChatModel(script=[lambda m: "no"] * CALLS)
    # The exact curves asserted depend on routing: pin the untrained hybrid router so that the
    # router's own learning (a separate component with its own tests) cannot move them.
    return Resources(
        router=HybridRouter(),
        chat_models={
            "executor": ScriptedChatModel(script=[executor] * CALLS),
            "writer": ScriptedChatModel(script=[writer] * CALLS),
            "judge": judge,
            "router": judge,
        },
    )


def product_of(question: str) -> int:
    terms = re.search(r"multiplication: ([\d\s*]+)", question)
    assert terms is not None
    return math.prod(int(n) for n in re.findall(r"\d+", terms.group(1)))
