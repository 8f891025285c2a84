"""A task's world, built around its chains: goals realized, the environment grown, a population.

- :func:`realize_goal`: one goal's chain program runs in the sandbox after the goals before
  it; whenever a step cannot run (a pre-condition fails, an earlier list returned nothing
  to bind), the contract solver patches the task's *initial* state so it will, and the
  chains run again from the start. The result: the concrete calls, and an initial state on
  which every goal so far succeeds in order.
- :func:`grow_environment`: breadth-first over the dependency graph from the tools the
  chains use; a tool joins when its inputs can be bound from the state (the solver picks
  its arguments, patching the initial state where it must) and it then runs successfully
  on that state, and the goals still tell the same story. Until the environment holds
  ``min_tools`` tools (topped up from the rest of the domain when the graph's
  neighbourhood runs dry).
- :func:`populate`: background records in every table (valid under the schema: keys,
  references, uniqueness), so listings and searches return realistic result sets.

Everything is seeded and runs its calls in throwaway sandbox sessions.
"""

from __future__ import annotations

import copy
import random
from typing import Any, Protocol

import attrs
import networkx as nx

from scaleenv._model import program as prog
from scaleenv._model.contracts import check_pre
from scaleenv._model.dbgen import make_record, table_order
from scaleenv._model.satisfy import satisfy
from scaleenv._model.state import apply_delta, canonical, compute_delta, record_changes
from scaleenv._store.events.tasks import ChainStep, GoldenStep
from scaleenv._store.specs import DbState, DomainSpec, ToolSpec

from .expansion import NO_TERMS, ExpansionFailed, SessionTerms, _key_of, _link, run_chain, sandbox_session


@attrs.define
class Realized:
    initial: DbState
    steps: list[ChainStep]  # this goal's concrete calls
    picks: dict[int, tuple[str, str]]  # step -> (table, key) a list reference picked
    fed: dict[int, set[str]]  # step -> parameters an earlier result supplied
    renames: dict[str, str] = attrs.field(factory=dict)  # keys the earlier goals' new records moved to


def _patch(initial: DbState, before: DbState, after: DbState) -> DbState | None:
    """``initial`` with what the solver changed between ``before`` and ``after`` (a pre-state):
    records it created are added; records it changed must be ones the initial state holds as
    they are in ``before`` (else the change cannot be made there: None)."""
    out = copy.deepcopy(initial)
    for change in compute_delta(before, after):
        rows = out.setdefault(change.table, {})
        if change.before is None:
            if change.after is not None:
                rows[change.key] = change.after
            continue
        if canonical(rows.get(change.key)) != canonical(change.before):
            return None
        if change.after is None:
            rows.pop(change.key, None)
        else:
            rows[change.key] = change.after
    return out


async def realize_goal(spec: DomainSpec, steps: list[prog.Step], code: dict[str, str], sandbox: Any, rng: random.Random,
                       session: str, initial: DbState, prefix: list[GoldenStep], *, iterations: int = 12,
                       terms: SessionTerms = NO_TERMS) -> Realized:
    """Run the earlier goals' calls (``prefix``, as executed) and then the goal's program on
    ``initial``, patching it until they all succeed. Records the earlier calls create may get
    new keys on the patched state (``Realized.renames``). Each attempt's session opens with
    ``terms`` (a step that breaks an integrity constraint fails the goal: ``step_failed``)."""
    tools = {t.name: t for t in spec.tools}
    fixed: list[dict[str, Any]] = [dict(s.args) for s in steps]
    # The state after the earlier goals: run once, then patched like the initial state (a
    # patch only adds records or changes ones the earlier goals left alone). The caller
    # checks the earlier goals on the final initial state (``same_story``).
    after_prefix: DbState | None = None
    renames: dict[str, str] = {}
    for _ in range(iterations):
        start = initial if after_prefix is None else after_prefix
        async with sandbox_session(sandbox, code, start, session, terms):  # one session per attempt
            state = start
            if after_prefix is None:
                for p in prefix:
                    o = await sandbox.call(session, p.tool, rename(p.args, renames))
                    if not o.ok:
                        raise ExpansionFailed("prefix_failed", f"the earlier goals no longer run: {o.error.message[:200]}")
                    delta = record_changes(o.delta)
                    renames.update({x.key: y.key for x, y in zip(_created(p.delta), _created(delta)) if x.key != y.key})
                    state = apply_delta(state, delta)
                after_prefix = state
            results: list[Any] = []
            concrete: list[ChainStep] = []
            picks: dict[int, tuple[str, str]] = {}
            fed: dict[int, set[str]] = {}
            restart = False
            for i, step in enumerate(steps):
                tool = tools[step.tool]
                try:
                    args = prog.resolve(prog.Step(tool=step.tool, args=fixed[i], refs=step.refs), results)
                except prog.Unresolved as exc:
                    s_state = _bind_empty(spec, tool, exc, steps, concrete, state, rng)
                    initial, after_prefix = _patch_both(initial, after_prefix, state, s_state, tool.name)
                    restart = True
                    break
                fed[i] = set(step.refs)
                for param, ref in step.refs.items():
                    if any(isinstance(k, int) for k in ref.path) and isinstance(results[ref.step], list):
                        element = results[ref.step][next(k for k in ref.path if isinstance(k, int))]
                        found = _key_of(spec, tools[steps[ref.step].tool], element) if isinstance(element, dict) else None
                        if found:
                            picks[ref.step] = found
                missing = [p.name for p in tool.params if p.required and p.name not in args]
                if missing or check_pre(tool, args, state):
                    solved = satisfy(spec, tool, state, rng, args)
                    if solved is None:
                        raise ExpansionFailed("unsatisfiable", f"pre-conditions of {tool.name} cannot hold with {args}")
                    s_args, s_state = solved
                    initial, after_prefix = _patch_both(initial, after_prefix, state, s_state, tool.name)
                    fixed[i] = {k: v for k, v in s_args.items() if k not in fed[i]}
                    restart = True
                    break
                out = await sandbox.call(session, tool.name, args)
                if not out.ok:
                    raise ExpansionFailed("step_failed", f"{tool.name}({args}) failed: {out.error.kind}: "
                                                         f"{out.error.message[:200]}")
                results.append(out.result)
                state = apply_delta(state, record_changes(out.delta))
                concrete.append(ChainStep(tool=tool.name, args=args))
        if not restart:
            return Realized(initial=initial, steps=concrete, picks=picks, fed=fed, renames=renames)
    raise ExpansionFailed("no_convergence", f"the chain did not converge in {iterations} iterations")


def _patch_both(initial: DbState, after_prefix: DbState, before: DbState, after: DbState,
                tool: str) -> tuple[DbState, DbState]:
    """The solver's changes (``before`` -> ``after``) made to the initial state and to the
    state after the earlier goals alike."""
    patched, patched_after = _patch(initial, before, after), _patch(after_prefix, before, after)
    if patched is None or patched_after is None:
        raise ExpansionFailed("unsatisfiable", f"{tool} needs a change to a record an earlier goal made")
    return patched, patched_after


def _bind_empty(spec: DomainSpec, tool: ToolSpec, exc: prog.Unresolved, steps: list[prog.Step], concrete: list[ChainStep],
                state: DbState, rng: random.Random) -> DbState:
    """An earlier list gave nothing to bind: ``state`` with a record the step needs, listed by that list."""
    lister = spec.tool(steps[exc.ref.step].tool)
    param = tool.param(exc.param)
    if lister is None or param is None or param.ref is None:
        raise ExpansionFailed("unbindable", f"{exc}")
    solved = satisfy(spec, tool, state, rng, {})
    if solved is None or exc.param not in solved[0]:
        raise ExpansionFailed("unsatisfiable", f"{tool.name} after an empty {lister.name}")
    s_args, s_state = solved
    if not _link(spec, lister, concrete[exc.ref.step].args, param.ref, str(s_args[exc.param]), s_state):
        raise ExpansionFailed("unbindable", f"{lister.name} cannot list a record for {tool.name}.{exc.param}")
    return s_state


def rename(value: Any, renames: dict[str, str]) -> Any:
    """``value`` with every string that is an old key replaced by its new key."""
    if not renames:
        return value
    if isinstance(value, str):
        return renames.get(value, value)
    if isinstance(value, list):
        return [rename(v, renames) for v in value]
    if isinstance(value, dict):
        return {k: rename(v, renames) for k, v in value.items()}
    return value


def _created(delta: list[Any]) -> list[Any]:
    return [c for c in delta if c.before is None and c.after is not None]


async def same_story(sandbox: Any, code: dict[str, str], state: DbState, golden: list[GoldenStep], session: str,
                     picks: dict[int, tuple[str, str]] | None = None,
                     terms: SessionTerms = NO_TERMS) -> dict[str, str] | None:
    """Whether the golden calls run on ``state`` as they did: each succeeds, each single result
    and each change is the same; a list may grow, and still holds what the chain picked from it.

    A record a call creates may get another key than it did (tools often number new records
    after the ones a table holds): the story is the same modulo those keys. Returns the
    renaming (old key -> new key, {} when none), or None when the story differs. Stops at the
    first call that differs."""
    renames: dict[str, str] = {}
    async with sandbox_session(sandbox, code, state, session, terms):
        for i, g in enumerate(golden):
            o = await sandbox.call(session, g.tool, rename(g.args, renames))
            if not o.ok:
                return None
            delta = record_changes(o.delta)
            made, got = _created(g.delta), _created(delta)
            if len(made) != len(got) or any(x.table != y.table for x, y in zip(made, got)):
                return None
            renames.update({x.key: y.key for x, y in zip(made, got) if x.key != y.key})
            pick = (picks or {}).get(i)
            if pick is not None:
                pick = (pick[0], renames.get(pick[1], pick[1]))
            if not _same_outcome(g, o.result, delta, pick, renames):
                return None
    return renames


def _same_outcome(g: GoldenStep, result: Any, delta: list[Any], pick: tuple[str, str] | None,
                  renames: dict[str, str]) -> bool:
    expected = rename(g.result, renames)
    if isinstance(expected, list):
        if not isinstance(result, list):
            return False
        if pick is not None:
            if not any(isinstance(e, dict) and pick[1] in {str(v) for v in e.values()} for e in result):
                return False
        elif not all(e in result for e in expected):
            return False
    elif canonical(expected) != canonical(result):
        return False
    return canonical([[c.table, c.key, c.before, c.after] for c in delta]) == \
        canonical([[c.table, renames.get(c.key, c.key), rename(c.before, renames), rename(c.after, renames)] for c in g.delta])


def complexity(graph: nx.MultiDiGraph, tools: set[str], saturation: float = 50.0, weight: float = 0.5) -> float:
    """c(H) = (|V_H| + weight * |E_H|) / saturation over the subgraph of ``tools`` (the paper's 0.5 and 50)."""
    sub = graph.subgraph(tools)
    return (sub.number_of_nodes() + weight * sub.number_of_edges()) / saturation


class Story(Protocol):
    """The task being built, as growth sees it: its initial state, whether a changed state
    keeps every goal's story (the renaming of new records' keys, or None), and taking one."""

    initial: DbState

    async def holds(self, state: DbState) -> dict[str, str] | None: ...

    async def accept(self, state: DbState, renames: dict[str, str]) -> None: ...


async def grow_environment(spec: DomainSpec, graph: nx.MultiDiGraph, code: dict[str, str], sandbox: Any,
                           rng: random.Random, session: str, story: Story, env: set[str],
                           min_tools: int, terms: SessionTerms = NO_TERMS) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Grow ``env`` in place (breadth first over the graph from its tools) until it holds
    ``min_tools`` tools, the state patched through ``story``. Returns the tools that joined,
    in order, and the arguments each ran with (its probe).

    A layer is tried as a batch first (the solver binds each tool's inputs on the state the
    ones before it left, the probes run in one session, reads first, and the goals' story
    is checked once); when the batch changes the story, tool by tool. Probe sessions open
    with ``terms``: a probe that breaks an integrity constraint does not join."""
    tools = {t.name: t for t in spec.tools if t.name in graph}
    joined: list[str] = []
    probes: dict[str, dict[str, Any]] = {}
    frontier = sorted(env)
    seen = set(env)
    while len(env) < min_tools:
        layer = sorted({n for t in frontier if t in graph for n in (*graph.successors(t), *graph.predecessors(t))} - seen)
        if not layer:  # the neighbourhood ran dry: top up from the rest of the domain
            layer = sorted(set(tools) - seen)
            if not layer:
                break
        rng.shuffle(layer)
        layer = layer[:max(0, min_tools - len(env)) * 2]  # enough to fill H if half of them join
        seen.update(layer)
        frontier = []
        ran = await _try_batch(spec, [tools[n] for n in layer], code, sandbox, rng, session, story, terms)
        if ran is None:
            ran = {}
            for name in layer:
                args = await _try_tool(spec, tools[name], code, sandbox, rng, session, story, terms)
                if args is not None:
                    ran[name] = args
        for name in layer:
            if name in ran and len(env) < min_tools:
                env.add(name)
                joined.append(name)
                probes[name] = ran[name]
                frontier.append(name)
    return joined, probes


def _meaningful(outcome: Any) -> bool:
    return bool(outcome.ok) and outcome.result not in (None, [], {})


async def _try_batch(spec: DomainSpec, layer: list[ToolSpec], code: dict[str, str], sandbox: Any, rng: random.Random,
                     session: str, story: Story, terms: SessionTerms) -> dict[str, dict[str, Any]] | None:
    """tool -> its arguments, for the tools of a whole layer that ran meaningfully on the
    state they need (taken through ``story``), or None when that state changes the story."""
    state = story.initial
    planned: list[tuple[ToolSpec, dict[str, Any]]] = []
    for tool in layer:
        solved = satisfy(spec, tool, state, rng, {})
        if solved is not None:
            args, state = solved
            planned.append((tool, args))
    planned.sort(key=lambda p: p[0].mutates)  # reads first: a change must not hide what they show
    ran: dict[str, dict[str, Any]] = {}
    async with sandbox_session(sandbox, code, state, session, terms):
        for tool, args in planned:
            if _meaningful(await sandbox.call(session, tool.name, args)):
                ran[tool.name] = args
    if state != story.initial:
        renames = await story.holds(state)
        if renames is None:
            return None
        await story.accept(state, renames)
        ran = {n: rename(a, renames) for n, a in ran.items()}
    return ran


async def _try_tool(spec: DomainSpec, tool: ToolSpec, code: dict[str, str], sandbox: Any, rng: random.Random,
                    session: str, story: Story, terms: SessionTerms) -> dict[str, Any] | None:
    """The arguments with which ``tool`` runs and returns something on the initial state
    (patched by the solver when needed, if the goals still tell the same story there)."""
    solved = satisfy(spec, tool, story.initial, rng, {})
    if solved is None:
        return None
    args, state = solved
    out = await run_chain(sandbox, code, state, [ChainStep(tool=tool.name, args=args)], session, terms)
    if not out or not _meaningful(out[-1]):
        return None
    if state != story.initial:
        renames = await story.holds(state)
        if renames is None:
            return None
        await story.accept(state, renames)
        args = rename(args, renames)
    return args


def populate(spec: DomainSpec, initial: DbState, rng: random.Random, rows: int,
             only: str | None = None) -> tuple[DbState, int]:
    """``initial`` with about ``rows`` more records per table (or only in table ``only``),
    referencing existing ones, a table's unique columns staying unique; returns the new
    state and how many records were added."""
    out = copy.deepcopy(initial)
    added = 0
    for table in table_order(spec):
        if only is not None and table.name != only:
            continue
        have = out.setdefault(table.name, {})
        want = max(0, rows + rng.randint(-(rows // 3), rows // 3)) if rows else 0
        for _ in range(want):
            key, record = make_record(table, out, rng, domain=spec)
            if any(f.ref and f.required and record.get(f.name) is None for f in table.fields):
                continue  # nothing to point at: no record rather than a dangling one
            have[key] = record
            added += 1
    return out, added
