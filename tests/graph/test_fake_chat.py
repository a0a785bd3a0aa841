"""The scripted fake chat model: replays its script through LangChain's real machinery."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from memento_skills.testing import ScriptedChatModel, ScriptExhaustedError


class Answer(BaseModel):
    value: int


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_replays_strings_messages_and_callables_in_order() -> None:
    def echo(messages: list[BaseMessage]) -> str:
        return f"you said {messages[-1].text}"

    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "c1"}
    model = ScriptedChatModel(script=["first", AIMessage(content="", tool_calls=[call]), echo])
    assert model.invoke("a").content == "first"
    reply = model.invoke("b")
    assert isinstance(reply, AIMessage) and reply.tool_calls[0]["args"] == {"a": 1, "b": 2}
    assert model.invoke("c").content == "you said c"
    assert model.remaining == 0


def test_records_every_prompt_for_snapshots() -> None:
    model = ScriptedChatModel(script=["ok"])
    model.invoke([SystemMessage("rules"), HumanMessage("task")])
    assert model.calls[0].text == "system: rules\nhuman: task"


def test_running_out_of_script_is_a_clear_error() -> None:
    model = ScriptedChatModel(script=["only one"])
    model.invoke("a")
    with pytest.raises(ScriptExhaustedError, match=r"call 2 but the script has only 1 item"):
        model.invoke("the second question")
    assert "the second question" in str(model.calls[-1].text)


def test_bind_tools_records_tools_and_passes_them_with_the_call() -> None:
    model = ScriptedChatModel(script=[{"a": 2, "b": 3}])
    reply = model.bind_tools([add], tool_choice="add").invoke("add 2 and 3")
    assert [t["function"]["name"] for t in model.bound_tools] == ["add"]
    assert model.calls[0].kwargs["tool_choice"] == "add"
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls[0]["name"] == "add" and reply.tool_calls[0]["args"] == {"a": 2, "b": 3}


def test_objects_without_tools_become_json_text() -> None:
    model = ScriptedChatModel(script=[Answer(value=4)])
    assert model.invoke("2+2").content == '{"value": 4}'


def test_with_structured_output_parses_through_the_tool_call_path() -> None:
    model = ScriptedChatModel(script=[Answer(value=4), {"value": "four"}])
    assert model.with_structured_output(Answer).invoke("2+2") == Answer(value=4)
    raw = model.with_structured_output(Answer, include_raw=True).invoke("2+2")
    assert isinstance(raw, dict)
    assert raw["parsed"] is None and raw["parsing_error"] is not None
    assert raw["raw"].tool_calls[0]["name"] == "Answer"


def test_json_mode_parses_text() -> None:
    model = ScriptedChatModel(script=['{"value": 5}'])
    assert model.with_structured_output(Answer, method="json_mode").invoke("2+3") == Answer(value=5)


def test_reports_usage_metadata() -> None:
    reply = ScriptedChatModel(script=["three word reply"]).invoke("two words")
    assert isinstance(reply, AIMessage)
    assert reply.usage_metadata == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    assert reply.response_metadata["model_name"] == "scripted"


def test_unsupported_script_item_is_named() -> None:
    with pytest.raises(TypeError, match="unsupported script item 42"):
        ScriptedChatModel(script=[42]).invoke("x")
