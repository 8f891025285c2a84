"""An episode's environment state at any stream position, folded with the projection's ``apply``.

The state of an episode after its first ``n`` records is the task's initial state (from
the ``task/<task_id>`` stream) folded with the ``ToolExecuted`` deltas among those
records (failed calls change nothing). The fold is exactly
:func:`scaleenv._replay.projection.apply` over a small :class:`RunView` that holds only
the task and the episode, so replayed state equals live state by construction.

:func:`seek` starts from the nearest valid snapshot at or before ``n`` (see
:mod:`scaleenv._replay.snapshots`) and reports how many events it touched.
"""

from __future__ import annotations

import itertools

import attrs

from scaleenv._store.events.episodes import EpisodeStarted
from scaleenv._store.log import Log
from scaleenv._store.record import Record, StreamDigest
from scaleenv._store.specs import DbState
from scaleenv._streams import DOMAIN, TASK, domain_stream, episode_id_of, task_stream

from .projection import DomainView, EpisodeView, RunView, TaskView, apply, fold


@attrs.define
class EpisodeFold:
    """A fold of one episode stream in progress: the view, and how many records it holds."""

    stream: str
    view: RunView
    n: int = 0
    touched: int = 0

    @property
    def episode(self) -> EpisodeView:
        return self.view.episodes[episode_id_of(self.stream)]

    @property
    def state(self) -> DbState:
        """The episode's state ({} before its EpisodeStarted has been folded)."""
        ep = self.view.episodes.get(episode_id_of(self.stream))
        return (ep.state if ep is not None else None) or {}

    @property
    def digest(self) -> StreamDigest:
        return self.view.digests.setdefault(self.stream, StreamDigest())

    def feed(self, record: Record) -> None:
        if record.stream != self.stream or record.n != self.n:
            raise ValueError(f"expected {self.stream}#{self.n}, got {record.stream}#{record.n}")
        apply(self.view, record)
        self.n += 1
        self.touched += 1


def task_id_of(log: Log, stream: str) -> str:
    """The task an episode belongs to (from its EpisodeStarted event)."""
    for r in log.read_stream(stream):
        if isinstance(r.event, EpisodeStarted):
            return r.event.task_id
        break
    parts = episode_id_of(stream).split("/")
    return "/".join(parts[:-1])


def task_view(log: Log, task_id: str) -> TaskView | None:
    """The task's projection, folded from its own stream only."""
    view = fold(log.read_stream(task_stream(task_id)))
    return view.tasks.get(task_id)


def task_ids(log: Log, limit: int | None = None) -> list[str]:
    """The ids of the log's tasks, sorted (the first ``limit``), from the per-stream index."""
    return [s[len(TASK):] for s, _ in itertools.islice(log.streams(TASK), limit)]


def domain_view(log: Log, slot: str) -> DomainView | None:
    """The domain's projection from its own stream only: its spec, outline, graph edges and
    verdict as :func:`scaleenv._replay.projection.fold` of the whole log gives them (not the
    counts the projection adds from its tools' streams: LLM calls, tokens, tool views)."""
    view = fold(log.read_stream(domain_stream(slot)))
    return view.domains.get(slot)


def find_domain(log: Log, name: str) -> tuple[DomainView | None, list[str]]:
    """The domain whose slot or name is ``name`` (a slot first, then names in slot order),
    reading domain streams only; and every domain's name (or slot), to say what there is."""
    if log.stream_length(domain_stream(name)) > 0:
        return domain_view(log, name), []
    known: list[str] = []
    for stream, _ in log.streams(DOMAIN):
        d = domain_view(log, stream[len(DOMAIN):])
        if d is not None and d.name == name:
            return d, []
        if d is not None:
            known.append(d.name or d.slot)
    return None, known


def start_fold(stream: str, task: TaskView | None) -> EpisodeFold:
    """An empty fold of ``stream`` whose view knows the task (for its initial state)."""
    view = RunView()
    if task is not None:
        view.tasks[task.task_id] = task
    return EpisodeFold(stream=stream, view=view)


def resume_fold(stream: str, task: TaskView | None, n: int, state: DbState, digest: StreamDigest,
                started: EpisodeStarted | None = None) -> EpisodeFold:
    """A fold positioned after ``n`` records, from a snapshot's state and digest."""
    f = start_fold(stream, task)
    eid = episode_id_of(stream)
    ep = EpisodeView(episode_id=eid, state=state)
    if started is not None:
        ep.task_id, ep.domain, ep.attempt, ep.seed = started.task_id, started.domain, started.attempt, started.seed
    f.view.episodes[eid] = ep
    f.view.digests[stream] = digest
    f.n = n
    return f


def fold_to(log: Log, f: EpisodeFold, n: int) -> EpisodeFold:
    """Advance ``f`` to position ``n`` reading only records ``f.n .. n-1``."""
    if n > f.n:
        for r in itertools.islice(log.read_stream(f.stream, from_n=f.n), n - f.n):
            f.feed(r)
    return f
