"""What the checks of a run found: a fold of the ``check/`` streams, and their recording.

``scaleenv replay --verify`` (re-executes the recorded tool calls) and ``scaleenv rerun``
(re-runs the agents against the recorded model outputs) record what they found in the
run's log (``scaleenv._store.events.checks``): one :class:`StreamDiverged` per stream that
diverged (its first divergence), then a :class:`CheckFinished`, all in one commit, in
the stream ``check/<checker>``. :func:`apply` folds those events into
:class:`CheckFindings`: per checker, the findings of its newest finished check (a check
that found nothing clears the findings of the one before), so the episode page of
``scaleenv ui`` can link to where an episode first diverged.

:func:`record_check` appends a check's findings; it takes the log's writer lock, and
returns why it could not (another process writes the log) instead of raising.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import lmdb
import trio

from scaleenv._store.errors import LogError
from scaleenv._store.events.checks import CheckFinished, FieldDifference, StreamDiverged
from scaleenv._store.log import Log
from scaleenv._store.record import Record, event_tag
from scaleenv._store.stream import Divergence, Stream
from scaleenv._streams import CHECK, CHECKERS, check_stream


@attrs.frozen
class Finding:
    """A stream's first divergence as a check recorded it, and which check run found it."""

    checker: str
    event: StreamDiverged
    check_n: int
    """The position of the :class:`CheckFinished` that closed the check (its stream ``check/<checker>``)."""
    wall_ns: int

    def to_json(self) -> dict[str, Any]:
        e = self.event
        return {"checker": self.checker, "stream": e.stream, "n": e.n, "kind": e.kind, "where": e.where,
                "differences": [{"field": d.field, "expected": d.expected, "got": d.got} for d in e.differences],
                "detail": e.detail, "check": f"{check_stream(self.checker)}#{self.check_n}", "wall_ns": self.wall_ns}


@attrs.define
class CheckFindings:
    """Per checker, the streams its newest finished check found diverging (stream -> finding)."""

    by_checker: dict[str, dict[str, Finding]] = attrs.field(factory=dict)
    finished: dict[str, CheckFinished] = attrs.field(factory=dict)
    """Each checker's newest finished check."""
    _pending: dict[str, list[tuple[int, StreamDiverged]]] = attrs.field(factory=dict)

    def for_stream(self, stream: str) -> list[Finding]:
        """The findings about ``stream``, one per checker that found it diverging (verify first)."""
        return [f for c in CHECKERS if (f := self.by_checker.get(c, {}).get(stream)) is not None]


def apply(findings: CheckFindings, record: Record) -> CheckFindings:
    """``findings`` after ``record`` (updated in place and returned); records of other streams are ignored."""
    if not record.stream.startswith(CHECK):
        return findings
    checker = record.stream[len(CHECK):]
    event = record.event
    if isinstance(event, StreamDiverged):
        findings._pending.setdefault(checker, []).append((record.n, event))
    elif isinstance(event, CheckFinished):
        found = findings._pending.pop(checker, [])
        findings.by_checker[checker] = {e.stream: Finding(checker, e, record.n, record.wall_ns) for _, e in found}
        findings.finished[checker] = event
    return findings


def fold(records: Iterable[Record]) -> CheckFindings:
    findings = CheckFindings()
    for r in records:
        apply(findings, r)
    return findings


def read_findings(event_log: Log) -> CheckFindings:
    """The findings recorded in ``event_log`` (reads only its ``check/`` streams)."""
    findings = CheckFindings()
    for c in CHECKERS:
        for r in event_log.read_stream(check_stream(c)):
            apply(findings, r)
    return findings


def rerun_divergence(d: Divergence) -> StreamDiverged:
    """A re-run's :class:`Divergence` as the event that records it."""
    if d.expected is None:
        kind, where = "extra", event_tag(d.got[0]) if d.got else ""
    elif d.got is None:
        kind, where = "missing", d.expected.type
    else:
        kind, where = "event", d.expected.type
    diffs = [FieldDifference(field=f, expected=a, got=b) for f, a, b in d.differences()]
    return StreamDiverged(checker="rerun", stream=d.stream, n=d.n, kind=kind, where=where, differences=diffs,
                          detail=str(d))


@attrs.frozen
class CheckReport:
    """One check to record: its divergences (one per stream) and what it compared."""

    checker: str
    divergences: Sequence[StreamDiverged]
    streams: int
    checked: int
    errors: Sequence[str] = ()


async def append_check(event_log: Log, report: CheckReport) -> int:
    """Append ``report`` to ``event_log`` (open for writing) in one commit; returns the
    position of its :class:`CheckFinished`. Awaits the commit; cancelled before the writer
    took it, nothing is appended (a commit is all the report or none of it)."""
    sid = check_stream(report.checker)
    recorded = list(event_log.read_stream(sid))
    finished = CheckFinished(checker=report.checker, streams=report.streams, checked=report.checked,
                             divergences=len(report.divergences), errors=list(report.errors))
    items = [(e, report.checker, None) for e in sorted(report.divergences, key=lambda e: (e.stream, e.n))]
    async with event_log.writer() as w:
        stream = Stream(w, sid, recorded=recorded, mode="append")
        refs = await stream.emit_many([*items, (finished, report.checker, None)])
    return refs[-1].n


def record_check(path: str | os.PathLike[str], report: CheckReport) -> str | None:
    """Open the log at ``path`` for writing and append ``report``; blocks (runs its own
    trio loop: call it from synchronous code, after closing any handle of this process on
    the log, since LMDB allows one per process). Returns None once committed, or the
    reason nothing was recorded when the log cannot be opened for writing (another process
    holds the writer lock, a read-only file system)."""
    try:
        event_log = Log.open(path, create=False)
    except (LogError, lmdb.Error, OSError) as exc:
        return str(exc)
    with event_log:
        trio.run(append_check, event_log, report)
    return None
