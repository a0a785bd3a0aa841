"""Reading context-length refusals and cutting tool outputs to fit."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from memento_skills.nodes.execution.context_window import Overflow, context_overflow, fit_to_context


def test_refusals_of_llama_cpp_and_openai_are_read() -> None:
    llama = RuntimeError(
        "Error code: 400 - This model's maximum context length is 4096 tokens. However, you "
        "requested 5316 tokens (4292 in the messages, 1024 in the completion)."
    )
    assert context_overflow(llama) == Overflow(limit=4096, messages=4292, completion=1024)
    assert Overflow(limit=4096, messages=4292, completion=1024).completion_budget == 512
    openai = RuntimeError(
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130512 tokens. Please reduce the length of the messages."
    )
    assert context_overflow(openai) == Overflow(limit=128000, messages=130512, completion=0)
    assert context_overflow(RuntimeError("Error code: 500 - internal")) is None


def test_older_outputs_are_cut_first_and_instructions_never() -> None:
    system, task = SystemMessage("rules " * 200), HumanMessage("the task")
    old = ToolMessage("a" * 6000, tool_call_id="1", id="m1")
    new = ToolMessage("b" * 3000, tool_call_id="2", id="m2")
    messages = [system, task, AIMessage("calling"), old, AIMessage("again"), new]
    total = sum(len(m.text) for m in messages)
    fitted = fit_to_context(messages, Overflow(limit=1500, messages=total // 4, completion=200))
    assert fitted is not None
    assert fitted[0] is system and fitted[1] is task
    assert len(fitted[3].text) < 1000 and fitted[3].id == "m1"  # replaced in place by id
    assert fitted[5].text == new.text  # enough was cut from the older one


def test_none_when_there_is_no_tool_output_to_cut() -> None:
    messages = [
        SystemMessage("rules " * 2000),
        HumanMessage("task"),
        ToolMessage("x", tool_call_id="1"),
    ]
    assert fit_to_context(messages, Overflow(limit=1000, messages=3000, completion=100)) is None
