"""The run projection: the whole log folded into domains, tools, graph, tasks and episodes.

``apply(view, record) -> view`` is the one transition; ``fold(records)`` starts from an
empty view. The live engine and replay use the same function, so live state and
replayed state are equal by construction. ``apply`` takes ownership of ``view`` (it is
updated in place and returned, to fold millions of events without copying); the
database states inside it are never mutated in place (deltas make new states).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import networkx as nx

from scaleenv._store.events.episodes import EpisodeStarted
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.events.synth import (
    CodeProposed,
    DomainFailed,
    DomainOutlined,
    GraphEdgeJudged,
    TestCasesRepaired,
    DomainSynthesized,
    GraphEdgeAdded,
    SchemaDefined,
    ToolAccepted,
    ToolRejected,
)
from scaleenv._store.events.tasks import (
    ChainSampled,
    ChainStep,
    ChainWritten,
    GateDecided,
    GoldenChainExecuted,
    InstructionWritten,
    TaskDiscarded,
    TaskInstantiated,
    TaskKept,
)
from scaleenv._store.record import Record, StreamDigest
from scaleenv._store.specs import DbState, DomainSpec

from .episode import EpisodeSummary, EpisodeView
from .episode import apply as apply_episode
from .episode import apply_call

from scaleenv._model.graph import graph_from_edges
from scaleenv._model.state import apply_delta


@attrs.define
class ToolView:
    slot: str
    name: str
    status: str = "pending"  # pending | accepted | rejected
    code: str = ""
    code_versions: int = 0
    rounds: int = 0
    reasons: list[str] = attrs.field(factory=list)
    code_repairs: int = 0
    """New versions of the code after the first (from the repairer or the debug role)."""
    fixture_repairs: int = 0
    """Times the debug role found the tests wrong and repaired them."""


@attrs.define
class DomainView:
    slot: str
    name: str = ""
    spec: DomainSpec | None = None
    status: str = "designing"  # designing | synthesizing | done | failed
    tools: dict[str, ToolView] = attrs.field(factory=dict)
    edges: list[GraphEdgeAdded] = attrs.field(factory=list)
    verified: list[str] = attrs.field(factory=list)
    rejected: list[str] = attrs.field(factory=list)
    llm_calls: int = 0
    tokens: int = 0
    groups: dict[str, list[str]] = attrs.field(factory=dict)
    """The outline's tool groups (workflows): group -> tool names."""
    judged: int = 0
    dropped: int = 0
    """Candidate edges the dependency judge reviewed, and dropped."""

    def graph(self) -> nx.MultiDiGraph:
        return graph_from_edges(self.edges, self.verified)

    def verified_code(self) -> dict[str, str]:
        return {n: self.tools[n].code for n in self.verified}


@attrs.define
class TaskView:
    task_id: str
    slot: str
    domain: str = ""
    chain: list[str] = attrs.field(factory=list)
    initial_state: DbState | None = None
    needed: list[tuple[str, str]] = attrs.field(factory=list)
    distractors: list[tuple[str, str]] = attrs.field(factory=list)
    steps: list[ChainStep] = attrs.field(factory=list)
    instruction: str = ""
    user_facts: dict[str, Any] = attrs.field(factory=dict)
    persona: str = ""
    golden: GoldenChainExecuted | None = None
    expected_final: DbState | None = None
    status: str = "pending"  # pending | kept | discarded
    reason: str = ""
    detail: str = ""
    goal_ends: list[int] = attrs.field(factory=list)
    """Where each goal's steps end in ``steps`` (exclusive); empty for a one-goal task of an older log."""
    env_tools: list[str] = attrs.field(factory=list)
    """The tools the task's environment supports (H); empty: every verified tool of the domain."""
    background: int = 0
    requests: list[str] = attrs.field(factory=list)
    request_facts: list[dict[str, Any]] = attrs.field(factory=list)
    programs: int = 0
    """Chain programs written for it (refused or not)."""
    gate: list[GateDecided] = attrs.field(factory=list)
    llm_calls: int = 0
    tokens: int = 0

    @property
    def goals(self) -> int:
        return len(self.goal_ends) or (1 if self.steps else 0)

    @property
    def finished(self) -> bool:
        return self.status in ("kept", "discarded")


@attrs.define
class RunView:
    """A run folded: its domains (with tools and graph), tasks and episodes, and each
    stream's digest. Built by :func:`fold`; updated by :func:`apply`."""

    domains: dict[str, DomainView] = attrs.field(factory=dict)
    tasks: dict[str, TaskView] = attrs.field(factory=dict)
    episodes: dict[str, EpisodeView | EpisodeSummary] = attrs.field(factory=dict)
    """Whole episodes (:func:`fold`), or their summaries (:func:`scaleenv._replay.partial.fold_log`)."""
    digests: dict[str, StreamDigest] = attrs.field(factory=dict)
    llm_calls: int = 0
    llm_invalid: int = 0
    events: int = 0
    digested: bool = True
    """Whether ``digests`` covers every folded event (False for a fold asked for no digests)."""
    types: dict[str, int] = attrs.field(factory=dict)
    """Events folded, by type tag."""
    lean: bool = False
    """A planning view (:func:`scaleenv._replay.partial.fold_raw` with ``lean=True``): its
    finished episodes keep their rewards, end and counts, not their state or user
    messages. It answers what is left to run, not what an episode did; never checkpointed."""

    def stream_digests(self) -> dict[str, str]:
        """Each stream's digest; raises ValueError for a view folded without them."""
        if not self.digested:
            raise ValueError("this view was folded without stream digests (fold_log(..., digests=True) keeps them)")
        return {s: d.hexdigest() for s, d in self.digests.items()}

    def domain_by_name(self, name: str) -> DomainView | None:
        for d in self.domains.values():
            if d.name == name or d.slot == name:
                return d
        return None


def apply(view: RunView, record: Record) -> RunView:
    """``view`` after ``record`` (updated in place and returned; see the module doc)."""
    view.events += 1
    tag = record.type
    view.types[tag] = view.types.get(tag, 0) + 1
    digest = view.digests.get(record.stream)
    if digest is None:
        digest = view.digests[record.stream] = StreamDigest()
    digest.update(record)
    kind, _, rest = record.stream.partition("/")
    event = record.event
    if isinstance(event, LlmCalled):
        view.llm_calls += 1
        view.llm_invalid += event.error is not None
        slot = rest.split("/", 1)[0] if kind in ("domain", "tool") else ""
        if slot:
            d = _domain(view, slot)
            d.llm_calls += 1
            d.tokens += event.prompt_tokens + event.completion_tokens
        elif kind == "task":
            t = view.tasks.get(rest)
            if t is None:
                t = view.tasks[rest] = TaskView(task_id=rest, slot=rest.split("/", 1)[0])
            t.llm_calls += 1
            t.tokens += event.prompt_tokens + event.completion_tokens
        elif kind == "episode":
            ep = view.episodes.get(rest)  # (started first; a summary keeps no conversation, nor its tools)
            if isinstance(ep, EpisodeView):
                apply_call(ep, record.n, event)
        return view
    if kind == "domain":
        _apply_domain(_domain(view, rest), event)
    elif kind == "tool":
        slot, _, name = rest.partition("/")
        _apply_tool(_domain(view, slot), name, event)
    elif kind == "task":
        slot = rest.split("/", 1)[0]
        task = view.tasks.get(rest)
        if task is None:
            task = view.tasks[rest] = TaskView(task_id=rest, slot=slot)
        _apply_task(task, event)
    elif kind == "episode":
        ep = view.episodes.get(rest)
        if ep is None:
            ep = view.episodes[rest] = EpisodeView(episode_id=rest)
        elif isinstance(ep, EpisodeSummary):
            raise TypeError(f"episode {rest!r} was folded as a summary (scaleenv._replay.partial); "
                            "fold whole episodes with fold() from the start, or read the episode's stream")
        _apply_episode(view, ep, event)
    return view


def fold(records: Iterable[Record], view: RunView | None = None) -> RunView:
    """``records`` (in log order) folded into ``view`` (a new one by default), with :func:`apply`."""
    view = view if view is not None else RunView()
    for record in records:
        apply(view, record)
    return view


def _domain(view: RunView, slot: str) -> DomainView:
    d = view.domains.get(slot)
    if d is None:
        d = view.domains[slot] = DomainView(slot=slot)
    return d


def _apply_domain(d: DomainView, event: Any) -> None:
    if isinstance(event, SchemaDefined):
        d.spec = event.spec
        d.name = event.spec.name
        d.status = "synthesizing"
        for t in event.spec.tools:
            d.tools.setdefault(t.name, ToolView(slot=d.slot, name=t.name))
    elif isinstance(event, GraphEdgeAdded):
        d.edges.append(event)
    elif isinstance(event, DomainOutlined):
        d.groups = {g.name: [t.name for t in g.tools] for g in event.outline.groups}
    elif isinstance(event, GraphEdgeJudged):
        d.judged += 1
        d.dropped += not event.keep
    elif isinstance(event, DomainSynthesized):
        d.status = "done"
        d.verified = list(event.verified)
        d.rejected = list(event.rejected)
    elif isinstance(event, DomainFailed):
        d.status = "failed"


def _apply_tool(d: DomainView, name: str, event: Any) -> None:
    t = d.tools.get(name)
    if t is None:
        t = d.tools[name] = ToolView(slot=d.slot, name=name)
    if isinstance(event, CodeProposed):
        t.code = event.code
        t.code_versions += 1
        t.rounds = event.round
        t.code_repairs += event.round > 0
    elif isinstance(event, TestCasesRepaired):
        t.fixture_repairs += 1
    elif isinstance(event, ToolAccepted):
        t.status = "accepted"
        t.code = event.code
    elif isinstance(event, ToolRejected):
        t.status = "rejected"
        t.reasons = list(event.reasons)


def _apply_task(task: TaskView, event: Any) -> None:
    if isinstance(event, ChainSampled):
        task.domain = event.domain
        task.chain = list(event.tools)
    elif isinstance(event, TaskInstantiated):
        task.initial_state = event.initial_state
        task.needed = [tuple(x) for x in event.needed]  # type: ignore[misc]
        task.distractors = [tuple(x) for x in event.distractors]  # type: ignore[misc]
        task.steps = list(event.steps)
        if event.goal_ends:
            task.goal_ends = list(event.goal_ends)
            task.chain = [s.tool for s in event.steps]
        task.env_tools = list(event.env_tools)
        task.background = event.background
    elif isinstance(event, InstructionWritten):
        task.instruction = event.instruction
        task.user_facts = dict(event.user_facts)
        task.persona = event.persona
        task.requests = list(event.requests)
        task.request_facts = [dict(f) for f in event.request_facts]
    elif isinstance(event, ChainWritten):
        task.programs += 1
    elif isinstance(event, GateDecided):
        task.gate.append(event)
    elif isinstance(event, GoldenChainExecuted):
        task.golden = event
        state = task.initial_state or {}
        for step in event.steps:
            state = apply_delta(state, step.delta)
        task.expected_final = state
    elif isinstance(event, TaskKept):
        task.status = "kept"
    elif isinstance(event, TaskDiscarded):
        task.status = "discarded"
        task.reason = event.reason
        task.detail = event.detail


def _apply_episode(view: RunView, ep: EpisodeView | EpisodeSummary, event: Any) -> None:
    if isinstance(event, EpisodeStarted):
        task = view.tasks.get(event.task_id)
        ep.state = task.initial_state if task else None
    apply_episode(ep, event)  # type: ignore[arg-type]
