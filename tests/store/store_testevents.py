"""Test-only event types for the store tests (and their subprocess helpers)."""

from __future__ import annotations

from typing import ClassVar

from scaleenv._store.events.base import Event


class Said(Event, tag="test.said"):
    text: str
    k: int = 0


class Measured(Event, tag="test.measured"):
    value: float
    latency_s: float = 0.0

    digest_exclude: ClassVar[frozenset[str]] = frozenset({"latency_s"})


class Blob(Event, tag="test.blob"):
    data: bytes
    tags: list[str] = []


TEST_EVENT_TYPES: tuple[type[Event], ...] = (Said, Measured, Blob)
