"""execute: a tool-calling loop with the selected skill in the prompt, as its own subgraph.

The loop is a compiled subgraph (agent ⇄ tools) so LangGraph Studio can step into it. Only the
selected skill's SKILL.md goes into the prompt; its references and scripts are reached through
tools (progressive disclosure). The run ends with a final answer — a `submit_answer` call, or a
plain-text reply treated as the answer — or with a clear failure recorded in the state when a
budget runs out or the model produces garbage. Nothing the model emits may crash the node.
The loop's policies (budgets, forced first tools, the repeat guard, context refit, the answer
contract) are hooks it calls in order, each in nodes/execution/policies.py.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Annotated, Any, NotRequired

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
from memento_skills.graph.events import emit
from memento_skills.graph.state import (
    Attachment,
    ExecuteErrorKind,
    ExecuteOverride,
    ToolStep,
    model_failure_kind,
    task_text,
)
from memento_skills.nodes.execution.attempts import OpenAttempt, OpenAttempts
from memento_skills.nodes.execution.context_window import shorten
from memento_skills.nodes.execution.mcp_tools import McpAttempt, allows, operator_servers, plan
from memento_skills.nodes.execution.policies import (
    AnswerContract,
    Budget,
    ContextRefit,
    ForcedFirstTools,
    ModelCall,
    Repeat,
    RepeatGuard,
    jsonable_args,
)
from memento_skills.nodes.execution.prompt import system_prompt
from memento_skills.nodes.execution.sandbox import SandboxLimits, Workspace, reachable_dir
from memento_skills.nodes.execution.seams import ExecuteResources
from memento_skills.nodes.execution.tools import make_tools
from memento_skills.stores.mcp_config import is_mcp_tool_name
from memento_skills.stores.paths import safe_relative
from memento_skills.stores.skill import Skill, SkillValidationError
from memento_skills.stores.trust import script_files, scripts_trusted

MAX_TOOL_OUTPUT_IN_STATE = 2_000
MAX_TOOL_OUTPUT_TO_MODEL = 8_000


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
    attachments: NotRequired[list[Attachment]]
    execute_override: NotRequired[ExecuteOverride | None]  # set by the search's replays only
    # private to the loop
    exec_messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    workspace: NotRequired[str]
    done: NotRequired[bool]
    # the policies' own state (nodes/execution/policies.py)
    steps: NotRequired[int]  # Budget, ForcedFirstTools
    tokens: NotRequired[int]  # Budget
    call_tokens: NotRequired[int]  # Budget
    started: NotRequired[float]  # Budget
    after_repeat: NotRequired[Repeat | None]  # RepeatGuard


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


class _Execute:
    """Builds and holds the subgraph; node functions close over the shared resources, the
    policies and this process's open attempts."""

    def __init__(self, resources: ExecuteResources):
        self.resources = resources
        self.attempts = OpenAttempts()
        self.budget = Budget()
        self.forced_first_tools = ForcedFirstTools()
        self.repeat_guard = RepeatGuard()
        self.context_refit = ContextRefit()
        self.answer_contract = AnswerContract()

    # -------------------------------------------------------------- the attempt's objects

    def _read_skill(self, state: ExecuteState, ctx: Context) -> Skill | None:
        name = state.get("selected_skill")
        if not name:
            return None
        return self.resources.library(ctx).get(name)

    def _attempt(self, state: ExecuteState, ctx: Context) -> OpenAttempt:
        """This attempt's skill, tools and MCP sessions: made at its start, made again only by
        a process that resumes it."""
        workspace = state["workspace"]
        attempt = self.attempts.get(workspace)
        if attempt is None:
            attempt = OpenAttempt(skill=self._read_skill(state, ctx))
            self.attempts.put(workspace, attempt)
        return attempt

    def _tools(self, state: ExecuteState, ctx: Context) -> list[BaseTool]:
        """The attempt's tools, built once: ours and its MCP tools, as the skill's allowed-tools
        lets them in."""
        attempt = self._attempt(state, ctx)
        if attempt.tools is None:
            if attempt.mcp is None:
                attempt.mcp = self._open_mcp(attempt.skill, state["workspace"], ctx)
            attempt.tools = self._build_tools(attempt.skill, attempt.mcp, state["workspace"], ctx)
        return attempt.tools

    def _build_tools(
        self, skill: Skill | None, mcp: McpAttempt, workspace: str, ctx: Context
    ) -> list[BaseTool]:
        library = self.resources.library(ctx)
        skill_dir = library.skill_dir(skill.name) if skill else None
        allowed = list(skill.allowed_tools) if skill and skill.allowed_tools else []
        own = [t for t in allowed if not is_mcp_tool_name(t)]
        tools = make_tools(
            Workspace(Path(workspace), isolation=ctx.sandbox_level),
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
        offered = [
            t
            for t in mcp.tools
            if allows(allowed, str((t.metadata or {}).get("mcp_server")), t.name)
        ]
        if not offered:
            return tools
        return [*(t for t in tools if t.name != "submit_answer"), *offered, tools[-1]]

    def _open_mcp(self, skill: Skill | None, workspace: str, ctx: Context) -> McpAttempt:
        """The attempt's MCP sessions: the operator's servers and the skill's, opened at once."""
        attempt = McpAttempt(ctx.mcp_timeout_s)
        operator, config_error = operator_servers(ctx.mcp_config)
        if config_error:
            attempt.failures["operator config"] = config_error
        library = self.resources.library(ctx)
        declared = []
        if skill is not None:
            try:
                declared = library.mcp_servers(skill)
            except SkillValidationError as e:
                attempt.failures["skill mcp.json"] = " ".join(str(e).split())
        if not operator and not declared:
            return attempt
        planned, skipped = plan(
            operator=operator,
            skill=declared,
            skill_dir=library.skill_dir(skill.name) if skill is not None else None,
            skill_trusted=scripts_trusted(skill, library.skill_dir(skill.name))
            if skill is not None
            else True,
            allowed_tools=list(skill.allowed_tools) if skill is not None else [],
            workspace=Workspace(Path(workspace), isolation=ctx.sandbox_level),
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

    def _system_prompt(
        self, state: ExecuteState, ctx: Context, skill: Skill | None, tools: list[BaseTool]
    ) -> str:
        files: list[str] = []
        untrusted: list[str] = []
        if skill is not None:
            library = self.resources.library(ctx)
            files = library.list_files(skill.name)
            folder = library.skill_dir(skill.name)
            scripts = script_files(folder)
            if scripts and not scripts_trusted(skill, folder):
                untrusted = scripts
        return system_prompt(
            skill,
            files=files,
            untrusted_scripts=untrusted,
            tips=list(state.get("tips") or []),
            tool_names=[t.name for t in tools],
            task=task_text(state),
        )

    # -------------------------------------------------------------- nodes

    def start(self, state: ExecuteState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        base = Path(ctx.workspace_dir) if ctx.workspace_dir else Path(tempfile.gettempdir())
        workspace = reachable_dir(base / "memento-workspaces") / uuid.uuid4().hex[:12]
        workspace.mkdir(exist_ok=True)
        copy_attachments(state.get("attachments") or [], workspace)
        skill = self._read_skill(state, ctx)  # the one read of this attempt
        attempt = OpenAttempt(skill=skill, mcp=self._open_mcp(skill, str(workspace), ctx))
        self.attempts.put(str(workspace), attempt)
        tools = self._tools(ExecuteState(**{**state, "workspace": str(workspace)}), ctx)
        failures = attempt.mcp.failures if attempt.mcp is not None else {}
        system = self._system_prompt(state, ctx, skill, tools)
        if failures:
            system += "\n\nMCP servers unavailable in this attempt: " + "; ".join(
                f"{name} ({shorten(reason, 200)})" for name, reason in failures.items()
            )
        emit(
            "execute",
            {"event": "start", "skill": state.get("selected_skill"), "workspace": str(workspace)},
        )
        for name, reason in failures.items():
            emit("execute", {"event": "mcp_unavailable", "server": name, "reason": reason})
        return {
            "workspace": str(workspace),
            "exec_messages": [
                SystemMessage(content=system),
                HumanMessage(content=task_text(state)),
            ],
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
            "done": False,
            **self.budget.on_start(),
            **self.repeat_guard.on_start(),
        }

    def agent(self, state: ExecuteState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        budget_error = self.budget.before_model(state, ctx)
        if budget_error:
            return {"execute_error": budget_error, "execute_error_kind": "budget", "done": True}
        tools = self._tools(state, ctx)
        offered = {t.name for t in tools}
        call = ModelCall()
        self.forced_first_tools.before_model(state, call, self._attempt(state, ctx).skill, offered)
        self.repeat_guard.before_model(state, call, offered)
        self.budget.last_call(state, ctx, call, offered)
        chat_model = self.resources.model("executor", ctx)
        model = chat_model.bind_tools(_tool_schemas(tools), **call.options())
        if call.tool_choice:
            emit(
                "execute",
                {
                    "event": "forced",
                    "tool": call.tool_choice,
                    "step": int(state.get("steps") or 0) + 1,
                },
            )
        try:
            response, fitted = self.context_refit.wrap_model_call(
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
        update: dict[str, Any] = {
            "exec_messages": [*fitted, response],
            **self.budget.after_model(state, response),
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
            output, error, repeat = self.repeat_guard.wrap_tool_call(
                steps, name, args, by_name, partial(_run_tool, by_name, name, args)
            )
            after_repeat = repeat or after_repeat
            if name == "submit_answer" and not error:
                answer = str(args.get("answer", "")).strip()
            steps.append(
                ToolStep(
                    tool=name,
                    args=jsonable_args(args),
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

    def finish(self, state: ExecuteState, runtime: Runtime[Context]) -> dict[str, Any]:
        ctx = runtime.context or Context()
        error = state.get("execute_error")
        answer = state.get("answer")
        if state.get("workspace"):
            if answer:
                answer = self.answer_contract.on_finish(answer, self._attempt(state, ctx).skill)
            self.attempts.close(str(state["workspace"]))
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
    def after_agent(state: ExecuteState) -> str:
        if state.get("done"):
            return "finish"
        last = (state.get("exec_messages") or [])[-1]
        return "tools" if isinstance(last, AIMessage) and _valid_tool_calls(last) else "agent"

    @staticmethod
    def after_tools(state: ExecuteState) -> str:
        return "finish" if state.get("done") else "agent"


def copy_attachments(attachments: list[Attachment], workspace: Path) -> None:
    """The task's files into the attempt's workspace, each at its name there, readable by all:
    a case's stored copy is 0600 (the judge's), and the sandbox's uid must read the workspace's."""
    for attachment in attachments:
        target = workspace / safe_relative(attachment["name"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(attachment["path"], target)
        target.chmod(target.stat().st_mode | 0o444)


def _run_tool(by_name: Mapping[str, BaseTool], name: str, args: Any) -> tuple[str, bool]:
    """A tool's output and whether it failed; nothing a tool or its arguments do ends the run."""
    tool = by_name.get(name)
    if tool is None:
        return (
            f"error: there is no tool named {name!r}; available: {', '.join(sorted(by_name))}",
            True,
        )
    try:
        output = str(tool.invoke(args))
    except Exception as e:  # a tool bug or bad arguments must not end the run
        return f"error: {type(e).__name__}: {e}", True
    return output, _failed(output)


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


_FAILED_RUN_RE = re.compile(r"exit code: -?[1-9]")


def _failed(output: str) -> bool:
    """A tool's own error, or a program it ran that exited non-zero (a traceback)."""
    return output.startswith("error") or bool(_FAILED_RUN_RE.match(output))


def build_execute_graph(
    resources: ExecuteResources,
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
