"""Stage 2: multi-goal tasks in environments of 20+ tools, proven solvable by execution.

Per domain, ``config.tasks_for(slot)`` task agents run, each with its own stream
``task/<slot>/t<k>`` (the paper's section 4.2):

1. **Goals as programs.** A goal tool is sampled; the chain-writer role writes the chain
   that ends with it as a short program of tool calls (:mod:`scaleenv._model.program`).
   A program the parser refuses, or that cannot be made to run, goes back to the writer
   with the problem (a few rounds). The goal is realized: its calls run in the sandbox
   after the goals before it, the contract solver patching the initial state where a
   step cannot run (:func:`.realize.realize_goal`).
2. **Controlled expansion.** From the tools the first goal uses, breadth first over the
   dependency graph, a tool joins the environment H when the solver can bind its inputs
   on the state and it then runs (and the goals still tell the same story), until
   ``|H| >= min_env_tools``.
3. **More goals, gated.** Up to ``min_goals`` goals are added outright; beyond them a
   gate role sees the number of unused tools, the complexity c(H) and a feasibility g(D)
   and returns p; another goal is added while ``p >= gate_tau``. g(D) is, by default
   (``gate_feasibility="oracle"``), the success rate of an oracle policy told the solution
   over ``gate_k`` rollouts on candidate goals over unused tools, run through the episode
   code with their events in the task's stream (:mod:`scaleenv._agents.rollout.oracle`);
   with ``"realize"``, the share of ``gate_k`` candidate chains that realize on the state.
4. **Distractors** (up to ``distractors`` per goal, look-alikes of its target record) and
   a **background population** (about ``background_rows`` records per table), each kept
   only where every goal still runs as before.
5. **Interaction completeness**: every tool of H runs on the final initial state with
   the arguments it joined with; one that no longer does leaves H.
6. The **instruction** (task-writer role: one request per goal, in order) and the
   **golden chain** executed once from the final initial state, giving the expected
   final state and the answers information goals must tell the user.

A task that cannot be built is discarded with its reason.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import msgspec
import networkx as nx
import structlog
import trio

from scaleenv._agents.llm.port import LlmExhaustedError, rendered_request
from scaleenv._agents.rollout.oracle import OracleCase, oracle_rollout
from scaleenv._logs import get_logger
from scaleenv._model import program as prog
from scaleenv._model.state import canonical, state_digest
from scaleenv._replay.projection import DomainView
from scaleenv._run_context import RunContext
from scaleenv._sandbox import task_clock
from scaleenv._seeding import rng_for
from scaleenv._store.events import Ref
from scaleenv._store.events.tasks import (
    ChainSampled,
    ChainStep,
    ChainWritten,
    EnvironmentExpanded,
    GateDecided,
    GoalRealized,
    OracleEnded,
    GoldenChainExecuted,
    GoldenStep,
    InstructionWritten,
    RecordChange,
    TaskDiscarded,
    TaskInstantiated,
    TaskKept,
)
from scaleenv._store.specs import DbState, DomainSpec, ToolSpec
from scaleenv._streams import slot_index, task_id, task_stream

from . import prompts
from .answers import ChainAnswer, GateAnswer, InstructionAnswer
from .expansion import (
    ExpansionFailed,
    SessionTerms,
    final_state,
    golden_steps,
    identifying_facts,
    make_distractor,
    run_chain,
    sandbox_session,
)
from .realize import complexity, grow_environment, populate, realize_goal, rename, same_story

log = get_logger("scaleenv.tasks")

WRITER_ROUNDS = 3
"""Rounds a chain writer gets for one goal (its program refused or not realizable: the problem goes back)."""
CANDIDATE_READERS = 14
"""Read tools a chain writer is shown as possible earlier steps (the goal tool's nearest data ancestors)."""


def tasks_left(ctx: RunContext, domain: DomainView, finished: Callable[[str], bool]) -> Iterator[str]:
    """The ids of ``domain``'s tasks that are not ``finished`` (kept or discarded; every one
    in verify mode), in order."""
    for k in range(ctx.config.tasks_for(slot_index(domain.slot))):
        tid = task_id(domain.slot, k)
        if ctx.mode != "verify" and finished(tid):
            continue
        yield tid


async def task_agent(ctx: RunContext, domain: DomainView, tid: str) -> None:
    """Build task ``tid`` of ``domain`` in its own stream, holding a slot of ``ctx.agents``.

    Awaits until the task is kept or discarded; cancellation stops it (the next run
    resumes it from the log)."""
    async with ctx.agents:
        with structlog.contextvars.bound_contextvars(task=tid, domain=domain.name):
            kept = await instantiate_task(ctx, domain, tid)
            ctx.progress.add("tasks kept" if kept else "tasks discarded")


@attrs.define
class Goal:
    tool: str
    start: int  # where its steps begin in the task's steps
    end: int  # where they end (exclusive)
    fed: dict[int, set[str]]  # step (task-wide index) -> parameters an earlier result supplied
    picks: dict[int, tuple[str, str]]  # step (task-wide index) -> (table, key) picked from its list


@attrs.define
class _Builder:
    """One task under construction: its goals, steps, initial state and environment."""

    ctx: RunContext
    domain: DomainView
    tid: str
    stream: Any
    rng: random.Random
    spec: DomainSpec = attrs.field(init=False)
    graph: nx.MultiDiGraph = attrs.field(init=False)
    code: dict[str, str] = attrs.field(init=False)
    terms: SessionTerms = attrs.field(init=False)
    initial: DbState = attrs.field(init=False)
    steps: list[ChainStep] = attrs.field(factory=list)
    golden: list[GoldenStep] = attrs.field(factory=list)
    goals: list[Goal] = attrs.field(factory=list)
    env: set[str] = attrs.field(factory=set)
    probes: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    cause: Ref | None = None

    def __attrs_post_init__(self) -> None:
        assert self.domain.spec is not None
        self.spec = self.domain.spec
        self.graph = self.domain.graph()
        self.code = self.domain.verified_code()
        # Every session of the task: the domain's integrity enforced, the task's clock.
        self.terms = SessionTerms(constraints=self.ctx.constraints(self.domain.slot, self.spec),
                                  clock=task_clock(self.ctx.seed, self.tid))
        self.initial = {t.name: {} for t in self.spec.tables}

    @property
    def picks(self) -> dict[int, tuple[str, str]]:
        return {i: p for g in self.goals for i, p in g.picks.items()}

    def session(self, what: str) -> str:
        return f"{what}/{self.tid}"

    async def emit(self, event: Any, actor: str, cause: Ref | None = None) -> Ref:
        self.cause = await self.stream.emit(event, actor=actor, cause=cause if cause is not None else self.cause)
        return self.cause

    # ------------------------------------------------------------------ goals
    def goal_tools(self, count: int, prefer_unused: bool) -> list[str]:
        """``count`` distinct goal tools: mostly mutating ones, never one an earlier goal ends
        with; outside H when ``prefer_unused`` and such tools remain."""
        used = {g.tool for g in self.goals}
        tools = [t for t in self.spec.tools if t.name in self.graph and t.name not in used]
        if prefer_unused:
            outside = [t for t in tools if t.name not in self.env]
            tools = outside or tools
        out: list[str] = []
        writers = sorted(t.name for t in tools if t.mutates)
        readers = sorted(t.name for t in tools if not t.mutates)
        while len(out) < count and (writers or readers):
            pool = writers if (writers and (self.rng.random() < 0.8 or not readers)) else readers
            name = self.rng.choice(pool)
            pool.remove(name)
            out.append(name)
        return out

    def candidates(self, goal: ToolSpec) -> list[ToolSpec]:
        """Read tools that can feed the goal, nearest first (along data edges, up to 3 hops back)."""
        tools = {t.name: t for t in self.spec.tools if t.name in self.graph}
        seen = {goal.name}
        frontier = [goal.name]
        out: list[ToolSpec] = []
        for _ in range(3):
            layer: list[str] = []
            for name in frontier:
                for src in sorted({u for u, _, k in self.graph.in_edges(name, keys=True) if k == "data"}):
                    if src in seen or tools[src].mutates:
                        continue
                    seen.add(src)
                    layer.append(src)
            out.extend(tools[n] for n in layer)
            frontier = layer
        return out[:CANDIDATE_READERS]

    def known_facts(self) -> dict[str, Any]:
        """What the user has given so far (arguments of earlier goals no result supplied): a
        later goal of the same customer reuses them."""
        facts: dict[str, Any] = {}
        for g in self.goals:
            for i in range(g.start, g.end):
                for name, value in self.steps[i].args.items():
                    if name not in g.fed.get(i, set()) and not isinstance(value, list | dict):
                        facts.setdefault(name, value)
        return facts

    async def write_goal(self, index: int, tool_name: str) -> tuple[list[prog.Step], Any] | None:
        """The chain writer's program for goal ``index`` ending in ``tool_name``, realized on
        the state after the goals so far (not committed); None when every round failed."""
        goal = self.spec.tool(tool_name)
        assert goal is not None
        candidates = self.candidates(goal)
        tables = sorted({t for tool in (goal, *candidates) for t in (*tool.reads, *tool.writes)})
        lo, hi = self.ctx.config.chain_min, self.ctx.config.chain_max
        feedback: list[str] = []
        for round_ in range(WRITER_ROUNDS):
            context = {
                "domain": {"name": self.spec.name, "description": self.spec.description,
                           "tables": [msgspec.to_builtins(t) for t in self.spec.tables if t.name in tables]},
                "goal": index, "goal_tool": msgspec.to_builtins(goal),
                "candidates": [msgspec.to_builtins(t) for t in candidates],
                "length": [lo, hi], "known": canonical(self.known_facts()), "round": round_, "feedback": feedback,
            }
            try:
                gen = await self.ctx.llm.generate(
                    self.stream, rendered_request("chain_writer", prompts.CHAIN_WRITER, context,
                                                  f"Write the program for goal {index + 1}, ending with {goal.name}."),
                    ChainAnswer, cause=self.cause)
            except LlmExhaustedError as exc:
                feedback = [str(exc)[:300]]
                continue
            problem = ""
            steps: list[prog.Step] = []
            try:
                steps = prog.parse(gen.value.program, self.spec)
                if steps[-1].tool != goal.name:
                    raise prog.ProgramError(f"the program must end with {goal.name}, not {steps[-1].tool}")
            except prog.ProgramError as exc:
                problem = str(exc)
            realized = None
            if not problem:
                try:
                    realized = await realize_goal(self.spec, steps, self.code, self.ctx.sandbox, self.rng,
                                                  self.session("realize"), self.initial, self.golden, terms=self.terms)
                    if self.golden:
                        renames = await self.holds(realized.initial)
                        if renames is None:
                            raise ExpansionFailed("story_changed", "realizing it would change what the earlier goals do")
                        realized.renames = renames
                except ExpansionFailed as exc:
                    problem = f"{exc.reason}: {exc.detail}"[:400]
            await self.emit(ChainWritten(goal=index, goal_tool=goal.name, program=gen.value.program, round=round_,
                                         problem=problem), "chain_writer", cause=gen.ref)
            if not problem:
                return steps, realized
            feedback = [problem]
        return None

    async def commit(self, tool_name: str, realized: Any) -> None:
        """Make a realized goal part of the task: its steps after the others, its state, its tools in H."""
        if realized.renames:
            self.steps = [ChainStep(tool=s.tool, args=rename(s.args, realized.renames)) for s in self.steps]
            for g in self.goals:
                g.picks = {i: (t, realized.renames.get(k, k)) for i, (t, k) in g.picks.items()}
            self.probes = {n: rename(a, realized.renames) for n, a in self.probes.items()}
        start = len(self.steps)
        self.initial = realized.initial
        self.steps.extend(realized.steps)
        goal = Goal(tool=tool_name, start=start, end=len(self.steps),
                    fed={start + i: set(v) for i, v in realized.fed.items()},
                    picks={start + i: p for i, p in realized.picks.items()})
        self.goals.append(goal)
        await self.run_golden()
        for s in realized.steps:
            self.env.add(s.tool)
            self.probes.setdefault(s.tool, dict(s.args))
        await self.emit(GoalRealized(goal=len(self.goals) - 1, goal_tool=tool_name, steps=list(realized.steps),
                                     facts=canonical({k: v for i, s in enumerate(realized.steps)
                                                      for k, v in s.args.items() if k not in realized.fed.get(i, set())})),
                        "expander")

    async def grow(self) -> None:
        if len(self.env) >= self.ctx.config.min_env_tools:
            return
        before = sorted(self.env)
        joined, probes = await grow_environment(self.spec, self.graph, self.code, self.ctx.sandbox, self.rng,
                                                self.session("grow"), self, self.env, self.ctx.config.min_env_tools,
                                                self.terms)
        self.probes.update(probes)
        await self.emit(EnvironmentExpanded(tools=sorted(self.env), joined=joined,
                                            complexity=round(complexity(self.graph, self.env), 4),
                                            seeds=before), "expander")

    # ------------------------------------------------------------------ the story so far
    async def holds(self, state: DbState) -> dict[str, str] | None:
        """Whether every goal still runs on ``state`` as it did (see :func:`.realize.same_story`)."""
        return await same_story(self.ctx.sandbox, self.code, state, self.golden, self.session("story"), self.picks,
                                self.terms)

    async def accept(self, state: DbState, renames: dict[str, str]) -> None:
        """Take ``state`` as the initial state; new records' keys moved by ``renames``."""
        self.initial = state
        if renames:
            self.steps = [ChainStep(tool=s.tool, args=rename(s.args, renames)) for s in self.steps]
            for g in self.goals:
                g.picks = {i: (t, renames.get(k, k)) for i, (t, k) in g.picks.items()}
            self.probes = {n: rename(a, renames) for n, a in self.probes.items()}
            # The story held modulo these keys: the executed calls are the old ones renamed (a
            # list may have grown meanwhile; the golden chain is executed again at the end).
            self.golden = [GoldenStep(tool=g.tool, args=rename(g.args, renames), result=rename(g.result, renames),
                                      delta=[RecordChange(table=c.table, key=renames.get(c.key, c.key),
                                                          before=rename(c.before, renames), after=rename(c.after, renames))
                                             for c in g.delta], clock=g.clock)
                           for g in self.golden]

    async def run_golden(self) -> None:
        outcomes = await run_chain(self.ctx.sandbox, self.code, self.initial, self.steps, self.session("golden"),
                                   self.terms)
        if len(outcomes) < len(self.steps) or not outcomes[-1].ok:
            raise ExpansionFailed("chain_failed", "the goals do not run together")
        self.golden = golden_steps(self.steps, outcomes)

    # ------------------------------------------------------------------ the gate
    async def next_goal(self) -> bool:
        """Add one more goal (gated beyond ``min_goals``); False when none is added."""
        cfg = self.ctx.config
        index = len(self.goals)
        trials: list[tuple[str, list[prog.Step], Any]] = []
        names = self.goal_tools(cfg.gate_k, prefer_unused=True)
        for name in names:
            found = await self.write_goal(index, name)
            if found is not None:
                trials.append((name, found[0], found[1]))
                if index < cfg.min_goals:
                    break  # below the floor, the first that realizes will do
        if index >= cfg.min_goals:
            unused = sum(1 for t in self.spec.tools if t.name in self.graph and t.name not in self.env)
            c = complexity(self.graph, self.env)
            oracle: list[int] = []
            if cfg.gate_feasibility == "oracle":
                g, oracle = await self.oracle_feasibility(index, names, trials)
                prompt = prompts.GATE_ORACLE
            else:
                g = len(trials) / max(1, len(names))
                prompt = prompts.GATE
            context = {"unused": unused, "complexity": round(c, 4), "feasibility": round(g, 4), "goals": index,
                       "env_tools": len(self.env), "tau": cfg.gate_tau}
            if oracle:
                context["rollouts"] = len(oracle)
            try:
                gen = await self.ctx.llm.generate(
                    self.stream, rendered_request("gate", prompt, context, "Should another goal be added?"),
                    GateAnswer, cause=self.cause)
                p, reason, ref = gen.value.p, gen.value.reason, gen.ref
            except LlmExhaustedError as exc:
                p, reason, ref = 0.0, f"the gate gave no answer: {str(exc)[:200]}", self.cause
            more = p >= cfg.gate_tau and bool(trials)
            await self.emit(GateDecided(unused=unused, complexity=round(c, 4), feasibility=round(g, 4), p=p, more=more,
                                        reason=reason[:300], oracle=oracle), "gate", cause=ref)
            if not more:
                return False
        if not trials:
            return False
        name, _, realized = trials[0]
        await self.commit(name, realized)
        return True

    async def oracle_feasibility(self, index: int, names: list[str],
                                 trials: list[tuple[str, list[prog.Step], Any]]) -> tuple[float, list[int]]:
        """g(D): the success rate of the oracle policy over ``gate_k`` rollouts, rollout ``r``
        on candidate goal ``names[r % len(names)]`` (a candidate whose chain could not be made
        to run counts as a failed rollout without one); and where each rollout ended in the
        task's stream (the positions of its ``OracleEnded``)."""
        k = self.ctx.config.gate_k
        if not names:
            return 0.0, []
        realized = {name: (steps, r) for name, steps, r in trials}
        cases: dict[str, OracleCase | None] = {}
        successes, ends = 0, []
        for r in range(k):
            name = names[r % len(names)]
            if name not in cases:
                cases[name] = await self.oracle_case(index, name, *realized[name]) if name in realized else None
            case = cases[name]
            if case is None:
                ref = await self.emit(OracleEnded(goal=index, rollout=r, success=False, reason="no_chain", tool_calls=0,
                                                  detail=f"no chain ending in {name} could be made to run"), "gate")
                ends.append(ref.n)
                continue
            ok, ref = await oracle_rollout(self.ctx, self.domain, self.stream, self.tid, case, r, cause=self.cause)
            self.cause = ref
            successes += ok
            ends.append(ref.n)
        return successes / k, ends

    async def oracle_case(self, index: int, name: str, steps: list[prog.Step], realized: Any) -> OracleCase | None:
        """The candidate goal as an oracle sees it: the state it starts from (the earlier goals
        run on its initial state), its expected final state and result, and its program with
        the literals it was realized with; None when the goals no longer run together."""
        prefix = [ChainStep(tool=s.tool, args=rename(s.args, realized.renames)) for s in self.steps]
        chain = prefix + list(realized.steps)
        outcomes = await run_chain(self.ctx.sandbox, self.code, realized.initial, chain, self.session("oracle"),
                                   self.terms)
        if len(outcomes) < len(chain) or not outcomes[-1].ok:
            return None
        golden = golden_steps(chain, outcomes)
        start = final_state(realized.initial, golden[:len(prefix)])
        expected = final_state(start, golden[len(prefix):])
        solution = prog.render([prog.Step(tool=s.tool, refs=s.refs, name=s.name,
                                          args={k: v for k, v in c.args.items() if k not in realized.fed.get(i, set())})
                                for i, (s, c) in enumerate(zip(steps, realized.steps))])
        tools = tuple(sorted(self.env | {c.tool for c in realized.steps}))
        return OracleCase(goal=index, goal_tool=name, solution=solution, steps=len(steps), state=start,
                          expected=expected, expected_result=golden[-1].result, tools=tools)

    # ------------------------------------------------------------------ the world around the goals
    async def take_if_story_holds(self, state: DbState) -> bool:
        """Take ``state`` if every goal still runs on it as it did."""
        renames = await self.holds(state)
        if renames is None:
            return False
        await self.accept(state, renames)
        return True

    async def add_distractors(self) -> list[tuple[str, str]]:
        """Up to ``distractors`` look-alikes of each goal's target record, each kept only where
        every goal still runs as before (all of them checked at once first, then one by one)."""
        made: list[tuple[int, int]] = [(gi, n) for gi in range(len(self.goals)) for n in range(self.ctx.config.distractors)]
        state, kept = self.initial, []
        for gi, n in made:
            out = self._distractor(state, gi, n)
            if out is not None:
                state, where = out
                kept.append(where)
        if kept and await self.take_if_story_holds(state):
            return kept
        kept = []
        for gi, n in made:
            out = self._distractor(self.initial, gi, n)
            if out is not None and await self.take_if_story_holds(out[0]):
                kept.append(out[1])  # the next look-alike is added on top of the ones kept
        return kept

    def _distractor(self, state: DbState, gi: int, n: int) -> tuple[DbState, tuple[str, str]] | None:
        goal = self.goals[gi]
        tool = self.spec.tool(goal.tool)
        assert tool is not None
        return make_distractor(self.spec, tool, self.steps[goal.end - 1].args, state, self.rng, n)

    async def add_background(self) -> int:
        """About ``background_rows`` more records per table; a table whose records would change a
        goal's story gets none."""
        rows = self.ctx.config.background_rows
        if not rows:
            return 0
        state, added = populate(self.spec, self.initial, self.rng, rows)
        if added and await self.take_if_story_holds(state):
            return added
        total = 0
        for table in self.spec.tables:
            state, added = populate(self.spec, self.initial, self.rng, rows, only=table.name)
            if added and await self.take_if_story_holds(state):
                total += added
        return total

    async def complete(self) -> dict[str, dict[str, Any]]:
        """Interaction completeness: every tool of H run on the initial state with the
        arguments it joined with, in one session (reads first, then changes, by name); a tool
        that fails or comes back empty leaves H (a goal's tool stays: its goal proves it).
        Returns the probes that ran meaningfully, in that order."""
        def order(name: str) -> tuple[bool, str]:
            tool = self.spec.tool(name)
            return (bool(tool and tool.mutates), name)

        passed: dict[str, dict[str, Any]] = {}
        dropped: set[str] = set()
        session = self.session("complete")
        async with sandbox_session(self.ctx.sandbox, self.code, self.initial, session, self.terms):
            for name in sorted((n for n in self.probes if n in self.env), key=order):
                outcome = await self.ctx.sandbox.call(session, name, self.probes[name])
                if outcome.ok and outcome.result not in (None, [], {}):
                    passed[name] = self.probes[name]
                else:
                    dropped.add(name)
        self.env -= dropped - {s.tool for s in self.steps}
        return passed

async def instantiate_task(ctx: RunContext, domain: DomainView, tid: str) -> bool:
    """Build task ``tid`` of ``domain`` (every step an event in its stream); True when kept.

    Awaits the LLM calls and sandbox runs it makes; on cancellation the stream is left
    unfinished and the task is built again from the start by the next run."""
    assert domain.spec is not None
    cfg = ctx.config
    stream = ctx.stream(task_stream(tid))
    b = _Builder(ctx=ctx, domain=domain, tid=tid, stream=stream, rng=rng_for(ctx.seed, "task", tid))
    spec = b.spec
    first = b.goal_tools(3, prefer_unused=False)
    await b.emit(ChainSampled(domain=spec.name, tools=first[:1]), "sampler")

    async def discard(reason: str, detail: str) -> bool:
        await b.emit(TaskDiscarded(task_id=tid, domain=spec.name, reason=reason, detail=detail[:500]), "engine")
        stream.finish()
        return False

    try:
        for name in first:  # the seed goal: the first sampled tool whose chain realizes
            found = await b.write_goal(0, name)
            if found is not None:
                await b.commit(name, found[1])
                break
        if not b.goals:
            return await discard("unrealizable", f"no chain ending in {', '.join(first)} could be made to run")
        await b.grow()
        failures = 0
        while len(b.goals) < cfg.max_goals and failures < 2:
            before = len(b.goals)
            if not await b.next_goal():
                if before >= cfg.min_goals:
                    break
                failures += 1
            await b.grow()
        if len(b.goals) < cfg.min_goals:
            return await discard("too_few_goals", f"{len(b.goals)} goals realized, {cfg.min_goals} wanted")
        needed = sorted((t, k) for t, rows in b.initial.items() for k in rows)  # what the goals need
        distractors = await b.add_distractors()
        background = await b.add_background()
        probes = await b.complete()
    except ExpansionFailed as exc:
        return await discard(exc.reason, exc.detail)
    if len(b.env) < cfg.min_env_tools:
        return await discard("small_environment", f"{len(b.env)} tools usable on the state, {cfg.min_env_tools} wanted")

    # The golden chain, executed once from the final initial state.
    outcomes = await run_chain(ctx.sandbox, b.code, b.initial, b.steps, b.session("golden"), b.terms)
    if len(outcomes) < len(b.steps) or not outcomes[-1].ok:
        bad = outcomes[-1]
        return await discard("chain_failed", f"{b.steps[len(outcomes) - 1].tool}: {bad.error.kind}: {bad.error.message}")
    golden = golden_steps(b.steps, outcomes)
    await b.emit(TaskInstantiated(domain=spec.name, initial_state=b.initial, needed=needed, distractors=distractors,
                                  steps=b.steps, goal_ends=[g.end for g in b.goals], env_tools=sorted(b.env),
                                  background=background,
                                  env_probes=probes), "expander")

    # What the user holds for each goal; what an information goal must be told (known before
    # the writer writes, so the requests ask for it); the requests in the customer's words.
    request_facts = [_goal_facts(spec, b, g, distractors) for g in b.goals]
    facts: dict[str, Any] = {}
    for f in request_facts:
        for k, v in f.items():
            facts.setdefault(k, v)
    must_tell: list[list[str]] = []
    for i, g in enumerate(b.goals):
        tool = spec.tool(g.tool)
        must_tell.append(_expected_answers(golden[g.end - 1].result, request_facts[i]) if tool and not tool.mutates else [])
    goals_ctx = [{"goal_tool": g.tool, "steps": [{"tool": s.tool, "args": s.args} for s in b.steps[g.start:g.end]],
                  "user_facts": canonical(request_facts[i]), "targets": canonical(_targets(spec, b, g)),
                  "must_tell": must_tell[i]}
                 for i, g in enumerate(b.goals)]
    context = {"domain": msgspec.to_builtins(spec), "goals": goals_ctx, "user_facts": canonical(facts)}
    try:
        gen = await ctx.llm.generate(
            stream, rendered_request("task_writer", prompts.TASK_WRITER, context, "Write the customer's requests."),
            InstructionAnswer, cause=b.cause)
    except LlmExhaustedError as exc:
        return await discard("writer_failed", str(exc))
    requests = list(gen.value.requests)
    if len(requests) != len(b.goals):
        return await discard("writer_failed", f"{len(requests)} requests written for {len(b.goals)} goals")
    await b.emit(InstructionWritten(domain=spec.name, instruction=gen.value.instruction, user_facts=facts,
                                    persona=gen.value.persona, requests=requests, request_facts=request_facts),
                 "task_writer", cause=gen.ref)

    final = final_state(b.initial, golden)
    answers = list(dict.fromkeys(a for tell in must_tell for a in tell))
    await b.emit(GoldenChainExecuted(steps=golden, final_digest=state_digest(final), expected_answers=answers), "verifier")
    unchanged = state_digest(final) == state_digest(b.initial)
    mutating = [g for g in b.goals if (t := spec.tool(g.tool)) is not None and t.mutates]
    if mutating and unchanged:
        return await discard("no_effect", "the goals change nothing")
    if unchanged and not answers:  # doing nothing would score 1: the reward could not tell
        return await discard("nothing_to_check", "the goals change nothing and require no answer")
    await b.emit(TaskKept(task_id=tid, domain=spec.name), "engine")
    stream.finish()
    return True


def _goal_facts(spec: DomainSpec, b: _Builder, goal: Goal, distractors: list[tuple[str, str]]) -> dict[str, Any]:
    """What the user holds for one goal: the arguments no earlier result supplies (ids only
    where nothing else tells the record apart), and for a record picked from a list the
    field that tells it from its look-alikes."""
    facts: dict[str, Any] = {}
    for i in range(goal.start, goal.end):
        for name, value in b.steps[i].args.items():
            if value is None or name in goal.fed.get(i, set()):
                continue  # nothing to hold, or an earlier result supplies it
            if i == goal.end - 1:
                facts[name] = value  # the goal call's own value: what the final state is checked against
            else:
                facts.setdefault(name, value)
    for _, (table, key) in sorted(goal.picks.items()):
        same_table = [k for t, k in distractors if t == table]
        facts.update(identifying_facts(spec, table, key, b.initial, same_table))
    return facts


def _targets(spec: DomainSpec, b: _Builder, goal: Goal) -> dict[str, Any]:
    """The record a goal is about (for the writer's wording): the last one picked from a list,
    else the goal call's own record."""
    for _, (table, key) in sorted(goal.picks.items(), reverse=True):
        return {"table": table, "key": key, "record": b.initial.get(table, {}).get(key)}
    args = b.steps[goal.end - 1].args
    for name, value in args.items():
        for table in spec.tables:
            if table.primary_key == name and str(value) in b.initial.get(table.name, {}):
                return {"table": table.name, "key": str(value), "record": b.initial[table.name][str(value)]}
    return {}


def _expected_answers(result: Any, facts: dict[str, Any]) -> list[str]:
    """For information goals: the values the agent must tell the user (up to two)."""
    if isinstance(result, list) and len(result) != 1:
        return []  # a listing of several: what to tell is the agent's choice, the state says nothing
    item = result[0] if isinstance(result, list) else result
    if not isinstance(item, dict):
        return []
    known = {str(v) for v in facts.values()}
    out = []
    for name, value in sorted(item.items()):
        if isinstance(value, bool) or value is None or isinstance(value, dict | list):
            continue
        text = str(canonical(value))
        if text not in known and not name.endswith("_id"):
            out.append(text)
        if len(out) == 2:
            break
    return out

