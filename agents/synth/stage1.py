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

from scaleenv.agents.llm.port import LlmExhaustedError, rendered_request
from scaleenv.model.contracts import render
from scaleenv.model.judge import judge
from scaleenv.model.dbgen import generate_state
from scaleenv.run_context import RunContext
from scaleenv.sandbox import check_source
from scaleenv.model.satisfy import satisfy, violate
from scaleenv.seeding import derive_seed, rng_for
from scaleenv.store.events import Ref
from scaleenv.store.events.synth import (
    CaseResult,
    CodeCheckFailed,
    CodeProposed,
    DomainFailed,
    DomainProposed,
    DomainSynthesized,
    RecordExpectation,
    ReviewGiven,
    SchemaDefined,
    SchemaRejected,
    TestCase,
    TestCasesProposed,
    TestsRun,
    ToolAccepted,
    ToolRejected,
)
from scaleenv.store.specs import DbState, DomainSpec, ToolSpec
from scaleenv.model.graph import derive_edges
from scaleenv.model.specs_check import validate_domain
from scaleenv.streams import domain_stream, slot_id, tool_stream
from scaleenv.logs import get_logger

from . import prompts
from .answers import CodeAnswer, RepairAnswer, ReviewAnswer, TestPlan

log = get_logger("scaleenv.synth")


def code_digest(code: str) -> str:
    return hashlib.blake2b(code.encode(), digest_size=12).hexdigest()


@attrs.define
class ToolVerdict:
    name: str
    accepted: bool
    code: str = ""


# --------------------------------------------------------------------------- domain


async def synthesize_domain(ctx: RunContext, slot: int) -> None:
    sid = slot_id(slot)
    with structlog.contextvars.bound_contextvars(domain_slot=sid):
        stream = ctx.stream(domain_stream(sid))
        spec, cause = await _design(ctx, stream, slot)
        if spec is None:
            ctx.progress.add("domains failed")
            return
        with structlog.contextvars.bound_contextvars(domain=spec.name):
            verdicts: dict[str, ToolVerdict] = {}
            async with trio.open_nursery() as nursery:
                for tool in spec.tools:
                    nursery.start_soon(ctx.guarded, _tool_task, ctx, sid, spec, tool, cause, verdicts)
            verified = sorted(n for n, v in verdicts.items() if v.accepted)
            rejected = sorted(n for n in (t.name for t in spec.tools) if n not in verified)
            for edge in derive_edges(spec, verified):
                await stream.emit(edge, actor="graph", cause=cause)
            await stream.emit(
                DomainSynthesized(domain=spec.name, verified=verified, rejected=rejected), actor="engine", cause=cause
            )
            stream.finish()
            ctx.progress.add("domains")
            log.info("domain synthesized", verified=len(verified), rejected=len(rejected))


async def _design(ctx: RunContext, stream: Any, slot: int) -> tuple[DomainSpec | None, Ref | None]:
    feedback: list[str] = []
    cause: Ref | None = None
    variety_seed = derive_seed(ctx.seed, "domain-variety")
    for round_ in range(ctx.config.schema_rounds):
        context = {"slot": slot, "variety_seed": variety_seed, "round": round_, "feedback": feedback}
        request = rendered_request("architect", prompts.ARCHITECT, context, "Design the domain.")
        try:
            gen = await ctx.llm.generate(stream, request, DomainSpec, cause=cause)
        except LlmExhaustedError as exc:
            await stream.emit(DomainFailed(domain=f"slot {slot}", reason=str(exc)), actor="engine", cause=exc.ref)
            stream.finish()
            return None, None
        spec = gen.value
        ref = await stream.emit(
            DomainProposed(domain=spec.name, description=spec.description, round=round_), actor="architect", cause=gen.ref
        )
        problems = validate_domain(spec)
        if problems:
            cause = await stream.emit(
                SchemaRejected(domain=spec.name, round=round_, problems=problems), actor="engine", cause=ref
            )
            feedback = problems
            continue
        cause = await stream.emit(SchemaDefined(spec=spec), actor="engine", cause=ref)
        return spec, cause
    await stream.emit(
        DomainFailed(domain=f"slot {slot}", reason=f"no valid design after {ctx.config.schema_rounds} rounds: {feedback[:5]}"),
        actor="engine", cause=cause,
    )
    stream.finish()
    return None, None


# --------------------------------------------------------------------------- tool


async def _tool_task(
    ctx: RunContext, sid: str, spec: DomainSpec, tool: ToolSpec, cause: Ref | None, out: dict[str, ToolVerdict]
) -> None:
    async with ctx.agents:
        with structlog.contextvars.bound_contextvars(tool=tool.name):
            out[tool.name] = await synthesize_tool(ctx, sid, spec, tool, cause)
            ctx.progress.add("tools verified" if out[tool.name].accepted else "tools rejected")


def _context(spec: DomainSpec, tool: ToolSpec, **extra: Any) -> dict[str, Any]:
    return {"domain": msgspec.to_builtins(spec), "tool": tool.name, **extra}


async def synthesize_tool(ctx: RunContext, sid: str, spec: DomainSpec, tool: ToolSpec, cause: Ref | None) -> ToolVerdict:
    stream = ctx.stream(tool_stream(sid, tool.name))
    llm = ctx.llm
    max_rounds = ctx.config.max_repair_rounds
    try:
        context = _context(spec, tool, round=0)
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
                context = _context(spec, tool, code=code, round=round_)
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
                else:
                    if cases is None:
                        cases, last = await _write_cases(ctx, stream, sid, spec, tool, last)
                    results = await _run_cases(ctx, spec, tool, code, cases)
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
                    failures = [{"case": r.name, "failure": r.failure, "traceback": r.traceback} for r in results if not r.passed]
                    reasons = [f"test {f['case']}: {f['failure']}" for f in failures]
            if round_ == max_rounds:
                break
            context = _context(spec, tool, code=code, round=round_ + 1, failures=failures[:8], objections=objections)
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


async def _write_cases(
    ctx: RunContext, stream: Any, sid: str, spec: DomainSpec, tool: ToolSpec, cause: Ref
) -> tuple[list[TestCase], Ref]:
    rng = rng_for(ctx.seed, "tests", sid, tool.name)
    state = generate_state(spec, rng, rows=ctx.config.test_rows)
    context = _context(spec, tool, state=state)
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


async def _run_cases(ctx: RunContext, spec: DomainSpec, tool: ToolSpec, code: str, cases: list[TestCase]) -> list[CaseResult]:
    results: list[CaseResult | None] = [None] * len(cases)

    async def one(i: int, case: TestCase) -> None:
        outcome = await ctx.sandbox.run_once({tool.name: code}, case.state, tool.name, case.args)
        results[i] = judge(spec, tool, case, outcome)

    async with trio.open_nursery() as nursery:
        for i, case in enumerate(cases):
            nursery.start_soon(one, i, case)
    return [r for r in results if r is not None]
