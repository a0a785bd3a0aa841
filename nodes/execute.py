"""execute: a tool-calling loop with the selected skill in the prompt, as its own subgraph.

The loop is a compiled subgraph (agent ⇄ tools) so LangGraph Studio can step into it. Only the
selected skill's SKILL.md goes into the prompt; its references and scripts are reached through
tools (progressive disclosure). The run ends with a final answer — a `submit_answer` call, or a
plain-text reply treated as the answer — or with a clear failure recorded in the state when a
budget runs out or the model produces garbage. Nothing the model emits may crash the node.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired

import regex
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from memento_skills.graph.context import Context
from memento_skills.graph.context_window import context_overflow, fit_to_context, shorten
from memento_skills.graph.events import emit
from memento_skills.graph.models import completion_limit
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import ExecuteErrorKind, ToolStep, model_failure_kind, task_text
from memento_skills.nodes.execution.sandbox import SandboxLimits, Workspace, reachable_dir
from memento_skills.nodes.mcp_tools import McpAttempt, allows, operator_servers, plan
from memento_skills.nodes.tools import make_tools
from memento_skills.stores.mcp_config import is_mcp_tool_name
from memento_skills.stores.skill import SkillValidationError
from memento_skills.stores.trust import script_files, scripts_trusted

MAX_TOOL_OUTPUT_IN_STATE = 2_000
MAX_TOOL_OUTPUT_TO_MODEL = 8_000
RESAMPLE_TEMPERATURE = 0.8
REPEAT_ECHO_CHARS = 400
"""How much of an earlier output a repeated call is shown again: it is in the context already."""
ATTACHMENTS_DIR = "attachments"
"""Files in `<Context.workspace_dir>/attachments/` are copied into every attempt's workspace:
how an eval hands a task its attached files (GAIA's spreadsheets, PDFs, audio)."""

SYSTEM_PROMPT = """You are a careful agent that solves one task with tools.

{skill_section}
Tools: {tool_names}. Every tool runs inside your private workspace folder.
When you know the answer, call submit_answer with the answer only, formatted as the task asks
(a bare number without units unless asked; lists comma-separated; no explanation).
If you cannot use tools, reply with the final answer only.{tips_section}"""

SKILL_SECTION = """Use this skill ({name}, version {version}):
<skill>
{body}
</skill>
{files_line}"""

UNTRUSTED_SCRIPTS_LINE = (
    "This skill is untrusted: its scripts ({scripts}) run only if the operator approves "
    "each one, and their source is not shown.\n"
)

NO_SKILL_SECTION = "No skill in your library fits this task; solve it from first principles.\n"


Repeat = Literal["submit", "resample"]
"""What the step after a repeated call must do: submit an answer (the call had succeeded, its
output is known) or sample afresh (it had failed, and at temperature 0 it would come again)."""


class ExecuteState(TypedDict):
    """The execute subgraph's state: shared keys with the parent, plus its own conversation."""

    task: NotRequired[str]
    selected_skill: NotRequired[str | None]
    tips: NotRequired[list[str]]
    trajectory: NotRequired[list[ToolStep]]
    answer: NotRequired[str | None]
    execute_error: NotRequired[str | None]
    execute_error_kind: NotRequired[ExecuteErrorKind | None]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    usage: NotRequired[dict[str, Any]]
    # private to the loop
    exec_messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    workspace: NotRequired[str]
    steps: NotRequired[int]
    tokens: NotRequired[int]
    started: NotRequired[float]
    done: NotRequired[bool]
    after_repeat: NotRequired[Repeat | None]


class ExecuteOutput(TypedDict):
    """What the loop hands back to the parent graph (never the tips it was given)."""

    trajectory: NotRequired[list[ToolStep]]
    answer: NotRequired[str | None]
    execute_error: NotRequired[str | None]
    execute_error_kind: NotRequired[ExecuteErrorKind | None]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    usage: NotRequired[dict[str, Any]]


_SCHEMAS: dict[str, dict[str, Any]] = {}


def _tool_schemas(tools: list[BaseTool]) -> list[dict[str, Any]]:
    """OpenAI tool schemas, converted once per tool name: they are static, and converting
    (pydantic model building) costs more per step than the rest of the loop."""
    for tool in tools:
        if tool.name not in _SCHEMAS:
            _SCHEMAS[tool.name] = convert_to_openai_tool(tool)
    return [_SCHEMAS[t.name] for t in tools]


def attachments_dir(ctx: Context) -> Path | None:
    """The folder of files the task was given, if it has one (only a set workspace_dir can:
    the shared temp dir would hand one run's files to another)."""
    if not ctx.workspace_dir:
        return None
    inbox = Path(ctx.workspace_dir) / ATTACHMENTS_DIR
    return inbox if inbox.is_dir() else None


def task_attachments(ctx: Context) -> dict[str, Path]:
    """The files the task was given, by their path inside its attachments folder."""
    inbox = attachments_dir(ctx)
    if inbox is None:
        return {}
    return {p.relative_to(inbox).as_posix(): p for p in sorted(inbox.rglob("*")) if p.is_file()}


class _Execute:
    """Builds and holds the subgraph; node functions close over the shared resources."""

    def __init__(self, resources: Resources):
        self.resources = resources

    # -------------------------------------------------------------- helpers

    def _skill(self, state: ExecuteState, ctx: Context) -> Any:
        name = state.get("selected_skill")
        if not name:
            return None
        return self.resources.library(ctx).get(name)

    def _tools(self, state: ExecuteState, ctx: Context) -> list[BaseTool]:
        """Our tools and the attempt's MCP tools, as the skill's allowed-tools lets them in."""
        skill = self._skill(state, ctx)
        library = self.resources.library(ctx)
        skill_dir = library.skill_dir(skill.name) if skill else None
        allowed = list(skill.allowed_tools) if skill and skill.allowed_tools else []
        own = [t for t in allowed if not is_mcp_tool_name(t)]
        tools = make_tools(
            Workspace(Path(state["workspace"]), isolation=ctx.sandbox_level),
            skill_dir=skill_dir,
            # allowed-tools naming MCP tools only: of ours, submit_answer alone
            allowed_tools=own or (["submit_answer"] if allowed else None),
            skill_trusted=scripts_trusted(skill, skill_dir) if skill and skill_dir else True,
            approve_script=self.resources.approve_script,
            limits=SandboxLimits(
                wall_s=ctx.sandbox_wall_s,
                memory_mb=ctx.sandbox_memory_mb,
                disk_mb=ctx.sandbox_disk_mb,
            ),
            web_search=ctx.web_search,
            fetch_allow_hosts=tuple(ctx.fetch_allow_hosts.split(",")),
        )
        attempt = self._mcp(state, ctx)
        mcp = [
            t
            for t in attempt.tools
            if allows(allowed, str((t.metadata or {}).get("mcp_server")), t.name)
        ]
        if not mcp:
            return tools
        return [*(t for t in tools if t.name != "submit_answer"), *mcp, tools[-1]]

    def _mcp(self, state: ExecuteState, ctx: Context) -> McpAttempt:
        """This attempt's MCP sessions: opened once at its start (again only in a new process)."""
        registry = self.resources.mcp_attempts()
        attempt: McpAttempt | None = registry.get(state["workspace"])
        if attempt is None:
            attempt = self._open_mcp(state, ctx)
            registry.put(state["workspace"], attempt)
        return attempt

    def _open_mcp(self, state: ExecuteState, ctx: Context) -> McpAttempt:
        attempt = McpAttempt(ctx.mcp_timeout_s)
        operator, config_error = operator_servers(ctx.mcp_config)
        if config_error:
            attempt.failures["operator config"] = config_error
        skill = self._skill(state, ctx)
        library = self.resources.library(ctx)
        declared = []
        if skill is not None:
            try:
                declared = library.mcp_servers(skill)
            except SkillValidationError as e:
                attempt.failures["skill mcp.json"] = " ".join(str(e).split())
        if not operator and not declared:
            return attempt
        workspace = Workspace(Path(state["workspace"]), isolation=ctx.sandbox_level)
        planned, skipped = plan(
            operator=operator,
            skill=declared,
            skill_dir=library.skill_dir(skill.name) if skill is not None else None,
            skill_trusted=scripts_trusted(skill, library.skill_dir(skill.name))
            if skill is not None
            else True,
            allowed_tools=list(skill.allowed_tools) if skill is not None else [],
            workspace=workspace,
            limits=SandboxLimits(
                wall_s=ctx.max_wall_s,
                cpu_s=max(1, int(ctx.max_wall_s)),
                memory_mb=ctx.sandbox_memory_mb,
                disk_mb=ctx.sandbox_disk_mb,
            ),
            approve=self.resources.approve_script,
            allow_hosts=tuple(ctx.fetch_allow_hosts.split(",")),
        )
        attempt.failures.update(skipped)
        attempt.open(planned)
        return attempt

    def _system_prompt(self, state: ExecuteState, ctx: Context, tools: list[BaseTool]) -> str:
        skill = self._skill(state, ctx)
        if skill is not None:
            files = self.resources.library(ctx).list_files(skill.name)
            files_line = (
                f"Files of this skill (read with read_skill_file, run scripts with run_skill_script): "
                f"{', '.join(files)}\n"
                if files
                else ""
            )
            folder = self.resources.library(ctx).skill_dir(skill.name)
            scripts = script_files(folder)
            if scripts and not scripts_trusted(skill, folder):
                files_line += UNTRUSTED_SCRIPTS_LINE.format(scripts=", ".join(scripts))
            section = SKILL_SECTION.format(
                name=skill.name, version=skill.version, body=skill.body, files_line=files_line
            )
        else:
            section = NO_SKILL_SECTION
        tips = state.get("tips") or []
        tips_section = (
            "\n\nLessons from earlier attempts at this task:\n" + "\n".join(f"- {t}" for t in tips)
            if tips
            else ""
        )
        return SYSTEM_PROMPT.format(
            skill_section=section,
            tool_names=", ".join(t.name for t in tools),
            tips_section=tips_section,
        )

    # -------------------------------------------------------------- nodes

    def start(self, state: ExecuteState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        base = Path(ctx.workspace_dir) if ctx.workspace_dir else Path(tempfile.gettempdir())
        workspace = reachable_dir(base / "memento-workspaces") / uuid.uuid4().hex[:12]
        workspace.mkdir(exist_ok=True)
        inbox = attachments_dir(ctx)
        if inbox is not None:
            shutil.copytree(inbox, workspace, dirs_exist_ok=True)
        opened = ExecuteState(**{**state, "workspace": str(workspace)})
        self.resources.mcp_attempts().put(str(workspace), self._open_mcp(opened, ctx))
        tools = self._tools(opened, ctx)
        failures = self._mcp(opened, ctx).failures
        system = self._system_prompt(state, ctx, tools)
        if failures:
            system += "\n\nMCP servers unavailable in this attempt: " + "; ".join(
                f"{name} ({shorten(reason, 200)})" for name, reason in failures.items()
            )
        task = task_text(state)
        emit(
            "execute",
            {"event": "start", "skill": state.get("selected_skill"), "workspace": str(workspace)},
        )
        for name, reason in failures.items():
            emit("execute", {"event": "mcp_unavailable", "server": name, "reason": reason})
        return {
            "workspace": str(workspace),
            "exec_messages": [SystemMessage(content=system), HumanMessage(content=task)],
            "trajectory": [
                ToolStep(
                    tool="mcp",
                    args={"server": name},
                    output=shorten(
                        f"error: MCP server {name!r} is unavailable in this attempt: {reason}",
                        MAX_TOOL_OUTPUT_IN_STATE,
                    ),
                    error=True,
                )
                for name, reason in failures.items()
            ],
            "answer": None,
            "execute_error": None,
            "execute_error_kind": None,
            "steps": 0,
            "tokens": 0,
            "started": time.time(),
            "done": False,
            "after_repeat": None,
        }

    def agent(self, state: ExecuteState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        budget_error = self._budget_error(state, ctx)
        if budget_error:
            return {"execute_error": budget_error, "execute_error_kind": "budget", "done": True}
        tools = self._tools(state, ctx)
        forced = self._forced_tool(state, ctx, tools)
        options: dict[str, Any] = {"tool_choice": forced} if forced else {}
        if state.get("after_repeat") == "resample":
            # it repeated a call that failed: at temperature 0 a small model repeats it
            # verbatim until the budget ends, so the next step samples
            options["temperature"] = RESAMPLE_TEMPERATURE
        chat_model = self.resources.model("executor", ctx)
        model = chat_model.bind_tools(_tool_schemas(tools), **options)
        if forced:
            emit(
                "execute",
                {"event": "forced", "tool": forced, "step": int(state.get("steps") or 0) + 1},
            )
        try:
            response, fitted = _invoke_fitting(
                model, chat_model, list(state.get("exec_messages") or [])
            )
        except (
            Exception
        ) as e:  # endpoint down, malformed tool-call JSON rejected by the client, ...
            failure = f"{type(e).__name__}: {e}"
            return {
                "execute_error": f"the executor model failed: {failure}",
                "execute_error_kind": model_failure_kind(failure),
                "done": True,
            }
        if not isinstance(response, AIMessage):
            response = AIMessage(content=str(getattr(response, "content", response)))
        used = response.usage_metadata["total_tokens"] if response.usage_metadata else 0
        tokens = int(state.get("tokens") or 0) + int(used or 0)
        update: dict[str, Any] = {
            "exec_messages": [*fitted, response],
            "steps": int(state.get("steps") or 0) + 1,
            "tokens": tokens,
        }
        calls = _valid_tool_calls(response)
        if calls:
            emit("execute", {"event": "tool_calls", "calls": [c["name"] for c in calls]})
            return update
        answer = _text_answer(response)
        if response.invalid_tool_calls:
            bad = response.invalid_tool_calls[0]
            update["exec_messages"] = [
                *fitted,
                response,
                HumanMessage(
                    content="Your tool call could not be parsed "
                    f"({shorten(str(bad.get('error') or 'invalid JSON'), 200)}). "
                    "Call a tool with valid JSON arguments, or reply with the final answer only."
                ),
            ]
            return update
        if answer:
            update.update(answer=answer, done=True)
        else:
            update.update(
                execute_error="the model replied with an empty answer",
                execute_error_kind="empty_answer",
                done=True,
            )
        return update

    def tools(self, state: ExecuteState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        last = (state.get("exec_messages") or [])[-1]
        assert isinstance(last, AIMessage)
        by_name = {t.name: t for t in self._tools(state, ctx)}
        results: list[BaseMessage] = []
        steps: list[ToolStep] = list(state.get("trajectory") or [])
        answer: str | None = None
        after_repeat: Repeat | None = None
        for call in _valid_tool_calls(last):
            name, args, call_id = (
                call["name"],
                call.get("args") or {},
                call.get("id") or uuid.uuid4().hex,
            )
            tool = by_name.get(name)
            earlier = earlier_step(steps, name, args)
            if earlier is not None and earlier["error"]:
                output, error = (
                    "You already made this exact call and it failed:\n"
                    f"{shorten(earlier['output'], REPEAT_ECHO_CHARS)}\n"
                    "Running it again gives the same error: change the code or the arguments.",
                    True,
                )
                after_repeat = "resample"
            elif earlier is not None and "submit_answer" in by_name:
                # the earlier output alone, as a rerun would give it: the next step is forced to
                # submit, and a 0.5B model copies the message it was just given into its answer
                # (told "You already made this exact call; its output was: ...", it submitted
                # that sentence)
                output, error = earlier["output"], False
                after_repeat = "submit"
            elif tool is None:
                output, error = (
                    f"error: there is no tool named {name!r}; available: {', '.join(sorted(by_name))}",
                    True,
                )
            else:
                try:
                    output = str(tool.invoke(args))
                    error = _failed(output)
                except Exception as e:  # a tool bug or bad arguments must not end the run
                    output, error = f"error: {type(e).__name__}: {e}", True
            if name == "submit_answer" and not error:
                answer = str(args.get("answer", "")).strip()
            steps.append(
                ToolStep(
                    tool=name,
                    args=_jsonable(args),
                    output=shorten(output, MAX_TOOL_OUTPUT_IN_STATE),
                    error=error,
                )
            )
            emit(
                "execute",
                {"event": "tool_result", "tool": name, "error": error, "output": output[:200]},
            )
            results.append(
                ToolMessage(
                    content=shorten(output, MAX_TOOL_OUTPUT_TO_MODEL),
                    tool_call_id=call_id,
                    name=name,
                )
            )
        update: dict[str, Any] = {
            "exec_messages": results,
            "trajectory": steps,
            "after_repeat": after_repeat,
        }
        if answer is not None:
            if answer:
                update.update(answer=answer, done=True)
            else:
                update["exec_messages"] = [
                    *results,
                    HumanMessage(content="submit_answer needs a non-empty answer. Try again."),
                ]
        return update

    def _forced_tool(self, state: ExecuteState, ctx: Context, tools: list[BaseTool]) -> str | None:
        """The skill's tool policy: step k must call first_tools[k] (when that tool is offered).

        A model that repeats a call it already has the output of is stuck (a 0.5B model reruns
        the same python snippet until the budget ends): its next step must submit an answer.

        Measured on a 0.5B model: told in prose to use python it never did; forced, it did, and
        its accuracy on arithmetic rose from 0.04 to about 0.6. Policy must bind, not suggest.
        """
        if state.get("after_repeat") == "submit" and any(t.name == "submit_answer" for t in tools):
            return "submit_answer"  # it repeated a call it had already seen the output of
        skill = self._skill(state, ctx)
        step = int(state.get("steps") or 0)
        if skill is None or step >= len(skill.first_tools):
            return None
        name: str = skill.first_tools[step]
        return name if any(t.name == name for t in tools) else None

    def finish(self, state: ExecuteState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        answer = state.get("answer")
        error = state.get("execute_error")
        skill = self._skill(state, ctx)
        if answer and skill is not None and skill.answer_pattern:
            answer = apply_answer_contract(answer, skill.answer_pattern)
        if state.get("workspace"):
            self.resources.mcp_attempts().close(str(state["workspace"]))
        emit("execute", {"event": "finish", "answer": answer, "error": error})
        text = answer if answer else f"(no answer: {error or 'unknown failure'})"
        usage = {
            "executor_tokens": int(state.get("tokens") or 0),
            "executor_calls": int(state.get("steps") or 0),
        }
        return {
            "messages": [AIMessage(content=text, name="memento")],
            "usage": usage,
            "answer": answer,
        }

    # -------------------------------------------------------------- routing

    @staticmethod
    def _budget_error(state: ExecuteState, ctx: Context) -> str | None:
        if int(state.get("steps") or 0) >= ctx.max_steps:
            return f"step budget exhausted ({ctx.max_steps} model calls) without an answer"
        if int(state.get("tokens") or 0) >= ctx.max_tokens:
            return f"token budget exhausted ({state.get('tokens')} of {ctx.max_tokens}) without an answer"
        if time.time() - float(state.get("started") or time.time()) >= ctx.max_wall_s:
            return f"wall-time budget exhausted ({ctx.max_wall_s:.0f}s) without an answer"
        return None

    @staticmethod
    def after_agent(state: ExecuteState) -> str:
        if state.get("done"):
            return "finish"
        last = (state.get("exec_messages") or [])[-1]
        return "tools" if isinstance(last, AIMessage) and _valid_tool_calls(last) else "agent"

    @staticmethod
    def after_tools(state: ExecuteState) -> str:
        return "finish" if state.get("done") else "agent"


def _invoke_fitting(
    model: Any, chat_model: Any, messages: list[BaseMessage]
) -> tuple[BaseMessage, list[BaseMessage]]:
    """The model's reply, and the messages shortened to get it: when the endpoint refuses the
    conversation as longer than its context window, tool outputs are cut to fit (see
    graph/context_window.py) and the request is made once more with a smaller completion."""
    try:
        return model.invoke(messages), []
    except Exception as e:
        overflow = context_overflow(e)
        shorter = fit_to_context(messages, overflow) if overflow else None
        if overflow is None or shorter is None:
            raise
    emit("execute", {"event": "condensed", "limit": overflow.limit})
    if overflow.completion_budget:
        model = model.bind(**completion_limit(chat_model, overflow.completion_budget))
    fitted = [m for m, old in zip(shorter, messages, strict=True) if m is not old]
    return model.invoke(shorter), fitted


ANSWER_PATTERN_TIMEOUT_S = 0.25
"""The time a skill's answer pattern may take: a pattern from an untrusted pack can backtrack
catastrophically (`(\\d+)+x`), so it runs with a deadline and is ignored when it passes it."""


def apply_answer_contract(answer: str, pattern: str) -> str:
    """The skill's answer contract: the last match of its pattern (first group if it has one)."""
    try:
        matches = list(regex.finditer(pattern, answer[:4000], timeout=ANSWER_PATTERN_TIMEOUT_S))
    except (TimeoutError, regex.error):
        return answer  # the answer as given, rather than a hang on a hostile pattern
    if not matches:
        return answer
    last = matches[-1]
    value = last.group(1) if last.re.groups and last.group(1) is not None else last.group(0)
    return value.strip() or answer


def _valid_tool_calls(message: AIMessage) -> list[dict[str, Any]]:
    return [dict(c) for c in message.tool_calls if c.get("name")]


_FINAL_RE = re.compile(r"(?:final answer|answer)\s*[:=]\s*(.+)", re.IGNORECASE)


def _text_answer(message: AIMessage) -> str:
    """A plain-text reply as an answer: an explicit 'Answer: x' line wins, else the whole text."""
    content = message.content
    if isinstance(content, list):
        content = " ".join(c.get("text", "") if isinstance(c, dict) else str(c) for c in content)
    text = str(content or "").strip()
    matches = _FINAL_RE.findall(text)
    if matches:
        return str(matches[-1]).strip().strip("*").strip()
    return text


def earlier_step(steps: Sequence[ToolStep], name: str, args: Any) -> ToolStep | None:
    """The first earlier call with the same tool and arguments, if any: rerunning it would
    give the same output (the loop's tools are deterministic for a given workspace)."""
    if name == "submit_answer":
        return None
    key = _jsonable(args)
    return next((s for s in steps if s["tool"] == name and s["args"] == key), None)


_FAILED_RUN_RE = re.compile(r"exit code: -?[1-9]")


def _failed(output: str) -> bool:
    """A tool's own error, or a program it ran that exited non-zero (a traceback)."""
    return output.startswith("error") or bool(_FAILED_RUN_RE.match(output))


def _jsonable(args: Any) -> dict[str, Any]:
    try:
        json.dumps(args)
        return dict(args) if isinstance(args, dict) else {"value": args}
    except (TypeError, ValueError):
        return {"value": repr(args)}


def build_execute_graph(
    resources: Resources,
) -> CompiledStateGraph[ExecuteState, Context, ExecuteState, ExecuteOutput]:
    """The execute subgraph: start → agent ⇄ tools → finish."""
    ex = _Execute(resources)
    builder = StateGraph(ExecuteState, output_schema=ExecuteOutput, context_schema=Context)
    builder.add_node("start", ex.start)
    builder.add_node("agent", ex.agent)
    builder.add_node("tools", ex.tools)
    builder.add_node("finish", ex.finish)
    builder.add_edge(START, "start")
    builder.add_edge("start", "agent")
    builder.add_conditional_edges("agent", ex.after_agent, ["tools", "agent", "finish"])
    builder.add_conditional_edges("tools", ex.after_tools, ["agent", "finish"])
    builder.add_edge("finish", END)
    return builder.compile(name="execute")
