"""The base of every event payload.

Every fact scaleenv learns or decides is an :class:`Event` subclass: a frozen, tagged
msgspec Struct. The tag (the ``type`` field on the wire) is an explicit, stable,
dotted name (``llm.called``, ``tool.accepted``); never rename a tag once a log holds it.

Schema evolution rules (tested in tests/store/test_evolution.py):

- events are encoded as maps (never ``array_like``), so readers skip fields they do not
  know and fill defaults for fields that an older writer did not write;
- a new field must have a default; an existing field keeps its type;
- an event that changes meaning gets a new tag instead.

Fields listed in ``digest_exclude`` are facts about *this* execution (wall-clock
latency) and are left out of every digest.

A field added to an event type that logs already hold is listed in its class's
``digest_added`` with its default: while it holds that default it is left out of the
digest, so an event written before the field existed keeps the digest it had (golden
logs and ``replay --verify`` of old logs depend on it; tests/replay/test_golden.py).
The same holds inside the data an event carries: a spec struct lists its added fields in
``added`` (``scaleenv._store.specs.Evolving``), and an event that carries specs sets
``digest_nested`` so its digest drops them too while they hold their defaults.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class Event(msgspec.Struct, tag_field="type", frozen=True, kw_only=True):
    """Base class of all event payloads. Subclasses pass ``tag="area.what"``."""

    digest_exclude: ClassVar[frozenset[str]] = frozenset()
    digest_added: ClassVar[tuple[tuple[str, object], ...]] = ()
    digest_nested: ClassVar[bool] = False


class Ref(msgspec.Struct, frozen=True, array_like=True):
    """A deterministic pointer to an event: its stream and its position in that stream.

    Global sequence numbers depend on how trio interleaved streams, so causes are
    recorded as stream positions, which are the same in every run with the same seed.
    """

    stream: str
    n: int

    def __str__(self) -> str:
        return f"{self.stream}#{self.n}"
