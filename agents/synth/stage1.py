"""Stage 1: executable graph construction, one trio task per domain and per tool.

Per domain (stream ``domain/<slot>``): the architect designs the schema and tools
(validated; problems go back as feedback, bounded), every tool is synthesized
concurrently in its own stream (``tool/<slot>/<tool>``), then the dependency graph of
the verified tools is derived and recorded edge by edge.

Per tool: coder -> static check -> reviewer -> tester + contract-derived cases ->
sandboxed test run -> repairer, for at most ``max_repair_rounds`` rounds; the tool is
accepted only when every case passes, else rejected with its reasons. Every step is an
event naming its cause, which is the tool's audit trail.
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs
import msgspec
import structlog
import trio

from scaleenv._agents.llm.port import LlmExhaustedError, rendered_request
from scaleenv._model.contracts import render
from scaleenv._model.judge import judge
from scaleenv._model.dbgen import generate_state
from scaleenv._run_context import RunContext
from scaleenv._sandbox import check_source
from scaleenv._model.satisfy import satisfy, violate
from scaleenv._seeding import derive_seed, rng_for
from scaleenv._store.events import Ref
from scaleenv._store.events.synth import (
    CaseFix,
    CaseResult,
    CodeCheckFailed,
    CodeProposed,
    DomainSynthesized,
    GraphEdgeJudged,
    RecordExpectation,
    ReviewGiven,
    TestCase,
    TestCasesProposed,
    TestCasesRepaired,
    ToolDebugged,
    TestsRun,
    ToolAccepted,
    ToolRejected,
)
from scaleenv._store.specs import DbState, DomainSpec, ToolSpec
from scaleenv._model.graph import derive_edges
from scaleenv._model.briefs import brief_for, taken_names
from scaleenv._model.scope import scoped_state, state_scope, tool_scope
from scaleenv._streams import domain_stream, slot_id, tool_stream
from scaleenv._logs import get_logger

from . import prompts
from .answers import CodeAnswer, DebugAnswer, GraphJudgeAnswer, RepairAnswer, ReviewAnswer, TestPlan
from .design import DesignFailed, design_domain

log = get_logger("scaleenv.synth")


JUDGE_BATCH = 24
"""Candidate edges the dependency judge reviews per call."""


def code_digest(code: str) -> str:
    return hashlib.blake2b(code.encode(), digest_size=12).hexdigest()


@attrs.define
class ToolVerdict:
    name: str
    accepted: bool
    code: str = ""


# --------------------------------------------------------------------------- domain


async def synthesize_domain(ctx: RunContext, slot: int) -> None:
    """Design domain ``slot`` from its brief, synthesize its tools (concurrently), record the graph.

    Awaits until the domain is done or failed; cancellation stops its agents (the run
    resumes them from the log)."""
    sid = slot_id(slot)
    cfg = ctx.config
    # A slot's brief and what it is told depend on earlier slots only, so a run that grows
    # (more domains on the same log) asks every existing slot exactly what it asked before;
    # each costs the same at any slot (what it is told names at most TAKEN_WINDOW slots).
    brief = brief_for(cfg.preset, slot, cfg.seed, cfg.min_tools, cfg.max_tools)
    taken = taken_names(cfg.preset, slot, cfg.seed)
    with structlog.contextvars.bound_contextvars(domain_slot=sid):
        stream = ctx.stream(domain_stream(sid))
        try:
            spec, cause = await design_domain(ctx, stream, slot, brief, taken,
                                              variety=derive_seed(cfg.seed, "variety", slot) % 10_000)
        except DesignFailed:
            ctx.progress.add("domains failed")
            return
        with structlog.contextvars.bound_contextvars(domain=spec.name):
            verdicts: dict[str, ToolVerdict] = {}
            async with trio.open_nursery() as nursery:
                for tool in spec.tools:
                    # A tool's agent slot is taken before its task exists: a domain waiting
                    # for slots holds no waiting task per tool (Ctrl-C unwinds the agents
                    # at work, not a queue of thousands).
                    token = object()
                    await ctx.agents.acquire_on_behalf_of(token)
                    nursery.start_soon(ctx.guarded, _tool_task, ctx, sid, spec, tool, cause, verdicts, token)
            verified = sorted(n for n, v in verdicts.items() if v.accepted)
            rejected = sorted(n for n in (t.name for t in spec.tools) if n not in verified)
            await record_graph(ctx, stream, spec, verified, cause)
            await stream.emit(
                DomainSynthesized(domain=spec.name, verified=verified, rejected=rejected), actor="engine", cause=cause
            )
            stream.finish()
            ctx.progress.add("domains")
            log.info("domain synthesized", verified=len(verified), rejected=len(rejected))


# --------------------------------------------------------------------------- tool


async def _tool_task(
    ctx: RunContext, sid: str, spec: DomainSpec, tool: ToolSpec, cause: Ref | None, out: dict[str, ToolVerdict],
    token: object,
) -> None:
    """Synthesize ``tool`` holding the slot of ``ctx.agents`` taken for it on behalf of ``token``
    (released when it ends, cancelled or not)."""
    try:
        with structlog.contextvars.bound_contextvars(tool=tool.name):
            out[tool.name] = await synthesize_tool(ctx, sid, spec, tool, cause)
            ctx.progress.add("tools verified" if out[tool.name].accepted else "tools rejected")
    finally:
        ctx.agents.release_on_behalf_of(token)


def tool_context(spec: DomainSpec, tool: ToolSpec, **extra: Any) -> dict[str, Any]:
    """What a role working on one tool is given: the tool and the tables it touches, one
    foreign-key hop around the tables it names (:func:`scaleenv._model.scope.tool_scope`; not the
    whole domain: a call's size does not grow with the domain's)."""
    scoped = tool_scope(spec, tool)
    return {"domain": {"name": spec.name, "description": spec.description,
                       "tables": msgspec.to_builtins(scoped.tables)},
            "tool": msgspec.to_builtins(tool),
            # The contract as a reader states it ("orders[$order_id].status == pending",
            # "after: ... == cancelled"), beside the structured conditions in `tool`.
            "contract_text": [render(c) for c in tool.contract], **extra}


async def synthesize_tool(ctx: RunContext, sid: str, spec: DomainSpec, tool: ToolSpec, cause: Ref | None) -> ToolVerdict:
    stream = ctx.stream(tool_stream(sid, tool.name))
    llm = ctx.llm
    max_rounds = ctx.config.max_repair_rounds
    try:
        context = tool_context(spec, tool, round=0)
        gen = await llm.generate(
            stream,
            rendered_request("coder", prompts.CODER, context, f"Write {tool.name}."),
            CodeAnswer,
            cause=cause,
        )
        code = gen.value.code
        last = await stream.emit(
            CodeProposed(domain=spec.name, tool=tool.name, round=0, author="coder", code=code, code_digest=code_digest(code)),
            actor="coder", cause=gen.ref,
        )
        cases: list[TestCase] | None = None
        reasons: list[str] = []
        earlier: list[dict[str, Any]] = []  # the reviewer's objections to earlier versions, and who changed the code since
        for round_ in range(max_rounds + 1):
            failures: list[dict[str, str]] = []
            objections: list[str] = []
            issues = check_source(code, tool.name)
            if issues:
                texts = [f"line {i.line}, col {i.col}: {i.message}" for i in issues]
                last = await stream.emit(CodeCheckFailed(tool=tool.name, round=round_, issues=texts), actor="engine", cause=last)
                failures = [{"case": "static check", "failure": t, "traceback": ""} for t in texts]
                reasons = texts
            else:
                context = tool_context(spec, tool, code=code, round=round_, earlier=earlier)
                review = await llm.generate(
                    stream,
                    rendered_request("reviewer", prompts.REVIEWER, context, f"Review {tool.name}."),
                    ReviewAnswer,
                    cause=last,
                )
                last = await stream.emit(
                    ReviewGiven(tool=tool.name, round=round_, accepted=review.value.accept, objections=list(review.value.objections)),
                    actor="reviewer", cause=review.ref,
                )
                if not review.value.accept:
                    objections = list(review.value.objections) or ["rejected without objections"]
                    reasons = [f"review: {o}" for o in objections]
                    earlier.append({"round": round_, "objections": objections, "then": "the repairer rewrote the code"})
                else:
                    if cases is None:
                        cases, last = await _write_cases(ctx, stream, sid, spec, tool, last)
                    results = await _run_cases(ctx, sid, spec, tool, code, cases)
                    passed = sum(r.passed for r in results)
                    last = await stream.emit(
                        TestsRun(tool=tool.name, round=round_, code_digest=code_digest(code), results=results,
                                 passed=passed, failed=len(results) - passed),
                        actor="engine", cause=last,
                    )
                    if passed == len(results):
                        await stream.emit(
                            ToolAccepted(domain=spec.name, tool=tool.name, spec=tool, code=code,
                                         code_digest=code_digest(code), rounds=round_),
                            actor="engine", cause=last,
                        )
                        stream.finish()
                        return ToolVerdict(tool.name, True, code)
                    failing = [r for r in results if not r.passed]
                    reasons = [f"test {r.name}: {r.failure}" for r in failing]
                    if round_ == max_rounds:
                        break
                    verdict, last = await _debug(ctx, stream, spec, tool, code, cases, failing, round_ + 1, last)
                    if verdict.verdict == "test":
                        cases, last = await _repair_cases(stream, tool, cases, verdict.case_fixes, round_ + 1, last)
                        continue  # the same code against the repaired tests
                    code = verdict.code
                    last = await stream.emit(
                        CodeProposed(domain=spec.name, tool=tool.name, round=round_ + 1, author="debugger", code=code,
                                     code_digest=code_digest(code)),
                        actor="debugger", cause=last,
                    )
                    continue
            if round_ == max_rounds:
                break
            context = tool_context(spec, tool, code=code, round=round_ + 1, failures=failures[:8], objections=objections)
            # (static check and review problems go to the repairer; failing tests to the debugger above)
            fix = await llm.generate(
                stream,
                rendered_request("repairer", prompts.REPAIRER, context, f"Repair {tool.name}."),
                RepairAnswer,
                cause=last,
            )
            code = fix.value.code
            last = await stream.emit(
                CodeProposed(domain=spec.name, tool=tool.name, round=round_ + 1, author="repairer", code=code, code_digest=code_digest(code)),
                actor="repairer", cause=fix.ref,
            )
        await stream.emit(
            ToolRejected(domain=spec.name, tool=tool.name, reasons=reasons[:20], rounds=max_rounds), actor="engine", cause=last
        )
    except LlmExhaustedError as exc:
        await stream.emit(
            ToolRejected(domain=spec.name, tool=tool.name, reasons=[f"{exc.role}: {exc}"], rounds=0), actor="engine", cause=exc.ref
        )
    stream.finish()
    return ToolVerdict(tool.name, False)


# --------------------------------------------------------------------------- tests


def fixture_for_tester(spec: DomainSpec, tool: ToolSpec, rng: Any, rows: int) -> tuple[DbState, dict[str, Any]]:
    """The test database of ``tool`` and what the tester is given. The database is generated
    closed under foreign keys (:func:`scaleenv._model.scope.state_scope`: every reference
    resolves); the tester is shown the part of it inside the tool's scope, so its prompt does
    not grow with the domain's chains of references either."""
    state = generate_state(state_scope(spec, tool), rng, rows=rows)
    return state, tool_context(spec, tool, state=scoped_state(spec, tool, state))


async def _write_cases(
    ctx: RunContext, stream: Any, sid: str, spec: DomainSpec, tool: ToolSpec, cause: Ref
) -> tuple[list[TestCase], Ref]:
    rng = rng_for(ctx.seed, "tests", sid, tool.name)
    state, context = fixture_for_tester(spec, tool, rng, ctx.config.test_rows)
    plan = await ctx.llm.generate(
        stream,
        rendered_request("tester", prompts.TESTER, context, f"Test {tool.name}."),
        TestPlan,
        cause=cause,
    )
    cases = [
        TestCase(
            name=f"tester/{i}:{c.name}"[:80], source="tester", args=c.args, state=state, expect=c.expect,
            expect_changes=[RecordExpectation(table=e.table, key=e.key, field=e.field, value=e.value, deleted=e.deleted) for e in c.expect_changes],
            note=c.note,
        )
        for i, c in enumerate(plan.value.cases[:24])
    ]
    cases.extend(contract_cases(spec, tool, state, rng))
    ref = await stream.emit(TestCasesProposed(tool=tool.name, cases=cases), actor="tester", cause=plan.ref)
    return cases, ref


def contract_cases(spec: DomainSpec, tool: ToolSpec, state: DbState, rng: Any) -> list[TestCase]:
    """Cases derived from the contract: satisfying calls, and one violation per pre-condition."""
    cases: list[TestCase] = []
    bases = []
    for k in range(2):
        solved = satisfy(spec, tool, state, rng)
        if solved is None:
            break
        args, db = solved
        bases.append((args, db))
        cases.append(TestCase(name=f"contract/valid/{k}", source="contract", args=args, state=db, expect="ok",
                              note="every pre-condition holds; every post-condition must hold after"))
    if not bases:
        return cases
    args, db = bases[0]
    for i, cond in enumerate(tool.contract):
        if cond.when != "pre":
            continue
        broken = violate(spec, tool, i, args, db, rng)
        if broken is None:
            continue
        vargs, vdb = broken
        cases.append(TestCase(name=f"contract/violate/{i}", source="contract", args=vargs, state=vdb, expect="error",
                              condition=i, note=f"breaks: {render(cond)}"))
    return cases


async def _run_cases(ctx: RunContext, sid: str, spec: DomainSpec, tool: ToolSpec, code: str,
                     cases: list[TestCase]) -> list[CaseResult]:
    results: list[CaseResult | None] = [None] * len(cases)
    constraints = ctx.constraints(sid, spec)  # a call that breaks the schema's integrity fails its case

    async def one(i: int, case: TestCase) -> None:
        outcome = await ctx.sandbox.run_once({tool.name: code}, case.state, tool.name, case.args, constraints=constraints)
        results[i] = judge(spec, tool, case, outcome)

    async with trio.open_nursery() as nursery:
        for i, case in enumerate(cases):
            nursery.start_soon(one, i, case)
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------- debugging


def _failure_json(case: TestCase, result: CaseResult, spec: DomainSpec, tool: ToolSpec) -> dict[str, Any]:
    return {"case": case.name, "args": case.args, "expect": case.expect, "outcome": result.outcome,
            "message": result.message[:300], "failure": result.failure[:500], "traceback": result.traceback[-800:],
            "expect_changes": [msgspec.to_builtins(e) for e in case.expect_changes],
            "state": scoped_state(spec, tool, case.state)}


async def _debug(ctx: RunContext, stream: Any, spec: DomainSpec, tool: ToolSpec, code: str, cases: list[TestCase],
                 failing: list[CaseResult], round_: int, cause: Ref) -> tuple[DebugAnswer, Ref]:
    """Ask the debug role which side of the failing tests is wrong; record its verdict."""
    by_name = {c.name: c for c in cases}
    failures = [_failure_json(by_name[r.name], r, spec, tool) for r in failing[:8] if r.name in by_name]
    context = tool_context(spec, tool, code=code, round=round_, failures=failures)
    gen = await ctx.llm.generate(stream, rendered_request("debugger", prompts.DEBUGGER, context, f"Debug {tool.name}."),
                                 DebugAnswer, cause=cause)
    ref = await stream.emit(ToolDebugged(tool=tool.name, round=round_, verdict=gen.value.verdict, reason=gen.value.reason[:500]),
                            actor="debugger", cause=gen.ref)
    return gen.value, ref


async def _repair_cases(stream: Any, tool: ToolSpec, cases: list[TestCase], fixes: list[CaseFix], round_: int,
                        cause: Ref) -> tuple[list[TestCase], Ref]:
    """The test cases with the debug role's fixes applied. Only the tester's cases can be
    wrong: cases derived from the contract itself are the contract, and a fix naming one
    (or no case at all) is not applied."""
    disputable = {c.name for c in cases if c.source == "tester"}
    fixes = [f for f in fixes if f.case in disputable]
    by_case = {f.case: f for f in fixes}
    repaired: list[TestCase] = []
    for case in cases:
        fix = by_case.get(case.name)
        if fix is None:
            repaired.append(case)
        elif fix.action == "expect_ok":
            repaired.append(msgspec.structs.replace(case, expect="ok", expect_changes=[]))
        elif fix.action == "expect_error":
            repaired.append(msgspec.structs.replace(case, expect="error", expect_changes=[]))
    ref = await stream.emit(TestCasesRepaired(tool=tool.name, round=round_, fixes=fixes, cases=repaired),
                            actor="debugger", cause=cause)
    return repaired, ref


# --------------------------------------------------------------------------- the graph


async def record_graph(ctx: RunContext, stream: Any, spec: DomainSpec, verified: list[str], cause: Ref) -> None:
    """The dependency graph of the verified tools, edge by edge; with ``graph_judge`` on, the
    judge role reviews the candidates in batches first and its verdicts are events too."""
    candidates = derive_edges(spec, verified)
    if not ctx.config.graph_judge or not candidates:
        for edge in candidates:
            await stream.emit(edge, actor="graph", cause=cause)
        return
    tools = {t.name: msgspec.to_builtins(t) for t in spec.tools if t.name in verified}
    for start in range(0, len(candidates), JUDGE_BATCH):
        batch = candidates[start:start + JUDGE_BATCH]
        names = sorted({e.src for e in batch} | {e.dst for e in batch})
        context = {"domain": spec.name, "tools": {n: tools[n] for n in names},
                   "candidates": [{"src": e.src, "dst": e.dst, "kind": e.kind, "why": e.why} for e in batch]}
        gen = await ctx.llm.generate(stream, rendered_request("graph_judge", prompts.GRAPH_JUDGE, context, "Judge the edges."),
                                     GraphJudgeAnswer, cause=cause)
        verdicts = {(v.src, v.dst): v for v in gen.value.verdicts}
        for edge in batch:
            v = verdicts.get((edge.src, edge.dst))
            keep = True if v is None else v.keep
            ref = await stream.emit(GraphEdgeJudged(src=edge.src, dst=edge.dst, kind=edge.kind, keep=keep,
                                                    reason=(v.reason if v else "no verdict: kept")[:300]),
                                    actor="graph_judge", cause=gen.ref)
            if keep:
                await stream.emit(edge, actor="graph", cause=ref)
