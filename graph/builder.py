"""The learning graph: route_skill → execute → judge → reflect_write, retrying a failed task.

    START → begin → route_skill → execute → judge → reflect_write ─┬─ retry → route_skill
                                                                   └─ done  → end_task → END

`begin` and `end_task` only reset per-task fields, so one thread can carry many tasks.

`build_graph()` is for embedding (bring your own checkpointer, store, models, library);
`graph` in `memento_skills.graph.graph` is the checkpointer-free instance that langgraph.json
serves, the LangGraph server supplying persistence.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig, ensure_config
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from langgraph.types import Checkpointer, Command, Overwrite

from memento_skills.graph.context import Context
from memento_skills.graph.events import emit
from memento_skills.graph.resources import Resources
from memento_skills.graph.state import (
    Attachment,
    InputState,
    OutputState,
    State,
    Verdict,
    attachment_paths,
)
from memento_skills.graph.validation import check_context, check_input
from memento_skills.nodes.execute import build_execute_graph
from memento_skills.nodes.gate import ReplayGraph, build_replay_graph
from memento_skills.nodes.judge import judge
from memento_skills.nodes.reflect_write import build_reflect_write_graph
from memento_skills.nodes.route_skill import route_skill
from memento_skills.nodes.routing.seams import LearningRouter, Router
from memento_skills.nodes.routing.service import LearnedRouter
from memento_skills.stores.attachments import task_files
from memento_skills.stores.cases import Case, CaseNotRecorded
from memento_skills.stores.library import SkillLibrary


def judge_and_record(
    state: State, runtime: Runtime[Context], resources: Resources
) -> dict[str, Any]:
    """Judge; a solved task becomes a regression case of the skill that solved it, with the
    files it was given (one whose files are too large to keep is left out, and reported).

    Recording happens here because the judge is the only node that handles the gold answer.
    """
    update = judge(state, runtime, resources=resources)
    ctx = runtime.context or Context()
    verdict: Mapping[str, Any] = update.get("verdict") or {}
    skill = state.get("selected_skill")
    if verdict.get("passed") and skill and ctx.write_policy != "off":
        case = Case(
            task=str(state.get("task") or ""),
            ground_truth=state.get("ground_truth"),
            rubric=state.get("rubric"),
            task_id=str(state.get("task_id") or ""),
        )
        try:
            resources.cases(ctx).add(skill, case, attachment_paths(state.get("attachments")))
        except CaseNotRecorded as e:
            emit("judge", {"event": "case_not_recorded", "skill": skill, "reason": str(e)})
    return update


def begin(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Start a task from a clean slate: a thread (Studio's chat, a server thread) runs many tasks,
    and nothing of the previous one — attempts, tips, verdict — may carry over. The task's files
    are found here, once: every attempt's workspace gets them, and a solved task's case keeps them.

    The run id is new for each task and checkpointed with it: the write phase keys every effect
    it has outside the checkpoint (library change, utility count, router observation, run-log
    record) by it and the attempt, so a node replayed after a crash makes none of them twice."""
    return {
        "run_id": uuid.uuid4().hex,
        "attachments": [
            Attachment(name=name, path=str(path))
            for name, path in task_files((runtime.context or Context()).workspace_dir).items()
        ],
        "attempt": 0,
        "candidates": [],
        "selected_skill": None,
        "selected_version": None,
        "trajectory": [],
        "answer": None,
        "execute_error": None,
        "execute_error_kind": None,
        "verdict": None,
        "proposal": None,
        "procedure": None,
        "search": None,
        "execute_override": None,
        "usage": {},
        "tips": Overwrite([]),
        "writes": Overwrite([]),
    }


def end_task(state: State) -> dict[str, Any]:
    """Forget the task and its gold once done, so the next message on this thread is a new task
    and a gold answer is never applied to a task it does not belong to."""
    return {"task": None, "task_id": None, "ground_truth": None, "rubric": None, "run_id": None}


def build_gate_replay(resources: Resources) -> ReplayGraph:
    """The graph the gate replays a case with: the real execute subgraph and the real judge
    (not judge_and_record: a replay records no case)."""

    def judge_step(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        return judge(state, runtime, resources=resources)

    return build_replay_graph(build_execute_graph(resources), judge_step)


def _after_reflect(state: State, runtime: Runtime[Context]) -> str:
    ctx = runtime.context or Context()
    verdict: Mapping[str, Any] = state.get("verdict") or {}
    if not verdict.get("passed") and int(state.get("attempt") or 0) < ctx.max_attempts:
        return "route_skill"
    return "end_task"


def _checked_run(input: Any, config: RunnableConfig | None, context: Any) -> Any:
    """The run's context, validated, once its input is found runnable: both are refused here,
    before any node (and so any model) runs. A resume (a Command, or None) carries no new input;
    run as a node of a parent graph (a checkpoint namespace is set), the input may hold the
    parent's own keys."""
    if input is not None and not isinstance(input, Command):
        nested = bool(ensure_config(config).get("configurable", {}).get("checkpoint_ns"))
        check_input(input, extra_keys=nested)
    return check_context(context)


class MementoGraph(CompiledStateGraph[State, Context, InputState, OutputState]):
    """The compiled memento graph, refusing a bad context or input before its first node.

    `invoke`, `stream_events` and the LangGraph server all run through `stream`/`astream`, so
    checking there covers every way a run starts.
    """

    def stream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        checked = _checked_run(input, config, context)
        return super().stream(input, config, context=checked, **kwargs)

    def astream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        context: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        checked = _checked_run(input, config, context)
        return super().astream(input, config, context=checked, **kwargs)


def build_graph(
    checkpointer: Checkpointer = None,
    store: BaseStore | None = None,
    *,
    chat_models: Mapping[str, BaseChatModel] | None = None,
    library: SkillLibrary | None = None,
    index: Any | None = None,
    router: Router | None = None,
    approve_script: Callable[[str], bool] | None = None,
    resources: Resources | None = None,
    name: str = "memento",
) -> MementoGraph:
    """Compile the memento graph.

    chat_models maps roles ("router", "executor", "judge", "writer") to models you already
    have; roles left out are built from the run's Context (endpoint or local default).
    The router is `router` (or, with `resources`, the one it carries), else a `LearnedRouter`.
    """
    res = resources or Resources(
        chat_models=chat_models,
        library=library,
        index=index,
        router=router,
        approve_script=approve_script,
    )
    builder = StateGraph(
        State, input_schema=InputState, output_schema=OutputState, context_schema=Context
    )

    if res.router is None:  # kept on the resources: every graph built from them learns in one
        res.router = LearnedRouter()
    live_router: Router = res.router

    def router_model(ctx: Context) -> BaseChatModel:
        return res.model("router", ctx)

    def route(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        return route_skill(state, runtime, router=live_router, retriever=res, model=router_model)

    builder.add_node("route_skill", route)
    builder.add_node("execute", build_execute_graph(res))

    def judge_step(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
        return judge_and_record(state, runtime, res)

    builder.add_node("judge", judge_step)
    learning = live_router if isinstance(live_router, LearningRouter) else None

    def judge_candidate(state: Mapping[str, Any], ctx: Context) -> Verdict:
        """The judge on a search candidate's answer (a program's run): its verdict."""
        return cast(
            Verdict, judge(cast(State, state), Runtime(context=ctx), resources=res)["verdict"]
        )

    builder.add_node(
        "reflect_write",
        build_reflect_write_graph(
            res,
            router=learning,
            replay=functools.cache(functools.partial(build_gate_replay, res)),
            judge=judge_candidate,
        ),
    )
    builder.add_node("begin", begin)
    builder.add_node("end_task", end_task)
    builder.add_edge(START, "begin")
    builder.add_edge("begin", "route_skill")
    builder.add_edge("route_skill", "execute")
    builder.add_edge("execute", "judge")
    builder.add_edge("judge", "reflect_write")
    builder.add_conditional_edges("reflect_write", _after_reflect, ["route_skill", "end_task"])
    builder.add_edge("end_task", END)
    compiled = builder.compile(checkpointer=checkpointer, store=store, name=name)
    # the same construction Pregel.copy() uses, into the checking subclass
    return MementoGraph(**{k: v for k, v in vars(compiled).items() if k != "__orig_class__"})
