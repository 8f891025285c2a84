"""Digests of the projection (what a fold builds), beside the per-stream event digests.

Stream digests say the events are the same; projection digests say the fold of them
is the same: a change to ``apply`` that alters what old logs mean changes one of these.
One digest per domain, task and episode, over a canonical summary of its view.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from scaleenv._store.specs import spec_builtins

from .episode import EpisodeSummary
from .projection import DomainView, EpisodeView, RunView, TaskView
from scaleenv._model.state import canonical, state_digest
from scaleenv._streams import domain_stream, episode_stream, task_stream

_det = msgspec.msgpack.Encoder(order="deterministic")


def _digest(value: Any) -> str:
    return hashlib.blake2b(_det.encode(canonical(msgspec.to_builtins(value))), digest_size=16).hexdigest()


def domain_summary(d: DomainView) -> dict[str, Any]:
    return {
        "name": d.name, "status": d.status, "verified": d.verified, "rejected": d.rejected,
        "spec": spec_builtins(d.spec), "edges": [msgspec.to_builtins(e) for e in d.edges],
        "tools": {n: {"status": t.status, "code": t.code, "versions": t.code_versions, "rounds": t.rounds,
                      "reasons": t.reasons} for n, t in sorted(d.tools.items())},
        "llm_calls": d.llm_calls, "tokens": d.tokens,
    }


def task_summary(t: TaskView) -> dict[str, Any]:
    return {
        "domain": t.domain, "chain": t.chain, "status": t.status, "reason": t.reason,
        "initial": state_digest(t.initial_state) if t.initial_state is not None else None,
        "expected_final": state_digest(t.expected_final) if t.expected_final is not None else None,
        "needed": t.needed, "distractors": t.distractors, "instruction": t.instruction, "user_facts": t.user_facts,
    }


def episode_summary(e: EpisodeView | EpisodeSummary) -> dict[str, Any]:
    return {
        "task_id": e.task_id, "attempt": e.attempt, "seed": e.seed, "steps": e.steps,
        "messages": e.message_count, "tool_calls": e.tool_calls, "turns": e.turns,
        "state": state_digest(e.state) if e.state is not None else None,
        "ended": e.ended, "rewards": e.rewards,
    }


def projection_digests(view: RunView) -> dict[str, str]:
    """``{"domain/d00": ..., "task/d00/t000": ..., "episode/...": ..., "run": ...}``."""
    out: dict[str, str] = {}
    for slot, d in sorted(view.domains.items()):
        out[domain_stream(slot)] = _digest(domain_summary(d))
    for tid, t in sorted(view.tasks.items()):
        out[task_stream(tid)] = _digest(task_summary(t))
    for eid, e in sorted(view.episodes.items()):
        out[episode_stream(eid)] = _digest(episode_summary(e))
    out["run"] = _digest({"events": view.events, "llm_calls": view.llm_calls, "llm_invalid": view.llm_invalid})
    return out
