"""Stage 2 events: chains, expansion, distractors, instruction, golden-chain proof.

Stream: ``task/<domain>/<k>``. A task's initial state is rebuilt from these events.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..specs import DbState
from .base import Event


class ChainStep(msgspec.Struct, frozen=True, kw_only=True):
    tool: str
    # Argument name -> literal value, or a binding "@<step>.<field>" to an earlier step's output.
    args: dict[str, Any]


class ChainSampled(Event, tag="task.chain_sampled"):
    domain: str
    tools: list[str]


class RecordChange(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """One record created, changed or deleted by a call (before/after None = absent)."""

    table: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class TaskInstantiated(Event, tag="task.instantiated"):
    """The entities the chain needs, plus distractors, and the bound golden chain."""

    domain: str
    initial_state: DbState
    needed: list[tuple[str, str]]
    distractors: list[tuple[str, str]]
    steps: list[ChainStep]


class InstructionWritten(Event, tag="task.instruction"):
    domain: str
    instruction: str
    user_facts: dict[str, Any]
    persona: str = ""


class GoldenStep(msgspec.Struct, frozen=True, kw_only=True):
    tool: str
    args: dict[str, Any]
    result: Any
    delta: list[RecordChange]


class GoldenChainExecuted(Event, tag="task.golden_executed"):
    steps: list[GoldenStep]
    final_digest: str
    expected_answers: list[str] = []


class TaskKept(Event, tag="task.kept"):
    task_id: str
    domain: str


class TaskDiscarded(Event, tag="task.discarded"):
    task_id: str
    domain: str
    reason: str
    detail: str = ""


TASK_EVENTS = (ChainSampled, TaskInstantiated, InstructionWritten, GoldenChainExecuted, TaskKept, TaskDiscarded)
