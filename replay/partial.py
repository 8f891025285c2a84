"""The run projection folded from undecoded records, decoding only what the fold reads.

:func:`fold_log` builds the same :class:`RunView` as :func:`scaleenv._replay.projection.fold`
(the same :func:`scaleenv._replay.digests.projection_digests`, event for event; tested with
hypothesis and the golden logs) at a fraction of the cost, because most events are never
decoded whole:

- the event's type tag is read from the first bytes of its msgpack map
  (:func:`scaleenv._store.record.peek_tag`), so events the projection does not read
  (tool tests, reviews, goal realisations, ...) are skipped undecoded, and those it only
  counts (``task.chain_written``, ``tool.tests_repaired``) are counted by tag;
- ``llm.called`` events (most of a synthesis log) are decoded lean: the error and the two
  token counts, skipping the messages and the answer;
- episode messages and tool results (most of a training log) are decoded lean too, and
  the projection keeps an :class:`~scaleenv._replay.episode.EpisodeSummary` per episode
  (counts, end, rewards and database state; not the conversation, which
  :func:`scaleenv._replay.episode.fold` of the episode's own stream gives).

Stream digests cover every field of every event (:class:`scaleenv._store.record.StreamDigest`,
over a canonical re-encoding of the decoded event, not over the stored bytes), so they
cannot be had without decoding each event whole: ``digests=True`` does that and keeps
them exact (the same values as :func:`fold`); ``digests=False`` (the default) leaves them
out and marks the view (``RunView.digested``), whose ``stream_digests()`` then refuses.

A record's frame and CRC are checked for every record, skipped or not, and an unknown
event type raises :class:`~scaleenv._store.errors.UnknownEventType` as :func:`fold` does;
a skipped event's fields are not validated against its type (that is what skipping means).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Union

import msgspec

from scaleenv._store.errors import RecordDamaged
from scaleenv._store.events.episodes import EpisodeEnded, EpisodeStarted, MessageSent, RewardGiven, ToolExecuted
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.events.synth import (
    CodeProposed,
    DomainFailed,
    DomainOutlined,
    DomainSynthesized,
    GraphEdgeAdded,
    GraphEdgeJudged,
    SchemaDefined,
    TestCasesRepaired,
    ToolAccepted,
    ToolRejected,
)
from scaleenv._store.events.tasks import (
    ChainSampled,
    ChainWritten,
    GateDecided,
    GoldenChainExecuted,
    InstructionWritten,
    RecordChange,
    TaskDiscarded,
    TaskInstantiated,
    TaskKept,
)
from scaleenv._store.log import Log
from scaleenv._store.record import Codec, StreamDigest, event_tag_of_type, unframe

from .episode import EpisodeSummary, apply_summary
from .projection import RunView, TaskView, _apply_domain, _apply_task, _apply_tool, _domain
from .stored import StoredEpisodes


# -- lean events: only the fields the projection reads ---------------------------------
# Each lean struct carries the tag of the event type it reads, so one msgspec decode of a
# record's body yields, per event type, a lean struct, the typed event, or an empty struct
# (an event the projection skips: msgspec walks past its fields without building them).

class LeanLlmCall(msgspec.Struct, tag_field="type", tag="llm.called"):
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LeanMessage(msgspec.Struct, tag_field="type", tag="episode.message"):
    role: str
    content: str
    tool_calls: list[msgspec.Raw] = []


class LeanToolResult(msgspec.Struct, tag_field="type", tag="episode.tool"):
    ok: bool
    error_kind: str | None = None
    delta: list[RecordChange] = []


def _tag(t: type[Any]) -> str:
    return event_tag_of_type(t)


LLM_TAG = _tag(LlmCalled)
MESSAGE_TAG = _tag(MessageSent)
TOOL_TAG = _tag(ToolExecuted)
REWARD_TAG = _tag(RewardGiven)
CHAIN_WRITTEN = _tag(ChainWritten)
TESTS_REPAIRED = _tag(TestCasesRepaired)

LEAN: dict[str, type[msgspec.Struct]] = {LLM_TAG: LeanLlmCall, MESSAGE_TAG: LeanMessage, TOOL_TAG: LeanToolResult}
"""The event types read lean, by tag."""

WHOLE: frozenset[str] = frozenset(map(_tag, (
    SchemaDefined, GraphEdgeAdded, DomainOutlined, GraphEdgeJudged, DomainSynthesized, DomainFailed,
    CodeProposed, ToolAccepted, ToolRejected,
    ChainSampled, TaskInstantiated, InstructionWritten, GateDecided, GoldenChainExecuted, TaskKept, TaskDiscarded,
    EpisodeStarted, EpisodeEnded, RewardGiven,
)))
"""The event types the projection decodes whole; every other type is skipped (or counted by its tag)."""


class _PartialCodec:
    """The body decoder of one :class:`Codec`'s event types, read the partial way."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        members: list[type[Any]] = []
        self.tag_of: dict[type[Any], str] = {}
        for t in codec.event_types:
            tag = _tag(t)
            if tag in LEAN:
                m: type[Any] = LEAN[tag]
            elif tag in WHOLE:
                m = t
            else:
                m = msgspec.defstruct(f"Skipped_{tag}", [], tag_field="type", tag=tag)
            members.append(m)
            self.tag_of[m] = tag
        union: Any = members[0] if len(members) == 1 else Union[tuple(members)]  # noqa: UP007
        self.decoder = msgspec.msgpack.Decoder(tuple[int, str, int, msgspec.Raw, str, int, union])


_partial_codecs: dict[int, _PartialCodec] = {}


def _partial(codec: Codec) -> _PartialCodec:
    pc = _partial_codecs.get(id(codec))
    if pc is None or pc.codec is not codec:
        pc = _partial_codecs[id(codec)] = _PartialCodec(codec)
    return pc


# -- the fold ----------------------------------------------------------------------------

def apply_partial(view: RunView, stream: str, tag: str, event: Any) -> RunView:
    """``view`` after one event of ``stream`` whose type is ``tag``: the transition of
    :func:`scaleenv._replay.projection.apply` minus the stream digest. ``event`` is the typed
    event, a lean one (for ``llm.called``, messages and tool results) or None for an event
    the projection does not read or only counts."""
    view.events += 1
    view.types[tag] = view.types.get(tag, 0) + 1
    kind, _, rest = stream.partition("/")
    if tag == LLM_TAG:
        view.llm_calls += 1
        view.llm_invalid += event.error is not None
        tokens = event.prompt_tokens + event.completion_tokens
        slot = rest.split("/", 1)[0] if kind in ("domain", "tool") else ""
        if slot:
            d = _domain(view, slot)
            d.llm_calls += 1
            d.tokens += tokens
        elif kind == "task":
            t = _task(view, rest)
            t.llm_calls += 1
            t.tokens += tokens
    elif kind == "episode":
        ep = view.episodes.get(rest)
        if ep is None:
            ep = view.episodes[rest] = EpisodeSummary(episode_id=rest)
        elif not isinstance(ep, EpisodeSummary):
            raise TypeError(f"episode {rest!r} was folded whole; continue it with projection.fold")
        if isinstance(event, EpisodeStarted):
            task = view.tasks.get(event.task_id)
            ep.state = task.initial_state if task else None
        apply_summary(ep, event, tag)
    elif kind == "domain":
        _apply_domain(_domain(view, rest), event)
    elif kind == "tool":
        slot, _, name = rest.partition("/")
        d = _domain(view, slot)
        if tag == TESTS_REPAIRED:
            _tool(d, name).fixture_repairs += 1
        else:
            _apply_tool(d, name, event)
    elif kind == "task":
        task = _task(view, rest)
        if tag == CHAIN_WRITTEN:
            task.programs += 1
        else:
            _apply_task(task, event)
    return view


def _task(view: RunView, task_id: str) -> TaskView:
    t = view.tasks.get(task_id)
    if t is None:
        t = view.tasks[task_id] = TaskView(task_id=task_id, slot=task_id.split("/", 1)[0])
    return t


def _tool(d: Any, name: str) -> Any:
    _apply_tool(d, name, None)  # creates the tool's view if it is new
    return d.tools[name]


def strip_finished(ep: EpisodeSummary) -> None:
    """A finished episode as a lean view keeps it: its rewards, end and counts, without its
    database state, user messages or system prompt (what grows with a run's size)."""
    ep.state = None
    ep.user_messages = []
    ep.system_prompt = ""


def fold_raw(chunks: Iterable[Iterable[tuple[int, Any]]], view: RunView | None = None, *,
             codec: Codec, digests: bool = False, lean: bool = False) -> RunView:
    """``(seq, record bytes)`` chunks (:meth:`Log.read_raw`, in log order) folded into
    ``view`` (a new one by default). ``digests``: keep exact stream digests (decodes every
    event whole); a view must be continued the way it was started. ``lean``: a planning
    view (``RunView.lean``): each episode is stripped when its reward comes
    (:func:`strip_finished`), so the memory it holds does not grow with the episodes
    finished; a lean view stays lean."""
    if view is None:
        view = RunView(digested=digests)
    elif view.digested != digests:
        raise ValueError(f"the view was folded with digests={view.digested}; continue it the same way")
    if view.lean and not lean:
        raise ValueError("the view is lean (finished episodes stripped); continue it with lean=True")
    view.lean = lean
    if isinstance(view.episodes, StoredEpisodes):
        view.episodes.progress = None  # the checkpoint's summary: not of the fold past it
    if digests:
        decode, all_digests = codec.decode, view.digests
        held: dict[str, StreamDigest] = {}  # this fold's streams (a checkpoint's digests are read once each)
        for chunk in chunks:
            for seq, raw in chunk:
                record = decode(raw, seq)
                d = held.get(record.stream)
                if d is None:
                    d = all_digests.get(record.stream)
                    if d is None:
                        d = all_digests[record.stream] = StreamDigest()
                    held[record.stream] = d
                d.update(record)
                apply_partial(view, record.stream, record.type, record.event)
                if lean and record.type == REWARD_TAG and record.stream.startswith("episode/"):
                    held.pop(record.stream, None)
                    strip_finished(view.episodes[record.stream[8:]])
        return view
    pc = _partial(codec)
    decode, tag_of, episodes, types = pc.decoder.decode, pc.tag_of, view.episodes, view.types
    summaries: dict[str, EpisodeSummary] = {}  # episode stream -> its summary, for the hot path
    for chunk in chunks:
        for seq, raw in chunk:
            body = unframe(raw, seq)
            try:
                t = decode(body)
            except msgspec.MsgspecError:
                codec.decode(raw, seq)  # raises the typed error (damaged, unknown or incompatible event)
                raise
            if seq and t[0] != seq:
                raise RecordDamaged(seq, f"stored under seq={seq} but says seq={t[0]}")
            stream, event = t[1], t[6]
            tag = tag_of[type(event)]
            if tag is MESSAGE_TAG or tag is TOOL_TAG:
                ep = summaries.get(stream)
                if ep is None:
                    ep = episodes.get(stream[8:]) if stream.startswith("episode/") else None
                    if isinstance(ep, EpisodeSummary):
                        summaries[stream] = ep
                if ep is not None:
                    view.events += 1
                    types[tag] = types.get(tag, 0) + 1
                    apply_summary(ep, event, tag)
                    continue
            apply_partial(view, stream, tag, event)
            if lean and tag == REWARD_TAG and stream.startswith("episode/"):
                summaries.pop(stream, None)
                strip_finished(episodes[stream[8:]])
    return view


def fold_log(log: Log, view: RunView | None = None, *, from_seq: int = 1, to_seq: int | None = None,
             digests: bool = False, lean: bool = False) -> RunView:
    """The log's records ``from_seq..to_seq`` folded into ``view`` (see :func:`fold_raw`)."""
    return fold_raw(log.read_raw(from_seq, to_seq), view, codec=log.codec, digests=digests, lean=lean)
