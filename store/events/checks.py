"""Check events: what ``scaleenv replay --verify`` and ``scaleenv rerun`` found.

Stream: ``check/<checker>`` (``check/verify``, ``check/rerun``). A check of a run is a
fact about the run, not part of it: these streams are left out of the run digest
(:func:`scaleenv._store.record.run_digest`), so recording a check never changes what a
run digests to, and logs written before checks existed keep their digests.

One check appends, in one commit, a :class:`StreamDiverged` per stream whose first
divergence it found, then one :class:`CheckFinished`. The findings of a checker are those
of its newest finished check (``scaleenv._replay.checks`` folds them).
"""

from __future__ import annotations

from typing import Any

import msgspec

from .base import Event


class FieldDifference(msgspec.Struct, frozen=True, kw_only=True):
    """One field the re-execution or re-run got otherwise than the log recorded."""

    field: str
    expected: Any = None
    got: Any = None


class StreamDiverged(Event, tag="check.diverged"):
    """The first position of ``stream`` where a check got something else than recorded."""

    checker: str
    """``verify`` (re-executed tool calls) or ``rerun`` (re-run agents)."""
    stream: str
    n: int
    """The diverging position in ``stream`` (a re-run may name one past its end: an extra event)."""
    kind: str
    """verify: ``tests`` | ``golden`` | ``episode``; rerun: ``event`` | ``extra`` | ``missing``."""
    where: str = ""
    """What was compared: the test case, golden step or call id; the event type for a re-run."""
    differences: list[FieldDifference] = msgspec.field(default_factory=list)
    detail: str = ""
    """The checker's own text for it, as its command prints it."""


class CheckFinished(Event, tag="check.finished"):
    """A check ran to its end: it compared ``streams`` streams (``checked`` calls or events)."""

    checker: str
    streams: int
    checked: int
    divergences: int
    errors: list[str] = msgspec.field(default_factory=list)
    """Streams the check could not compare, one line each."""


CHECK_EVENTS = (StreamDiverged, CheckFinished)
