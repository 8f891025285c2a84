"""The clock a sandbox session shows its tools: seeded, advancing by a fixed step per call.

Tool code reads the time through the usual names (``datetime.datetime.now()``,
``datetime.date.today()``, ``time.time()``, see ``scaleenv._sandbox.stdlib``), never
the host's clock. A session's clock starts at a given time (``SessionClock.at``) or one
drawn from a seed (``SessionClock.seeded``); its n-th call (0-based, counting every
``SandboxPool.call`` on the session, whatever its outcome) reads ``start + n * step``,
and every read within one call gives that same reading. The pool computes the reading
and sends it with the call, so a worker that dies and is replaced changes nothing.
The clock is naive local time in UTC: ``time.time()`` is the reading as UTC seconds.

Pure; the parent and the worker processes both use it.
"""

from __future__ import annotations

import datetime as _dt
import random

import msgspec

from scaleenv._seeding import derive_seed

DEFAULT_START = "2024-03-15 09:30:00"
"""Where a session's clock starts when the caller gives none (a Friday morning)."""

EPOCH = _dt.datetime(1970, 1, 1)
_US = _dt.timedelta(microseconds=1)
SEEDED_FROM = _dt.datetime(2024, 1, 1)
SEEDED_DAYS = 3 * 365
"""A seeded clock starts on a day of 2024-2026, between 08:00 and 17:59 at a whole minute."""


class ClockError(ValueError):
    """A clock start that is not a naive date and time (``YYYY-MM-DD HH:MM:SS``)."""


def parse_time(text: str) -> _dt.datetime:
    """``YYYY-MM-DD HH:MM[:SS[.ffffff]]`` (a ``T`` separator is fine) as a naive datetime."""
    try:
        value = _dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ClockError(f"clock start {text!r} is not a date and time like {DEFAULT_START!r}") from None
    if value.tzinfo is not None:
        raise ClockError(f"clock start {text!r} has a time zone; give naive local time (the sandbox runs in UTC)")
    return value


def format_time(value: _dt.datetime) -> str:
    """A reading as text: ``YYYY-MM-DD HH:MM:SS`` (``.ffffff`` when it has microseconds)."""
    return value.isoformat(sep=" ")


def to_us(value: _dt.datetime) -> int:
    """Microseconds since 1970-01-01 00:00 (naive UTC)."""
    return (value - EPOCH) // _US


def from_us(us: int) -> _dt.datetime:
    """The naive UTC datetime ``us`` microseconds after 1970-01-01 00:00."""
    return EPOCH + _dt.timedelta(microseconds=us)


class SessionClock(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A session's clock: its first reading (``start``) and the step between two calls."""

    start: str = DEFAULT_START
    step_s: float = 1.0

    def __post_init__(self) -> None:
        parse_time(self.start)
        if not (isinstance(self.step_s, int | float) and 0 <= self.step_s <= 86400 * 365):
            raise ClockError(f"clock step {self.step_s!r} must be between 0 and one year, in seconds")

    @classmethod
    def at(cls, start: str, step_s: float = 1.0) -> SessionClock:
        """A clock whose first call reads ``start`` (``"2024-03-15 09:30:00"``)."""
        return cls(start=format_time(parse_time(start)), step_s=step_s)

    @classmethod
    def seeded(cls, seed: int, step_s: float = 1.0) -> SessionClock:
        """A clock starting at a time drawn from ``seed`` (a working hour of 2024-2026)."""
        rng = random.Random(seed)
        day = SEEDED_FROM + _dt.timedelta(days=rng.randrange(SEEDED_DAYS))
        start = day.replace(hour=rng.randrange(8, 18), minute=rng.randrange(60))
        return cls(start=format_time(start), step_s=step_s)

    def reading_us(self, call: int) -> int:
        """The reading of the session's ``call``-th call (0-based), in microseconds since 1970."""
        return to_us(parse_time(self.start)) + call * round(self.step_s * 1_000_000)

    def reading(self, call: int) -> str:
        """The reading of the session's ``call``-th call (0-based), as text."""
        return format_time(from_us(self.reading_us(call)))


def task_clock(run_seed: int, task_id: str) -> SessionClock:
    """The clock of a task's sessions: its golden chain and every episode of it.

    One start per task, so an episode lives at the same present as the golden chain
    that made its expected state (a tool that stamps records with the time stamps them
    alike when the calls are the same)."""
    return SessionClock.seeded(derive_seed(run_seed, "clock", task_id))
