"""The data of every page, as JSON-ready dicts: what ``/api/...`` returns and the pages draw.

Each function reads only what its page shows: the run page and the lists read the live
:class:`~scaleenv._ui.index.RunIndex`; a domain reads its ``domain/`` and ``tool/``
streams; a tool its audit (:func:`scaleenv._replay.audit.tool_audit`, as ``scaleenv
audit``); a task its ``task/`` stream; an episode its stream and its task's
(:class:`scaleenv._replay.timeline.EpisodeReplay`, as ``scaleenv replay --episode``).

Specs, task views and events are passed on whole (``msgspec.to_builtins``), not picked
field by field, so a field the data model gains shows up in the JSON and on the page
without a change here. Errors are :class:`NotFound` (404) and :class:`BadParam` (400),
each with a one-line message naming what was wrong.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import attrs
import msgspec

from scaleenv._model.contracts import render as render_condition
from scaleenv._replay.audit import tool_audit
from scaleenv._replay.checks import Finding
from scaleenv._replay.episode import fold as fold_episode
from scaleenv._replay.episode_state import task_view
from scaleenv._replay.projection import fold
from scaleenv._replay.timeline import EpisodeReplay, UnknownEpisode, step_json
from scaleenv._store.events.llm import LlmCalled, LlmExhausted
from scaleenv._store.log import Log
from scaleenv._store.record import Record
from scaleenv._streams import domain_stream, episode_stream, slot_of, task_stream, tool_stream, tool_streams_of

from .index import EpisodeRow, Follower, RunIndex, TaskRow
from .layout import layered

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class NotFound(LookupError):
    """No such domain, tool, task or episode (404); the message names some that exist."""


class BadParam(ValueError):
    """A query parameter that cannot be used (400); the message names it."""


def builtins(value: Any) -> Any:
    """JSON-ready builtins of structs, attrs classes and containers of them."""
    return msgspec.to_builtins(value)


def _event_json(r: Record, omit: frozenset[str] = frozenset()) -> dict[str, Any]:
    fields = builtins(r.event)
    fields.pop("type", None)
    return {"n": r.n, "type": r.type, "actor": r.actor, "cause": str(r.cause) if r.cause else None,
            "fields": {k: v for k, v in fields.items() if k not in omit}}


def int_param(query: dict[str, str], name: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"?{name}={raw!r} is not a whole number") from None
    if value < lo or (hi is not None and value > hi):
        raise BadParam(f"?{name}={value} is out of range ({lo}..{hi if hi is not None else ''})")
    return value


def float_param(query: dict[str, str], name: str) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadParam(f"?{name}={raw!r} is not a number") from None


def _page(rows: list[Any], query: dict[str, str], to_json: Any) -> dict[str, Any]:
    offset = int_param(query, "offset", 0, 0)
    limit = int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return {"total": len(rows), "offset": offset, "limit": limit,
            "items": [to_json(r) for r in rows[offset: offset + limit]]}


def _episode_page(index: RunIndex, rows: list[EpisodeRow], query: dict[str, str]) -> dict[str, Any]:
    offset = int_param(query, "offset", 0, 0)
    limit = int_param(query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    index.read_times(rows[offset: offset + limit])
    return _page(rows, query, episode_row_json)


def task_row_json(row: TaskRow) -> dict[str, Any]:
    return attrs.asdict(row)


def episode_row_json(row: EpisodeRow) -> dict[str, Any]:
    out = attrs.asdict(row)
    out["status"] = row.status
    out["ending"] = row.ending
    return out


# -- the run ------------------------------------------------------------------------

def head_json(follower: Follower) -> dict[str, Any]:
    ix = follower.index
    return {"seq": ix.seq, "log_seq": follower.log_seq, "version": ix.version, "events": ix.events,
            "caught_up": follower.caught_up.is_set()}


def run_json(log: Log, follower: Follower) -> dict[str, Any]:
    ix = follower.index
    figures = ix.domain_figures()
    scored = [r for st in ix.stats.values() for per in st.task_rewards.values() for r in per.values()]
    header = {k: v for k, v in log.meta_items().items() if k.startswith("scaleenv.")}
    return {
        "log": {"path": str(log.path), "config": log.meta_get("run_config"), "header": header,
                **head_json(follower)},
        "totals": {
            "domains": len(figures),
            "tools_verified": sum(d["tools_verified"] for d in figures),
            "tools_rejected": sum(d["tools_rejected"] for d in figures),
            "tasks": len(ix.tasks),
            "tasks_kept": sum(t.status == "kept" for t in ix.tasks.values()),
            "episodes": len(ix.episodes),
            "episodes_scored": len(scored),
            "episodes_served": sum(st.served for st in ix.stats.values()),
            "episodes_running": sum(st.running for st in ix.stats.values()),
            "mean_reward": round(math.fsum(scored) / len(scored), 4) if scored else None,
            "llm_calls": ix.types.get("llm.called", 0),
            "tool_calls": ix.types.get("episode.tool", 0),
        },
        "domains": figures,
        "charts": ix.charts(),
        "throughput": ix.throughput_series(),
        "event_types": dict(sorted(ix.types.items())),
        "problems": {"count": ix.problem_count, "first": ix.problems, "unknown_events": ix.unknown},
    }


# -- a domain -----------------------------------------------------------------------

def resolve_slot(index: RunIndex, given: str) -> str:
    if given in index.synth.domains or given in index.tasks_by_slot:
        return given
    d = index.synth.domain_by_name(given)
    if d is not None:
        return d.slot
    known = sorted(index.synth.domains)
    raise NotFound(f"no domain {given!r} in the log; domains: {', '.join(known) if known else '(none yet)'}")


def domain_json(log: Log, index: RunIndex, given: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    slot = resolve_slot(index, given)
    tool_streams = [s for s, _ in log.streams(tool_streams_of(slot))]
    records = itertools.chain(log.read_stream(domain_stream(slot)), *(log.read_stream(s) for s in tool_streams))
    design: list[dict[str, Any]] = []

    def keep(rs: Any) -> Any:
        for r in rs:
            if r.stream == domain_stream(slot) and not isinstance(r.event, LlmCalled | LlmExhausted) \
                    and r.type not in ("domain.schema_defined", "graph.edge_added"):
                design.append(_event_json(r))
            yield r

    view = fold(keep(records))
    d = view.domains.get(slot)
    if d is None:
        raise NotFound(f"no domain {given!r} in the log")
    spec = d.spec
    order = [t.name for t in spec.tools] if spec else []
    order += sorted(n for n in d.tools if n not in order)
    tools = []
    for name in order:
        t = d.tools.get(name)
        tspec = spec.tool(name) if spec else None
        tools.append({
            "name": name,
            "status": t.status if t else "pending",
            "rounds": t.rounds if t else 0,
            "code_versions": t.code_versions if t else 0,
            "reasons": t.reasons if t else [],
            "spec": builtins(tspec) if tspec else None,
            "contract": [{"when": c.when, "text": render_condition(c), "why": c.why} for c in tspec.contract] if tspec else [],
        })
    layout = layered(order, [(e.src, e.dst) for e in d.edges])
    figures = index.figures(slot)
    return {
        "slot": slot,
        "name": d.name,
        "status": d.status,
        "spec": builtins(spec) if spec else None,
        "tools": tools,
        "verified": d.verified,
        "rejected": d.rejected,
        "edges": [{k: v for k, v in builtins(e).items() if k != "type"} for e in d.edges],
        "graph": layout.to_json(),
        "design_events": design,
        "llm_calls": d.llm_calls,
        "tokens": d.tokens,
        "figures": figures,
        "tasks": tasks_json(index, {**(query or {}), "domain": slot}),
    }


def tasks_json(index: RunIndex, query: dict[str, str]) -> dict[str, Any]:
    slot = query.get("domain") or None
    if slot is not None:
        slot = resolve_slot(index, slot)
    status = query.get("status") or None
    if status not in (None, "kept", "discarded", "pending"):
        raise BadParam(f"?status={status!r}: use kept, discarded or pending")
    return _page(index.task_rows(slot, status), query, task_row_json)


# -- a tool -------------------------------------------------------------------------

def tool_json(log: Log, index: RunIndex, slot_given: str, tool: str) -> dict[str, Any]:
    slot = resolve_slot(index, slot_given)
    stream = tool_stream(slot, tool)
    if log.stream_length(stream) == 0:
        known = [s.rsplit("/", 1)[-1] for s, _ in log.streams(tool_streams_of(slot))]
        raise NotFound(f"no tool {tool!r} in domain {slot}; its tools: {', '.join(known) if known else '(none yet)'}")
    audit = tool_audit(log, stream)
    audit["slot"] = slot
    return audit


# -- a task -------------------------------------------------------------------------

def resolve_task(index: RunIndex, log: Log, task_id: str) -> str:
    task_id = task_id.strip("/")
    if task_id in index.tasks or log.stream_length(task_stream(task_id)) > 0:
        return task_id
    slot = slot_of(task_id)
    some = [t for t in index.tasks_by_slot.get(slot, [])][:8] or list(itertools.islice(index.tasks, 8))
    raise NotFound(f"no task {task_id!r} in the log; tasks look like {', '.join(some) if some else '(none yet)'}")


def task_json(log: Log, index: RunIndex, task_id: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    task_id = resolve_task(index, log, task_id)
    view = task_view(log, task_id)
    if view is None:
        raise NotFound(f"no task {task_id!r} in the log")
    data = builtins(view)
    shown = frozenset(data)
    events = []
    llm_calls = 0
    for r in log.read_stream(task_stream(task_id)):
        if isinstance(r.event, LlmCalled | LlmExhausted):
            llm_calls += 1
            continue
        events.append(_event_json(r, omit=shown | {"initial_state"}))
    marks = [{"table": t, "key": k, "mark": "needed"} for t, k in view.needed]
    marks += [{"table": t, "key": k, "mark": "distractor"} for t, k in view.distractors]
    changed = sorted({(c.table, c.key) for s in view.golden.steps for c in s.delta}) if view.golden else []
    rows = index.episode_rows(task=task_id)
    scored = [r.reward for r in rows if r.reward is not None and not r.served]
    return {
        "task_id": task_id,
        "slot": view.slot,
        "view": data,
        "marks": marks,
        "changed": [list(c) for c in changed],
        "events": events,
        "llm_calls": llm_calls,
        "episodes": {**_episode_page(index, rows, query or {}),
                     "scored": len(scored),
                     "mean_reward": round(sum(scored) / len(scored), 4) if scored else None},
    }


# -- episodes -----------------------------------------------------------------------

def episodes_json(index: RunIndex, query: dict[str, str]) -> dict[str, Any]:
    status = query.get("status") or None
    if status not in (None, "running", "ended", "scored"):
        raise BadParam(f"?status={status!r}: use running, ended or scored")
    slot = query.get("domain") or None
    rows = index.episode_rows(task=query.get("task") or None, slot=resolve_slot(index, slot) if slot else None,
                              ending=query.get("ending") or None, status=status,
                              min_reward=float_param(query, "min_reward"), max_reward=float_param(query, "max_reward"))
    return _episode_page(index, rows, query)


def divergence_json(finding: Finding, replay: EpisodeReplay) -> dict[str, Any]:
    """A check's finding about an episode, with the replay step it happened at: step 0 for
    the episode's start, else the first step at or after its stream position (the model
    calls before a step belong to it), the last step for a position past the stream's end."""
    out = finding.to_json()
    n = finding.event.n
    out["step"] = 0 if n < replay.position(0) else next((s.index for s in replay.steps if s.n >= n), replay.last_step)
    return out


def episode_json(log: Log, episode_id: str, query: dict[str, str], index: RunIndex | None = None) -> dict[str, Any]:
    """The episode page's JSON; with ``index``, also where the recorded checks found the episode diverging."""
    try:
        replay = EpisodeReplay.load(log, episode_id)
    except UnknownEpisode as exc:
        raise NotFound(str(exc)) from None
    k = int_param(query, "step", replay.last_step, 0, replay.last_step)
    out = replay.at(k, llm_calls=True)
    out["timeline"] = [step_json(s, llm_calls=True) for s in replay.steps]
    initial = replay.task.initial_state if replay.task else None
    ep = fold_episode((r.event for r in replay.records), initial, replay.episode_id)
    out["summary"] = {
        "seed": ep.seed, "system_prompt": ep.system_prompt, "turns": ep.turns, "tool_calls": ep.tool_calls,
        "env_failures": ep.env_failures, "ended": builtins(ep.ended) if ep.ended else None,
        "rewards": [builtins(r) for r in ep.rewards], "events": len(replay.records),
    }
    out["task"] = {"task_id": replay.task.task_id, "instruction": replay.task.instruction,
                   "user_facts": replay.task.user_facts} if replay.task else None
    findings = index.checks.for_stream(episode_stream(replay.episode_id)) if index is not None else []
    out["divergences"] = [divergence_json(f, replay) for f in findings]
    return out
