"""Stage 2 events: chains, expansion, distractors, instruction, golden-chain proof.

Stream: ``task/<domain>/<k>``. A task's initial state is rebuilt from these events.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from ..specs import DbState, Evolving
from .base import Event


class ChainStep(msgspec.Struct, frozen=True, kw_only=True):
    tool: str
    # Argument name -> literal value, or a binding "@<step>.<field>" to an earlier step's output.
    args: dict[str, Any]


class ChainSampled(Event, tag="task.chain_sampled"):
    domain: str
    tools: list[str]


class ChainWritten(Event, tag="task.chain_written"):
    """One goal's chain, as the chain writer wrote it: a program of tool calls (see
    ``scaleenv._model.program``), and the goal tool it ends with."""

    goal: int
    goal_tool: str
    program: str
    round: int = 0
    problem: str = ""
    """Why the program was not used ("" when it was): the parser's refusal, or why it could not run."""


class GoalRealized(Event, tag="task.goal_realized"):
    """A goal's chain ran: its concrete calls (arguments resolved), on the initial state
    patched so that it runs after the goals before it."""

    goal: int
    goal_tool: str
    steps: list[ChainStep]
    facts: dict[str, Any]
    """What the user holds for this goal (the arguments no earlier result supplies)."""


class EnvironmentExpanded(Event, tag="task.environment_expanded"):
    """Breadth-first growth from the chains' tools over the graph: each tool that joined
    (its inputs bound from the state, run, the state patched when it failed)."""

    tools: list[str]
    joined: list[str]
    complexity: float
    seeds: list[str] = []
    """The tools H held before this growth (the goals' tools)."""


class GateDecided(Event, tag="task.gate_decided"):
    """The gate on adding another chain: c(H), the feasibility g(D) of the unused tools, the
    gate's p, and whether another goal follows (p >= tau)."""

    unused: int
    complexity: float
    feasibility: float
    p: float
    more: bool
    reason: str = ""
    oracle: list[int] = []
    """Where the oracle rollouts g(D) was measured from ended in the task's stream (the
    positions of their ``OracleEnded``); empty when g(D) was the share of candidate chains
    that realized (``gate_feasibility="realize"``, and logs older than the oracle)."""

    digest_added: ClassVar[tuple[tuple[str, object], ...]] = (("oracle", []),)


class OracleStarted(Event, tag="task.oracle_started"):
    """One oracle rollout for the gate's feasibility g(D): a policy told the solution (the
    candidate goal's program, ``solution``) acts on the state the candidate goal starts
    from, through the episode code; its messages and tool calls follow in the task's
    stream (``MessageSent``, ``ToolExecuted``) up to its ``OracleEnded``."""

    goal: int
    goal_tool: str
    rollout: int
    solution: str
    system_prompt: str
    tools: list[str]


class OracleEnded(Event, tag="task.oracle_ended"):
    """How an oracle rollout ended: ``success`` when the final state equals the candidate
    goal's expected final state and its goal call ran (an information goal: returned what
    the candidate's own run returned)."""

    goal: int
    rollout: int
    success: bool
    reason: str
    tool_calls: int
    detail: str = ""


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
    # Multi-goal tasks: where each goal's steps end in ``steps`` (exclusive), the tools the
    # environment supports, and how many background records were added.
    goal_ends: list[int] = []
    env_tools: list[str] = []
    background: int = 0
    env_probes: dict[str, dict[str, Any]] = {}
    """For each tool of the environment, arguments with which it runs meaningfully on
    ``initial_state`` (reads first, then changes, in one session: interaction completeness)."""

    digest_added = (("goal_ends", []), ("env_tools", []), ("background", 0), ("env_probes", {}))


class InstructionWritten(Event, tag="task.instruction"):
    domain: str
    instruction: str
    user_facts: dict[str, Any]
    persona: str = ""
    # One request per goal, in the customer's words, in the order they are raised.
    requests: list[str] = []
    request_facts: list[dict[str, Any]] = []
    """What the user holds for each request (``user_facts`` is their union, first value wins)."""

    digest_added = (("requests", []), ("request_facts", []))


class GoldenStep(msgspec.Struct, Evolving, frozen=True, kw_only=True):
    tool: str
    args: dict[str, Any]
    result: Any
    delta: list[RecordChange]
    # The sandbox clock's reading when the tool read the time (None: it did not).
    clock: str | None = None

    added: ClassVar[tuple[tuple[str, object], ...]] = (("clock", None),)


class GoldenChainExecuted(Event, tag="task.golden_executed"):
    steps: list[GoldenStep]
    final_digest: str
    expected_answers: list[str] = []

    digest_nested: ClassVar[bool] = True


class TaskKept(Event, tag="task.kept"):
    task_id: str
    domain: str


class TaskDiscarded(Event, tag="task.discarded"):
    task_id: str
    domain: str
    reason: str
    detail: str = ""


TASK_EVENTS = (ChainSampled, ChainWritten, GoalRealized, EnvironmentExpanded, GateDecided, OracleStarted, OracleEnded,
               TaskInstantiated,
               InstructionWritten, GoldenChainExecuted, TaskKept, TaskDiscarded)
