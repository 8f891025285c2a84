"""Replay at full strength: re-execute every recorded tool call in the sandbox and compare.

Three kinds of recorded calls are re-run against state rebuilt from the log:

- ``tests``: each ``TestsRun`` of a tool stream: its cases (the stream's latest
  ``TestCasesProposed`` or ``TestCasesRepaired``) against the code of the ``CodeProposed`` with the same
  ``code_digest``, each case judged again with ``scaleenv._model.judge``; pass/fail and the
  outcome kind are compared per case;
- ``golden``: each task's ``GoldenChainExecuted``, step by step in one session opened on
  the task's initial state with the domain's verified code;
- ``episode``: each episode's ``ToolExecuted`` in order, in one session opened on the
  task's initial state (a failed call changes nothing, as live). Calls that never
  reached the sandbox (unknown tool, arguments not JSON) are not re-executed.

Sessions enforce the domain's integrity constraints, as live; golden chains and
episodes run on their task's clock (``scaleenv._sandbox.task_clock`` of the run seed
stored in the log), so a tool that read the time must read the recorded reading again.

The first divergence of each stream is reported with both sides (then that stream
stops: what follows a divergence is not comparable), as Temporal does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
import msgspec
import trio

from scaleenv._sandbox import CallOutcome, Limits, SandboxPool, task_clock
from scaleenv._store.events.checks import FieldDifference, StreamDiverged
from scaleenv._store.events.episodes import EpisodeStarted, ToolExecuted
from scaleenv._store.events.synth import CodeProposed, TestCasesProposed, TestCasesRepaired, TestsRun
from scaleenv._store.events.tasks import GoldenChainExecuted
from scaleenv._store.log import Log
from scaleenv._store.record import Record

from .checks import CheckReport
from . import checkpoint
from .projection import DomainView, RunView
from scaleenv._model.integrity import Constraints, constraints_of
from scaleenv._model.state import canonical
from scaleenv._model.judge import judge
from scaleenv._logs import get_logger

log = get_logger("scaleenv._replay.verify")

NOT_EXECUTED = frozenset({"unknown_tool", "bad_json"})
"""Error kinds of episode calls that the engine answered without calling the sandbox."""


@attrs.frozen
class CallDivergence:
    """The first recorded call of a stream whose re-execution differs."""

    stream: str
    n: int
    kind: str  # tests | golden | episode
    tool: str
    where: str  # case name, golden step, or call id
    fields: list[str]
    expected: dict[str, Any]
    got: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def to_event(self) -> StreamDiverged:
        """This divergence as the event ``replay --verify`` records (``scaleenv._replay.checks``)."""
        return StreamDiverged(checker="verify", stream=self.stream, n=self.n, kind=self.kind, where=self.where,
                              differences=[FieldDifference(field=f, expected=self.expected.get(f), got=self.got.get(f))
                                           for f in self.fields],
                              detail=str(self))

    def __str__(self) -> str:
        head = (f"Divergence in stream {self.stream!r} at n={self.n} ({self.kind}, tool {self.tool!r}, {self.where}): "
                "the re-executed call does not match the recorded one")
        lines = [head]
        for f in self.fields:
            lines.append(f"  {f}: recorded {_short(self.expected.get(f))} but got {_short(self.got.get(f))}")
        return "\n".join(lines)


def _short(v: Any, limit: int = 160) -> str:
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


@attrs.define
class VerifyReport:
    checked: int = 0
    skipped: int = 0
    streams: int = 0
    divergences: list[CallDivergence] = attrs.field(factory=list)
    errors: list[dict[str, str]] = attrs.field(factory=list)
    by_kind: dict[str, int] = attrs.field(factory=dict)
    seconds: float = 0.0

    @property
    def calls_per_s(self) -> float:
        return self.checked / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.divergences and not self.errors,
            "divergences": len(self.divergences),
            "checked": self.checked,
            "skipped": self.skipped,
            "streams": self.streams,
            "by_kind": dict(sorted(self.by_kind.items())),
            "calls_per_s": round(self.calls_per_s, 1),
            "seconds": round(self.seconds, 3),
            "divergence_list": [d.to_json() for d in self.divergences],
            "errors": self.errors,
        }

    def to_check(self) -> CheckReport:
        """What ``replay --verify`` records of this report in the log."""
        return CheckReport(checker="verify", divergences=[d.to_event() for d in self.divergences], streams=self.streams,
                           checked=self.checked,
                           errors=[f"{e['stream']}: {e['error']}" for e in self.errors])


def _outcome_side(ok: bool, result: Any, delta: Any, error_kind: str | None, error: str | None,
                  clock: str | None) -> dict[str, Any]:
    return {"ok": ok, "result": canonical(msgspec.to_builtins(result)),
            "delta": canonical(msgspec.to_builtins(list(delta))), "error_kind": error_kind, "error": error,
            "clock": clock}


def _got(outcome: CallOutcome, error_limit: int | None = 1000) -> dict[str, Any]:
    err = outcome.error
    message = None if err is None else (err.message[:error_limit] if error_limit else err.message)
    return _outcome_side(outcome.ok, outcome.result, outcome.delta, None if err is None else err.kind, message,
                         outcome.clock)


def _diff_fields(expected: dict[str, Any], got: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if expected.get(k) != got.get(k)]


@attrs.define
class _Verifier:
    log: Log
    view: RunView
    pool: SandboxPool
    report: VerifyReport
    limiter: trio.CapacityLimiter
    only: Callable[[str], bool]
    seed: int = 0
    """The run seed (from the log's stored config): the tasks' clocks derive from it."""
    constraints: dict[str, Constraints] = attrs.field(factory=dict)

    def _count(self, kind: str, k: int = 1) -> None:
        self.report.checked += k
        self.report.by_kind[kind] = self.report.by_kind.get(kind, 0) + k

    def _domain(self, slot: str) -> DomainView | None:
        return self.view.domains.get(slot)

    def _constraints(self, slot: str) -> Constraints | None:
        domain = self._domain(slot)
        if domain is None or domain.spec is None:
            return None
        if slot not in self.constraints:
            self.constraints[slot] = constraints_of(domain.spec)
        return self.constraints[slot]

    async def tool_stream(self, stream: str) -> None:
        _, slot, name = stream.split("/", 2)
        domain = self._domain(slot)
        spec = domain.spec if domain else None
        tool_spec = spec.tool(name) if spec else None
        if spec is None or tool_spec is None:
            return
        codes: dict[str, str] = {}
        cases: list[Any] = []
        for r in self.log.read_stream(stream):
            e = r.event
            if isinstance(e, CodeProposed):
                codes[e.code_digest] = e.code
            elif isinstance(e, TestCasesProposed | TestCasesRepaired):  # the debug role may repair them
                cases = list(e.cases)
            elif isinstance(e, TestsRun):
                code = codes.get(e.code_digest)
                if code is None:
                    self.report.errors.append({"stream": stream, "n": str(r.n),
                                               "error": f"no CodeProposed with code_digest {e.code_digest}"})
                    return
                recorded = {c.name: c for c in e.results}
                for case in cases:
                    outcome = await self.pool.run_once({name: code}, case.state, name, case.args,
                                                       constraints=self._constraints(slot))
                    got = judge(spec, tool_spec, case, outcome)
                    self._count("tests")
                    rec = recorded.get(case.name)
                    exp_side = {"passed": rec.passed, "outcome": rec.outcome} if rec else {"passed": None, "outcome": None}
                    got_side = {"passed": got.passed, "outcome": got.outcome}
                    fields = _diff_fields(exp_side, got_side, ("passed", "outcome"))
                    if fields:
                        exp_side["failure"], got_side["failure"] = (rec.failure if rec else None), got.failure
                        self._diverge(CallDivergence(stream, r.n, "tests", name, f"round {e.round}, case {case.name!r}",
                                                     fields, exp_side, got_side))
                        return

    async def task_stream(self, stream: str) -> None:
        tid = stream.split("/", 1)[1]
        task = self.view.tasks.get(tid)
        if task is None or task.golden is None or task.initial_state is None:
            return
        domain = self._domain(task.slot)
        if domain is None:
            return
        n = next(r.n for r in self.log.read_stream(stream) if isinstance(r.event, GoldenChainExecuted))
        session = f"verify/{stream}"
        await self.pool.open_session(session, domain.verified_code(), task.initial_state,
                                     constraints=self._constraints(task.slot), clock=task_clock(self.seed, tid))
        try:
            for i, step in enumerate(task.golden.steps):
                outcome = await self.pool.call(session, step.tool, step.args)
                self._count("golden")
                exp = _outcome_side(True, step.result, step.delta, None, None, step.clock)
                got = _got(outcome)
                fields = _diff_fields(exp, got, ("ok", "error_kind", "result", "delta", "clock"))
                if fields:
                    self._diverge(CallDivergence(stream, n, "golden", step.tool, f"golden step {i}", fields, exp, got))
                    return
        finally:
            with trio.CancelScope(shield=True):
                await self.pool.close_session(session)

    async def episode_stream(self, stream: str) -> None:
        records = list(self.log.read_stream(stream))  # the episode's task from its own start, not the projection
        started = next((r.event for r in records if isinstance(r.event, EpisodeStarted)), None)
        task = self.view.tasks.get(started.task_id) if started is not None else None
        if task is None or task.initial_state is None:
            return
        domain = self._domain(task.slot)
        if domain is None:
            return
        calls: list[Record] = [r for r in records if isinstance(r.event, ToolExecuted)]
        if not calls:
            return
        session = f"verify/{stream}"
        await self.pool.open_session(session, domain.verified_code(), task.initial_state,
                                     constraints=self._constraints(task.slot), clock=task_clock(self.seed, task.task_id))
        try:
            for r in calls:
                e = r.event
                assert isinstance(e, ToolExecuted)
                if e.error_kind in NOT_EXECUTED or e.args is None:
                    self.report.skipped += 1
                    continue
                outcome = await self.pool.call(session, e.tool, e.args)
                self._count("episode")
                exp = _outcome_side(e.ok, e.result, e.delta, e.error_kind, e.error, e.clock)
                got = _got(outcome)
                fields = _diff_fields(exp, got, ("ok", "error_kind", "error", "result", "delta", "clock"))
                if fields:
                    self._diverge(CallDivergence(stream, r.n, "episode", e.tool, f"call {e.call_id!r}", fields, exp, got))
                    return
        finally:
            with trio.CancelScope(shield=True):
                await self.pool.close_session(session)

    def _diverge(self, d: CallDivergence) -> None:
        log.warning("divergence", stream=d.stream, n=d.n, kind=d.kind, tool=d.tool, fields=d.fields)
        self.report.divergences.append(d)

    async def run_stream(self, stream: str) -> None:
        async with self.limiter:
            kind = stream.split("/", 1)[0]
            self.report.streams += 1
            try:
                if kind == "tool":
                    await self.tool_stream(stream)
                elif kind == "task":
                    await self.task_stream(stream)
                elif kind == "episode":
                    await self.episode_stream(stream)
            except Exception as exc:  # noqa: BLE001 - one broken stream must not hide the others
                log.error("stream could not be verified", stream=stream, error=repr(exc))
                self.report.errors.append({"stream": stream, "error": repr(exc)})


async def verify_log(event_log: Log, *, workers: int = 2, concurrency: int = 16, limits: Limits | None = None,
                     only: Callable[[str], bool] | None = None, pool: SandboxPool | None = None) -> VerifyReport:
    """Re-execute every recorded tool call of ``event_log``; the report lists the first divergence per stream.

    Domains and tasks come from the log's projection (its newest checkpoint and what
    follows; a task's states read from its stream when its golden chain or an episode of
    it is verified), and each stream verified is read through the per-stream index: the
    work is the streams verified (``only``), not a fold of the whole log."""
    view = checkpoint.project(event_log, write=False, digests=False)
    seed = int((event_log.meta_get("run_config") or {}).get("seed", 0))
    report = VerifyReport()
    keep = only or (lambda s: True)
    streams = [s for s, _ in event_log.streams() if s.split("/", 1)[0] in ("tool", "task", "episode") and keep(s)]

    async def go(p: SandboxPool) -> None:
        t0 = time.perf_counter()
        v = _Verifier(event_log, view, p, report, trio.CapacityLimiter(concurrency), keep, seed)
        async with trio.open_nursery() as nursery:
            for s in streams:
                nursery.start_soon(v.run_stream, s)
        report.seconds = time.perf_counter() - t0

    if pool is not None:
        await go(pool)
    else:
        async with SandboxPool(workers=workers, limits=limits or Limits()) as p:
            await go(p)
    report.divergences.sort(key=lambda d: (d.stream, d.n))
    return report
