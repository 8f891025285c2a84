"""The UI's whole-log index: a light fold of every record, kept up to date while a run writes.

It starts from the run's projection checkpoint when the log has one (:meth:`RunIndex.start`:
rows, counts and the synthesis view taken from it, O(tasks + episodes) and no record of
the checkpointed prefix decoded), folds the records after it, and reads the prefix's
envelopes in the background for what the checkpoint lacks (:meth:`RunIndex.census`: the
commit-time chart, damaged records). Every answer then equals that of the fold from the
first record (tests/ui/test_reads.py).

Pages that list or count across the run (the run page, task and episode lists) read this
index; pages about one thing (a domain, a tool, a task, an episode) read that thing's own
streams (``Log.read_stream``). So a page costs what it shows, not what the log holds.

What is kept, per kind of stream:

- ``domain/*`` and ``tool/*``: folded with :func:`scaleenv._replay.projection.apply` itself
  (the synthesis streams are small), so a domain's figures are the run summary's;
- ``task/*``: one :class:`TaskRow` (status, chain, counts, instruction): not the states;
- ``episode/*``: one :class:`EpisodeRow` (task, ending, turns, tool calls, latest reward),
  from ``episode.started|ended|reward`` only; the rest of an episode is only counted;
- ``check/*``: what ``replay --verify`` and ``rerun`` found, folded with
  :func:`scaleenv._replay.checks.apply` (an episode page links to its first divergence);
- every record: its commit second (``wall_ns``) in :attr:`RunIndex.throughput`.

Records are decoded selectively: each record's frame and envelope are read, and the
event is decoded only when its type is one the index keeps (most of a large log is the
episodes' ``llm.called`` events, which are only counted). A damaged record is listed
in :attr:`RunIndex.problems` and skipped; an event type this code does not know is
counted in :attr:`RunIndex.unknown` and skipped: the viewer shows the rest.

:meth:`RunIndex.catch_up` is synchronous and bounded (``limit`` records); the server's
follower (:func:`follow`) calls it in slices, so pages keep answering while a large log
is indexed, then polls the log for new commits (a reader sees a writer's commits in any
process; it takes no lock).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import attrs
import msgspec
import trio

from scaleenv._replay.checkpoint import load_newest
from scaleenv._replay.checks import CheckFindings
from scaleenv._replay.checks import apply as apply_check
from scaleenv._replay.projection import RunView, TaskView
from scaleenv._replay.stored_tasks import golden_bytes
from scaleenv._replay.projection import apply as apply_projection
from scaleenv._runner import pass_at_k, summary
from scaleenv._store.errors import LogError, RecordDamaged
from scaleenv._store.events.episodes import EpisodeEnded, EpisodeStarted, RewardGiven
from scaleenv._store.events.tasks import (
    ChainSampled,
    GoldenChainExecuted,
    InstructionWritten,
    TaskDiscarded,
    TaskInstantiated,
    TaskKept,
)
from scaleenv._store.log import Log
from scaleenv._store.record import Codec, unframe
from scaleenv._streams import episode_stream, is_served, kind_of, slot_of, task_of_episode, task_stream

_ENVELOPE = msgspec.msgpack.Decoder(tuple[int, str, int, msgspec.Raw, str, int, msgspec.Raw])


class _Kind(msgspec.Struct):
    """Only the tag of an event (msgspec skips the other fields without building them)."""

    type: str


_KIND = msgspec.msgpack.Decoder(_Kind)


class _Said(msgspec.Struct):
    """Who sent a message and what it says (its tool calls and token ids are skipped)."""

    role: str
    content: str = ""


class _Tokens(msgspec.Struct):
    """An LLM call's token counts only."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


_SAID = msgspec.msgpack.Decoder(_Said)
_TOKENS = msgspec.msgpack.Decoder(_Tokens)

TASK_TAGS = frozenset({"task.chain_sampled", "task.instantiated", "task.instruction", "task.golden_executed",
                       "task.kept", "task.discarded"})
EPISODE_TAGS = frozenset({"episode.started", "episode.ended", "episode.reward"})
MAX_PROBLEMS = 100
UNREAD = -1
"""``EpisodeRow.ended_ns`` of an episode that ended inside the checkpoint the index started
from, its commit time not read yet (:meth:`RunIndex.read_times` reads it for the rows shown)."""


@attrs.define(slots=True)
class TaskRow:
    task_id: str
    slot: str
    domain: str = ""
    status: str = "pending"  # pending | kept | discarded
    reason: str = ""
    chain: list[str] = attrs.field(factory=list)
    needed: int = 0
    distractors: int = 0
    instruction: str = ""
    goals: int = 0
    env_tools: int = 0
    background: int = 0
    golden_calls: int | None = None
    tokens: int = 0
    """Tokens of the LLM calls made for the task (the run summary's ``task_tokens``)."""
    requests: list[str] = attrs.field(factory=list)
    """The user's requests, whitespace folded (what an episode's user messages are matched against)."""


@attrs.define(slots=True)
class EpisodeRow:
    episode_id: str
    task_id: str
    slot: str
    served: bool
    """An episode served to an outside policy (``.../s<k>``), not a local rollout (``.../g<k>``)."""
    started_ns: int = 0
    ended_ns: int | None = None
    reason: str | None = None
    fault: str | None = None
    turns: int | None = None
    tool_calls: int | None = None
    reward: float | None = None
    reward_version: str | None = None
    events: int = 0
    raised: int = 0
    """Which of the task's requests a user message has held so far (a bit per request)."""

    @property
    def requests_raised(self) -> int:
        return max(1, self.raised.bit_count())

    @property
    def status(self) -> str:
        if self.reward is not None:
            return "scored"
        return "ended" if self.ended_ns is not None else "running"

    @property
    def ending(self) -> str | None:
        return None if self.reason is None else f"{self.reason}/{self.fault}"


@attrs.define(slots=True)
class SlotStats:
    """One domain's episode figures, kept up to date as episodes end and are scored (a
    regrade's newer reward replaces the older one), so the run page costs O(domains)."""

    running: int = 0
    served: int = 0
    """Served episodes (``.../s<k>``) that are scored; counted apart from local ones."""
    scored: int = 0
    """Local episodes with a reward (what pass@k, turns and endings are over)."""
    turns: int = 0
    tool_calls: int = 0
    ended: int = 0
    """Scored local episodes that have ended (what the mean episode tool calls are over)."""
    requests: int = 0
    """User requests raised over the scored local episodes."""
    endings: dict[str, int] = attrs.field(factory=dict)
    reward_bins: list[int] = attrs.field(factory=lambda: [0] * 10)
    turn_counts: dict[int, int] = attrs.field(factory=dict)
    call_counts: dict[int, int] = attrs.field(factory=dict)
    task_rewards: dict[str, dict[str, float]] = attrs.field(factory=dict)


def _bump(counts: dict[Any, int], key: Any, by: int) -> None:
    value = counts.get(key, 0) + by
    if value:
        counts[key] = value
    else:
        counts.pop(key, None)


def reward_bin(reward: float) -> int:
    """Which tenth of [0, 1] a reward falls in (1.0 in the last)."""
    return min(9, max(0, int(math.floor(reward * 10 + 1e-9))))


@attrs.define
class RunIndex:
    """See the module doc. ``seq`` is the last record folded; ``version`` counts updates."""

    seq: int = 0
    events: int = 0
    version: int = 0
    synth: RunView = attrs.field(factory=RunView)
    tasks: dict[str, TaskRow] = attrs.field(factory=dict)
    episodes: dict[str, EpisodeRow] = attrs.field(factory=dict)
    tasks_by_slot: dict[str, list[str]] = attrs.field(factory=dict)
    episodes_by_task: dict[str, list[str]] = attrs.field(factory=dict)
    episodes_by_slot: dict[str, list[str]] = attrs.field(factory=dict)
    stats: dict[str, SlotStats] = attrs.field(factory=dict)
    streams: dict[str, int] = attrs.field(factory=dict)
    """Events per stream kind (``domain``, ``tool``, ``task``, ``episode``, ...)."""
    types: dict[str, int] = attrs.field(factory=dict)
    throughput: dict[int, list[int]] = attrs.field(factory=dict)
    """Commit second -> [events, llm calls, tool calls, episodes ended]."""
    checks: CheckFindings = attrs.field(factory=CheckFindings)
    """What the checks recorded in the log (``check/*`` streams) found."""
    problems: list[dict[str, Any]] = attrs.field(factory=list)
    problem_count: int = 0
    unknown: int = 0
    census_seq: int = 0
    """The census of a checkpointed prefix (see :meth:`start`) has read records ``1..census_seq``."""
    census_to: int = 0
    """The seq of the checkpoint the index started from (0: it folded the log from its start)."""
    log: Log | None = attrs.field(default=None, eq=False, repr=False)
    """The log the index started from a checkpoint of (read for the rows' commit times)."""

    # -- starting from the run's checkpoint -------------------------------------------
    def start(self, log: Log) -> bool:
        """Start an empty index from the newest valid projection checkpoint of ``log``
        (:func:`scaleenv._replay.checkpoint.load_newest`; none: False, nothing done).

        What the checkpoint holds is taken from it: the synthesis view, event counts by
        type, a :class:`TaskRow` per task (from its light fields: no database state is
        read), an :class:`EpisodeRow` per episode (from its summary entry, plus the commit
        time of its first record, read through the stream index), and the ``check/*``
        streams through the checkpoint's seq. What it does not hold, each commit second's
        counts (:attr:`throughput`) and damaged records (:attr:`problems`), is read by
        :meth:`census` over the checkpointed prefix; an ended episode's commit time is
        read when its row is shown (:meth:`read_times`). The rows equal those of a fold
        of the same records from the start. Synchronous; O(tasks + episodes), not O(log)."""
        if self.seq or self.events:
            return False
        found = load_newest(log)
        if found is None:
            return False
        view, seq = found
        self.log = log
        self.synth = RunView(domains=view.domains)
        self.types = dict(view.types)
        self.events = view.events
        digests = view.digests
        others = getattr(digests, "others", digests)
        for stream, d in others.items():
            if not stream.startswith("episode/"):
                kind = kind_of(stream)
                self.streams[kind] = self.streams.get(kind, 0) + d.count
        tasks: dict[str, TaskView] = view.tasks
        for _, task_id in sorted((_first_record(log, task_stream(t))[0], t) for t in tasks):
            row = self.tasks[task_id] = TaskRow(**_task_fields(tasks[task_id]))
            self.tasks_by_slot.setdefault(row.slot, []).append(task_id)
        rows = []
        for ep in view.episodes.summaries():  # type: ignore[attr-defined]
            eid = ep.episode_id
            stream = episode_stream(eid)
            first, wall_ns = _first_record(log, stream)
            d = digests.get(stream)
            rows.append((first, eid, ep, wall_ns, d.count if d is not None else 0))
        rows.sort(key=lambda r: (r[0], r[1]))
        episode_kind = 0
        for _, eid, ep, wall_ns, count in rows:
            row = self._new_episode(eid, wall_ns)
            self._account(row, -1)
            task_id = ep.task_id or row.task_id
            if task_id != row.task_id:
                self.episodes_by_task[row.task_id].remove(eid)
                self.episodes_by_slot[row.slot].remove(eid)
                row.task_id, row.slot = task_id, slot_of(task_id)
                self.episodes_by_task.setdefault(row.task_id, []).append(eid)
                self.episodes_by_slot.setdefault(row.slot, []).append(eid)
            row.events = count
            episode_kind += count
            if ep.ended is not None:
                row.ended_ns = UNREAD
                e = ep.ended
                row.reason, row.fault, row.turns, row.tool_calls = e.reason, e.fault, e.turns, e.tool_calls
            reward = ep.reward
            if reward is not None:
                row.reward, row.reward_version = reward.reward, reward.reward_version
            task = self.tasks.get(row.task_id)
            if task is not None and task.requests:
                for content in ep.user_messages:
                    said = " ".join(content.split())
                    for i, request in enumerate(task.requests):
                        if request in said:
                            row.raised |= 1 << i
            self._account(row, 1)
        if episode_kind:
            self.streams["episode"] = self.streams.get("episode", 0) + episode_kind
        for stream, _ in log.streams("check/"):
            for s, raw in log.read_stream_raw(stream, 0, seq):
                record = _decode(self, raw, s, log.codec)
                if record is not None:
                    apply_check(self.checks, record)
        self.seq = self.census_to = seq
        self.version += 1
        return True

    def census(self, log: Log, limit: int | None = None) -> int:
        """Read up to ``limit`` more records of the checkpointed prefix the index started
        from (:meth:`start`) for what the checkpoint does not hold: each record's commit
        second in :attr:`throughput`, damaged records in :attr:`problems`. Only each
        record's envelope and tag are decoded. Returns how many were read (0: done)."""
        if self.census_seq >= self.census_to:
            return 0
        to_seq = self.census_to if limit is None else min(self.census_to, self.census_seq + limit)
        envelope, throughput = _ENVELOPE.decode, self.throughput
        count = 0
        for chunk in log.read_raw(self.census_seq + 1, to_seq):
            for seq, raw in chunk:
                count += 1
                try:
                    _, stream, _n, _cause, _actor, wall_ns, event_raw = envelope(unframe(raw, seq))
                    tag = _tag(event_raw)
                except RecordDamaged as exc:
                    self._problem(seq, exc.reason)
                    continue
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    self._problem(seq, f"undecodable record: {exc}")
                    continue
                except LogError as exc:
                    self._problem(seq, str(exc))
                    continue
                second = wall_ns // 1_000_000_000
                bucket = throughput.get(second)
                if bucket is None:
                    bucket = throughput[second] = [0, 0, 0, 0]
                bucket[0] += 1
                if tag == "llm.called":
                    bucket[1] += 1
                elif stream.startswith("episode/"):
                    if tag == "episode.tool":
                        bucket[2] += 1
                    elif tag == "episode.ended":
                        bucket[3] += 1
        self.census_seq = to_seq
        self.version += 1
        return max(count, 1)

    def read_times(self, rows: Iterable[EpisodeRow]) -> None:
        """Fill in the commit time of each of ``rows`` that ended inside the checkpoint the
        index started from (:data:`UNREAD`): its stream's last ``episode.ended`` record,
        found from the stream's end through the per-stream index."""
        log = self.log
        for row in rows:
            if row.ended_ns != UNREAD or log is None:
                continue
            stream = episode_stream(row.episode_id)
            for from_n in (max(0, row.events - 4), 0):
                found = None
                for seq, raw in log.read_stream_raw(stream, from_n, self.census_to):
                    try:
                        _, _s, _n, _c, _a, wall_ns, event_raw = _ENVELOPE.decode(unframe(raw, seq))
                        if _tag(event_raw) == "episode.ended":
                            found = wall_ns
                    except (RecordDamaged, LogError, msgspec.DecodeError, msgspec.ValidationError):
                        continue
                if found is not None or from_n == 0:
                    break
            row.ended_ns = found if found is not None else 0

    # -- folding ------------------------------------------------------------------
    def feed(self, seq: int, raw: bytes | memoryview, codec: Codec) -> None:
        """Fold one stored record (its bytes as the log holds them)."""
        self.feed_records([(seq, raw)], codec)

    def feed_records(self, records: Iterable[tuple[int, bytes | memoryview]], codec: Codec) -> int:
        """Fold ``(seq, bytes)`` pairs in order; returns how many.

        The hot loop of a cold start (every record of a large log passes here once), so
        it keeps to local names; most records are only counted."""
        count = good = 0
        envelope, streams, types, throughput, episodes = _ENVELOPE.decode, self.streams, self.types, self.throughput, self.episodes
        seq = self.seq
        for seq, raw in records:
            count += 1
            try:
                _, stream, n, _cause, _actor, wall_ns, event_raw = envelope(unframe(raw, seq))
                tag = _tag(event_raw)
            except RecordDamaged as exc:
                self._problem(seq, exc.reason)
                continue
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._problem(seq, f"undecodable record: {exc}")
                continue
            except LogError as exc:  # a newer record format
                self._problem(seq, str(exc))
                continue
            good += 1
            kind = kind_of(stream)
            rest = stream[len(kind) + 1:]  # the id inside the stream (slot, slot/tool, task id, episode id)
            streams[kind] = streams.get(kind, 0) + 1
            types[tag] = types.get(tag, 0) + 1
            second = wall_ns // 1_000_000_000
            bucket = throughput.get(second)
            if bucket is None:
                bucket = throughput[second] = [0, 0, 0, 0]
            bucket[0] += 1
            if kind == "episode":
                row = episodes.get(rest)
                if row is None:
                    row = self._new_episode(rest, wall_ns)
                if n >= row.events:
                    row.events = n + 1
                if tag == "llm.called":
                    bucket[1] += 1
                elif tag in EPISODE_TAGS:
                    if tag == "episode.ended":
                        bucket[3] += 1
                    record = _decode(self, raw, seq, codec)
                    if record is not None:
                        self._episode(row, record.event, wall_ns)
                elif tag == "episode.tool":
                    bucket[2] += 1
                elif tag == "episode.message":
                    self._said(row, event_raw, seq)
            elif tag == "llm.called" and kind not in ("domain", "tool"):
                bucket[1] += 1
                if kind == "task":
                    self._task_tokens(rest, event_raw, seq)
            elif kind in ("domain", "tool"):
                bucket[1] += tag == "llm.called"
                record = _decode(self, raw, seq, codec)
                if record is not None:
                    apply_projection(self.synth, record)
            elif kind == "task" and tag in TASK_TAGS:
                record = _decode(self, raw, seq, codec)
                if record is not None:
                    self._task(rest, record.event)
            elif kind == "check":
                record = _decode(self, raw, seq, codec)
                if record is not None:
                    apply_check(self.checks, record)
        if count:
            self.events += good
            self.seq = max(self.seq, seq)
            self.version += 1
        return count

    def _new_episode(self, episode_id: str, wall_ns: int) -> EpisodeRow:
        task_id = task_of_episode(episode_id)
        row = self.episodes[episode_id] = EpisodeRow(
            episode_id=episode_id, task_id=task_id, slot=slot_of(task_id), served=is_served(episode_id), started_ns=wall_ns)
        self.episodes_by_task.setdefault(task_id, []).append(episode_id)
        self.episodes_by_slot.setdefault(row.slot, []).append(episode_id)
        self._account(row, 1)
        return row

    def _account(self, row: EpisodeRow, sign: int) -> None:
        """Add (+1) or take back (-1) what ``row`` contributes to its domain's :class:`SlotStats`."""
        st = self.stats.get(row.slot)
        if st is None:
            st = self.stats[row.slot] = SlotStats()
        if row.ended_ns is None:
            st.running += sign
        if row.reward is None:
            return
        if row.served:
            st.served += sign
            return
        st.scored += sign
        per = st.task_rewards.setdefault(row.task_id, {})
        if sign > 0:
            per[row.episode_id] = row.reward
        else:
            per.pop(row.episode_id, None)
            if not per:
                del st.task_rewards[row.task_id]
        st.turns += sign * (row.turns or 0)
        st.tool_calls += sign * (row.tool_calls or 0)
        st.ended += sign * (row.ended_ns is not None)
        st.requests += sign * row.requests_raised
        st.reward_bins[reward_bin(row.reward)] += sign
        if row.ending is not None:
            _bump(st.endings, row.ending, sign)
        if row.turns is not None:
            _bump(st.turn_counts, row.turns, sign)
        if row.tool_calls is not None:
            _bump(st.call_counts, row.tool_calls, sign)

    def _problem(self, seq: int, reason: str) -> None:
        """List a damaged record; the first :data:`MAX_PROBLEMS` by seq are kept (the census of
        a checkpointed prefix may find some after the records past it)."""
        self.problem_count += 1
        problems = self.problems
        if len(problems) < MAX_PROBLEMS or seq < problems[-1]["seq"]:
            at = len(problems)
            while at and problems[at - 1]["seq"] > seq:
                at -= 1
            problems.insert(at, {"seq": seq, "reason": reason})
            del problems[MAX_PROBLEMS:]

    def _task_row(self, task_id: str) -> TaskRow:
        row = self.tasks.get(task_id)
        if row is None:
            slot = slot_of(task_id)
            row = self.tasks[task_id] = TaskRow(task_id=task_id, slot=slot)
            self.tasks_by_slot.setdefault(slot, []).append(task_id)
        return row

    def _task_tokens(self, task_id: str, event_raw: msgspec.Raw, seq: int) -> None:
        try:
            used = _TOKENS.decode(event_raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._problem(seq, f"undecodable LLM call: {exc}")
            return
        self._task_row(task_id).tokens += used.prompt_tokens + used.completion_tokens

    def _said(self, row: EpisodeRow, event_raw: msgspec.Raw, seq: int) -> None:
        """Mark the task's requests a user message holds (as the run summary counts them)."""
        task = self.tasks.get(row.task_id)
        if task is None or not task.requests:
            return
        try:
            message = _SAID.decode(event_raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._problem(seq, f"undecodable message: {exc}")
            return
        if message.role != "user":
            return
        said = " ".join(message.content.split())
        raised = row.raised
        for i, request in enumerate(task.requests):
            if request in said:
                raised |= 1 << i
        if raised != row.raised:
            self._account(row, -1)
            row.raised = raised
            self._account(row, 1)

    def _task(self, task_id: str, event: Any) -> None:
        row = self._task_row(task_id)
        if isinstance(event, ChainSampled):
            row.domain = event.domain
            row.chain = list(event.tools)
        elif isinstance(event, TaskInstantiated):
            row.needed = len(event.needed)
            row.distractors = len(event.distractors)
            row.goals = len(event.goal_ends) or (1 if event.steps else 0)
            if event.goal_ends:
                row.chain = [s.tool for s in event.steps]
            row.env_tools = len(event.env_tools)
            row.background = event.background
        elif isinstance(event, GoldenChainExecuted):
            row.golden_calls = len(event.steps)
        elif isinstance(event, InstructionWritten):
            row.instruction = event.instruction
            row.requests = [" ".join(r.split()) for r in event.requests]
        elif isinstance(event, TaskKept):
            row.status = "kept"
        elif isinstance(event, TaskDiscarded):
            row.status = "discarded"
            row.reason = event.reason

    def _episode(self, row: EpisodeRow, event: Any, wall_ns: int) -> None:
        self._account(row, -1)
        if isinstance(event, EpisodeStarted):
            if event.task_id != row.task_id:  # the event is the authority on its task
                self.episodes_by_task[row.task_id].remove(row.episode_id)
                self.episodes_by_slot[row.slot].remove(row.episode_id)
                row.task_id, row.slot = event.task_id, slot_of(event.task_id)
                self.episodes_by_task.setdefault(row.task_id, []).append(row.episode_id)
                self.episodes_by_slot.setdefault(row.slot, []).append(row.episode_id)
        elif isinstance(event, EpisodeEnded):
            row.ended_ns = wall_ns
            row.reason, row.fault, row.turns, row.tool_calls = event.reason, event.fault, event.turns, event.tool_calls
        elif isinstance(event, RewardGiven):
            row.reward, row.reward_version = event.reward, event.reward_version
        self._account(row, 1)

    def catch_up(self, log: Log, limit: int | None = None) -> int:
        """Fold up to ``limit`` records committed after :attr:`seq`; returns how many."""
        to_seq = None if limit is None else self.seq + limit
        count = 0
        for chunk in log.read_raw(self.seq + 1, to_seq):
            count += self.feed_records(chunk, log.codec)
        return count

    # -- reading ------------------------------------------------------------------
    @property
    def slots(self) -> list[str]:
        return sorted(set(self.synth.domains) | set(self.tasks_by_slot) | set(self.episodes_by_slot))

    def domain_figures(self) -> list[dict[str, Any]]:
        """Per domain, the figures of the run summary (``scaleenv run``'s table), plus live counts."""
        synth = summary(self.synth)["domains"]
        return [self.figures(slot, synth) for slot in self.slots]

    def figures(self, slot: str, synth_figures: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One domain's figures (see :meth:`domain_figures`); O(tasks), not O(episodes).

        What synthesis made (tools, tables, repairs, edges, LLM calls, ...) is the run
        summary's own (:func:`scaleenv._runner.summary` of the synthesis streams' view), so
        a figure the summary gains shows here too; tasks and episodes come from the index."""
        st = self.stats.get(slot) or SlotStats()
        synth = next((d for d in (synth_figures if synth_figures is not None else summary(self.synth)["domains"])
                      if d["slot"] == slot), {"slot": slot, "name": "", "status": "designing"})
        tasks = [self.tasks[t] for t in self.tasks_by_slot.get(slot, [])]
        kept = [t for t in tasks if t.status == "kept"]
        discarded: dict[str, int] = {}
        for t in tasks:
            if t.status == "discarded":
                discarded[t.reason] = discarded.get(t.reason, 0) + 1
        by_task = {t: list(v.values()) for t, v in st.task_rewards.items()}
        k = max((len(v) for v in by_task.values()), default=0)

        def mean(values: list[int]) -> float | None:
            return round(sum(values) / len(values), 2) if values else None

        task_tokens = sum(t.tokens for t in tasks)
        return {
            **{key: value for key, value in synth.items() if not key.startswith("pass_at_")},
            "tasks": len(kept),
            "tasks_pending": sum(t.status == "pending" for t in tasks),
            "tasks_discarded": discarded,
            "mean_chain_length": round(sum(len(t.chain) for t in kept) / len(kept), 2) if kept else 0.0,
            "distractors_per_task": round(sum(t.distractors for t in kept) / len(kept), 2) if kept else 0.0,
            "mean_env_tools": mean([t.env_tools for t in kept]),
            "mean_goals": mean([t.goals for t in kept]),
            "mean_golden_tool_calls": mean([t.golden_calls for t in kept if t.golden_calls is not None]),
            "mean_background_rows": mean([t.background for t in kept]),
            "task_tokens": task_tokens,
            "tokens_per_task": round((synth.get("tokens", 0) + task_tokens) / len(kept)) if kept else None,
            "episodes": st.scored,
            "served_episodes": st.served,
            "episodes_running": st.running,
            "pass_at_1": round(sum(sum(v) / len(v) for v in by_task.values()) / len(by_task), 4) if by_task else None,
            "k": k,
            "pass_at_k": (round(sum(pass_at_k(len(v), int(sum(v)), k) for v in by_task.values()) / len(by_task), 4)
                          if by_task else None),
            "mean_turns": round(st.turns / st.scored, 2) if st.scored else None,
            "mean_tool_calls": round(st.tool_calls / st.scored, 2) if st.scored else None,
            "mean_episode_tool_calls": round(st.tool_calls / st.ended, 2) if st.ended else None,
            "mean_user_requests": round(st.requests / st.scored, 2) if st.scored else None,
            "end_reasons": dict(st.endings),
        }

    def charts(self) -> dict[str, Any]:
        """The run page's distributions, per domain slot, over scored local episodes."""
        scored = {slot: st for slot, st in sorted(self.stats.items()) if st.scored}
        return {
            "reward": {"edges": [round(0.1 * i, 1) for i in range(11)],
                       "series": {slot: list(st.reward_bins) for slot, st in scored.items()}},
            "turns": _histogram({slot: st.turn_counts for slot, st in scored.items()}),
            "tool_calls": _histogram({slot: st.call_counts for slot, st in scored.items()}),
            "endings": {slot: dict(st.endings) for slot, st in scored.items() if st.endings},
        }

    def throughput_series(self, points: int = 240) -> dict[str, Any]:
        """Commits over time, in at most ``points`` buckets: per second rates of each count."""
        if not self.throughput:
            return {"start_ns": None, "bucket_s": 1, "series": {}, "t": []}
        first, last = min(self.throughput), max(self.throughput)
        width = max(1, math.ceil((last - first + 1) / points))
        n = (last - first) // width + 1
        names = ("events", "llm_calls", "tool_calls", "episodes_ended")
        series = {name: [0.0] * n for name in names}
        for second, counts in self.throughput.items():
            i = (second - first) // width
            for name, c in zip(names, counts):
                series[name][i] += c / width
        return {"start_ns": first * 1_000_000_000, "bucket_s": width,
                "t": [i * width for i in range(n)],
                "series": {k: [round(v, 2) for v in vs] for k, vs in series.items()}}

    def task_rows(self, slot: str | None = None, status: str | None = None) -> list[TaskRow]:
        ids = self.tasks_by_slot.get(slot, []) if slot else list(self.tasks)
        rows = [self.tasks[t] for t in ids]
        if status:
            rows = [r for r in rows if r.status == status]
        return sorted(rows, key=lambda r: natural_key(r.task_id))

    def episode_rows(self, *, task: str | None = None, slot: str | None = None, ending: str | None = None,
                     status: str | None = None, min_reward: float | None = None,
                     max_reward: float | None = None) -> list[EpisodeRow]:
        if task is not None:
            rows = [self.episodes[e] for e in self.episodes_by_task.get(task, [])]
            rows.sort(key=lambda r: natural_key(r.episode_id))
        elif slot:
            rows = [self.episodes[e] for e in self.episodes_by_slot.get(slot, [])]
        else:
            rows = list(self.episodes.values())
        if slot:
            rows = [r for r in rows if r.slot == slot]
        if ending:
            rows = [r for r in rows if r.ending == ending or r.reason == ending]
        if status:
            rows = [r for r in rows if r.status == status]
        if min_reward is not None:
            rows = [r for r in rows if r.reward is not None and r.reward >= min_reward]
        if max_reward is not None:
            rows = [r for r in rows if r.reward is not None and r.reward <= max_reward]
        return rows


def _tag(event: msgspec.Raw) -> str:
    """An event's tag. msgspec writes a tagged struct's tag first (``{"type": "llm.called", ...}``),
    so it is read from the first bytes; anything laid out otherwise is decoded the slow way."""
    b = memoryview(event)
    head = b[0]
    i = 1 if 0x80 <= head <= 0x8F else 3 if head == 0xDE else 5 if head == 0xDF else 0
    if i and b[i:i + 5] == b"\xa4type":
        size = b[i + 5]
        if 0xA0 <= size <= 0xBF:
            return bytes(b[i + 6:i + 6 + (size & 0x1F)]).decode()
    return _KIND.decode(event).type


def _first_record(log: Log, stream: str) -> tuple[int, int]:
    """(seq, commit ns) of a stream's first record, through the per-stream index (that
    record alone is read); (0, 0): none, or a commit time of 0 for a damaged one."""
    first = log.stream_seq(stream)
    if first is None:
        return 0, 0
    try:
        for chunk in log.read_raw(first, first):
            for seq, raw in chunk:
                return seq, _ENVELOPE.decode(unframe(raw, seq))[5]
    except (RecordDamaged, LogError, msgspec.DecodeError, msgspec.ValidationError):
        pass
    return first, 0


class _GoldenSteps(msgspec.Struct):
    """A golden chain's steps, each left undecoded (a task row counts them)."""

    steps: list[msgspec.Raw] = []


_GOLDEN_STEPS = msgspec.msgpack.Decoder(_GoldenSteps)


def _task_fields(t: TaskView) -> dict[str, Any]:
    """A :class:`TaskRow`'s fields from the projection's view of the task (what
    :meth:`RunIndex._task` builds from its records; no database state is read)."""
    golden = golden_bytes(t)  # counted without decoding the chain (a stored task keeps it as bytes)
    return {"task_id": t.task_id, "slot": slot_of(t.task_id), "domain": t.domain, "status": t.status, "reason": t.reason,
            "chain": list(t.chain), "needed": len(t.needed), "distractors": len(t.distractors),
            "instruction": t.instruction, "goals": t.goals, "env_tools": len(t.env_tools),
            "background": t.background, "golden_calls": len(_GOLDEN_STEPS.decode(golden).steps) if golden is not None else None,
            "tokens": t.tokens, "requests": [" ".join(r.split()) for r in t.requests]}


def _decode(index: RunIndex, raw: bytes | memoryview, seq: int, codec: Codec) -> Any:
    """The whole record, or None (a damaged one is listed, an unknown type counted)."""
    try:
        return codec.decode(raw, seq)
    except RecordDamaged as exc:
        index._problem(seq, exc.reason)
    except LogError:  # an event type (or a version of one) this code does not know
        index.unknown += 1
    return None


def _histogram(per_slot: dict[str, dict[int, int]], max_bars: int = 30) -> dict[str, Any]:
    """Integer values -> bars of equal width (at most ``max_bars``), per slot."""
    top = max((v for counts in per_slot.values() for v in counts), default=0)
    width = max(1, math.ceil((top + 1) / max_bars))
    bars = top // width + 1
    series = {}
    for slot, counts in per_slot.items():
        out = [0] * bars
        for value, c in counts.items():
            out[value // width] += c
        series[slot] = out
    return {"edges": [i * width for i in range(bars + 1)], "width": width, "series": series}


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[Any, ...]:
    """``d00/t3/g10`` sorts after ``d00/t3/g9``."""
    return tuple(int(p) if p.isdigit() else p for p in _DIGITS.split(text))


class Follower:
    """Keeps a :class:`RunIndex` up to date with a log; wakes waiters when it moved."""

    def __init__(self, log: Log, index: RunIndex | None = None, *, slice_size: int = 20_000,
                 poll_interval: float = 0.25, start_from_checkpoint: bool = True) -> None:
        self.log = log
        self.start_from_checkpoint = start_from_checkpoint
        self.index = index or RunIndex()
        self.slice_size = slice_size
        self.poll_interval = poll_interval
        self.caught_up = trio.Event()
        self._moved = trio.Event()

    @property
    def log_seq(self) -> int:
        return self.log.last_seq()

    async def run(self) -> None:
        """Start from the log's projection checkpoint when there is one (:meth:`RunIndex.start`),
        fold the records after it, read the checkpointed prefix's commit times
        (:meth:`RunIndex.census`), then poll for new commits; runs until cancelled
        (cancellation lands between slices, never inside one: the index stays consistent)."""
        if self.start_from_checkpoint and self.index.start(self.log):
            self._moved.set()
            self._moved = trio.Event()
            await trio.lowlevel.checkpoint()
        while True:
            got = self.index.catch_up(self.log, self.slice_size) or self.index.census(self.log, self.slice_size)
            if got:
                self._moved.set()
                self._moved = trio.Event()
                await trio.lowlevel.checkpoint()
                continue
            self.caught_up.set()
            await trio.sleep(self.poll_interval)

    async def wait_past(self, seq: int, timeout: float) -> None:
        """Return once the index is past ``seq`` or after ``timeout`` seconds."""
        with trio.move_on_after(timeout):
            while self.index.seq <= seq:
                await self._moved.wait()
