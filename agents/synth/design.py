"""Stage 1's design of a domain, tools first: outline, tool groups, then the database.

In the stream ``domain/<slot>``:

1. the architect outlines the domain from its brief (name, description, keywords, size):
   the entities it keeps and its tools grouped by workflow (``DomainOutlined``);
2. the architect designs the tools of each group, one call per group, each carrying only
   the outline and that group (``ToolsDesigned``), so an answer stays within a model's
   output limits however large the domain;
3. the database agent derives the tables from the tools: every table and column they
   read and write, keys, foreign keys, enums, uniqueness, ranges and each column's reward
   policy (``SchemaDerived``);
4. the design is checked (``scaleenv._model.specs_check``); problems go back as feedback,
   to the database agent and to the groups whose tools they name, in bounded rounds
   (``SchemaRejected``), until the design holds (``SchemaDefined``) or the domain fails.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from scaleenv._agents.llm.port import LlmExhaustedError, rendered_request
from scaleenv._model.briefs import Brief
from scaleenv._model.specs_check import validate_domain
from scaleenv._run_context import RunContext
from scaleenv._store.events import Ref
from scaleenv._store.events.synth import (
    DomainFailed,
    DomainOutlined,
    DomainProposed,
    SchemaDefined,
    SchemaDerived,
    SchemaRejected,
    ToolsDesigned,
)
from scaleenv._store.specs import DomainOutline, DomainSpec, TableSpec, ToolSpec

from . import prompts
from .answers import SchemaDesign, ToolGroupDesign


class DesignFailed(Exception):
    """The domain could not be designed; the reason is recorded as ``DomainFailed``."""


def brief_json(brief: Brief, variety: int = 0) -> dict[str, Any]:
    """The brief as the architect reads it; ``variety`` (from the run seed) lets a design vary between runs."""
    return {"name": brief.name, "description": brief.description, "keywords": list(brief.keywords), "tools": brief.tools,
            "variety": variety}


def outline_problems(outline: DomainOutline, brief: Brief) -> list[str]:
    """What is wrong with an outline (names are snake_case by the schema already)."""
    problems = []
    names = [t.name for g in outline.groups for t in g.tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"tool names appear twice: {dupes}")
    if not outline.entities:
        problems.append("the outline names no entities (the records the domain keeps)")
    if not names:
        problems.append("the outline plans no tools")
    elif len(names) < max(5, brief.tools // 2):
        problems.append(f"the outline plans {len(names)} tools; the brief asks for about {brief.tools}")
    groups = [g.name for g in outline.groups]
    if len(set(groups)) != len(groups):
        problems.append("two groups share a name")
    return problems


async def design_domain(ctx: RunContext, stream: Any, slot: int, brief: Brief, taken: list[str], *,
                        variety: int = 0) -> tuple[DomainSpec, Ref]:
    """Run the design rounds; returns the validated spec and the ``SchemaDefined`` ref.

    Raises :class:`DesignFailed` after recording ``DomainFailed`` (the stream is finished).
    """
    rounds = ctx.config.schema_rounds
    try:
        outline, cause = await _outline(ctx, stream, brief, variety, taken, rounds)
        await stream.emit(DomainProposed(domain=outline.name, description=outline.description, round=0),
                          actor="architect", cause=cause)
        groups: dict[str, list[ToolSpec]] = {}
        for group in outline.groups:
            groups[group.name], cause = await _group(ctx, stream, brief, variety, outline, group.name, 0, [], cause)
        tables: list[TableSpec] | None = None
        feedback: list[str] = []
        for round_ in range(rounds):
            tools = [t for g in outline.groups for t in groups[g.name]]
            tables, cause = await _tables(ctx, stream, brief, variety, tools, round_, tables, feedback, cause)
            spec = DomainSpec(name=outline.name, description=outline.description, keywords=list(outline.keywords),
                              tables=tables, tools=tools)
            problems = validate_domain(spec)
            if not problems:
                ref = await stream.emit(SchemaDefined(spec=spec), actor="engine", cause=cause)
                return spec, ref
            cause = await stream.emit(SchemaRejected(domain=spec.name, round=round_, problems=problems),
                                      actor="engine", cause=cause)
            feedback = problems
            if round_ + 1 < rounds:
                for g in outline.groups:  # the tools a problem names go back to their group's round
                    mine = _problems_of(problems, groups[g.name])
                    if mine:
                        groups[g.name], cause = await _group(ctx, stream, brief, variety, outline, g.name, round_ + 1, mine,
                                                             cause, previous=groups[g.name])
        raise _failure(f"no valid design after {rounds} rounds: {feedback[:5]}")
    except LlmExhaustedError as exc:
        await stream.emit(DomainFailed(domain=brief.name, reason=str(exc)), actor="engine", cause=exc.ref)
        stream.finish()
        raise DesignFailed(str(exc)) from None
    except _Failure as exc:
        await stream.emit(DomainFailed(domain=brief.name, reason=exc.reason), actor="engine", cause=exc.cause)
        stream.finish()
        raise DesignFailed(exc.reason) from None


class _Failure(Exception):
    def __init__(self, reason: str, cause: Ref | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


def _failure(reason: str) -> _Failure:
    return _Failure(reason)


async def _outline(ctx: RunContext, stream: Any, brief: Brief, variety: int, taken: list[str],
                   rounds: int) -> tuple[DomainOutline, Ref]:
    feedback: list[str] = []
    cause: Ref | None = None
    previous: DomainOutline | None = None
    for round_ in range(rounds):
        context: dict[str, Any] = {"brief": brief_json(brief, variety), "taken": taken, "round": round_,
                                   "feedback": feedback}
        if previous is not None:  # the rejected outline, whole: fix what feedback names, keep the rest
            context["previous"] = msgspec.to_builtins(previous)
        gen = await ctx.llm.generate(stream, rendered_request("architect", prompts.OUTLINE, context, "Outline the domain."),
                                     DomainOutline, cause=cause)
        cause = await stream.emit(DomainOutlined(round=round_, outline=gen.value), actor="architect", cause=gen.ref)
        problems = outline_problems(gen.value, brief)
        if not problems:
            return gen.value, cause
        cause = await stream.emit(SchemaRejected(domain=gen.value.name, round=round_, problems=problems),
                                  actor="engine", cause=cause)
        feedback, previous = problems, gen.value
    raise _Failure(f"no valid outline after {rounds} rounds: {feedback[:5]}", cause)


async def _group(ctx: RunContext, stream: Any, brief: Brief, variety: int, outline: DomainOutline, group: str, round_: int,
                 feedback: list[str], cause: Ref | None,
                 previous: list[ToolSpec] | None = None) -> tuple[list[ToolSpec], Ref]:
    context: dict[str, Any] = {"brief": brief_json(brief, variety), "outline": msgspec.to_builtins(outline),
                               "group": group, "round": round_, "feedback": feedback}
    if previous is not None:  # the group's rejected tools, whole
        context["previous"] = msgspec.to_builtins(previous)
    gen = await ctx.llm.generate(stream, rendered_request("architect", prompts.TOOL_GROUP, context, f"Design the tools of {group}."),
                                 ToolGroupDesign, cause=cause)
    ref = await stream.emit(ToolsDesigned(group=group, round=round_, tools=list(gen.value.tools)), actor="architect",
                            cause=gen.ref)
    return list(gen.value.tools), ref


async def _tables(ctx: RunContext, stream: Any, brief: Brief, variety: int, tools: list[ToolSpec], round_: int,
                  previous: list[TableSpec] | None, feedback: list[str], cause: Ref | None) -> tuple[list[TableSpec], Ref]:
    context: dict[str, Any] = {"brief": brief_json(brief, variety), "tools": msgspec.to_builtins(tools), "round": round_,
                               "feedback": feedback}
    if previous is not None:
        context["previous"] = msgspec.to_builtins(previous)
    gen = await ctx.llm.generate(stream, rendered_request("database", prompts.DATABASE, context, "Derive the tables."),
                                 SchemaDesign, cause=cause)
    ref = await stream.emit(SchemaDerived(round=round_, tables=list(gen.value.tables)), actor="database", cause=gen.ref)
    return list(gen.value.tables), ref


_TOOL_IN = re.compile(r"tool '?([a-z][a-z0-9_]*)'?")


def _problems_of(problems: list[str], tools: list[ToolSpec]) -> list[str]:
    """The problems that name one of ``tools`` (they go back to the architect's group round)."""
    names = {t.name for t in tools}
    return [p for p in problems if any(m in names for m in _TOOL_IN.findall(p))]
