"""Copy records into a fresh log: from another log (optionally changing some), or from a JSON-lines dump.

The JSON-lines form (one record per line, in seq order: stream, n, cause, actor, event)
is what the golden logs in tests/replay/golden are stored as: it is diff-friendly,
independent of LMDB's binary layout and page size, and small. Loading it appends the
records through the ordinary writer, so ``seq`` comes out the same; ``wall_ns`` is the
load time (digests never cover it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Union

import msgspec
import trio

from scaleenv._store.events import ALL_EVENT_TYPES
from scaleenv._store.events.base import Event, Ref
from scaleenv._store.log import Log
from scaleenv._store.record import Record
from scaleenv._store.writer import Pending

BATCH = 4096

Transform = Callable[[Record], Record]


class JsonRecord(msgspec.Struct, frozen=True, kw_only=True):
    stream: str
    n: int
    cause: Ref | None
    actor: str
    event: Union[ALL_EVENT_TYPES]  # type: ignore[valid-type]  # noqa: UP007


_enc = msgspec.json.Encoder(order="deterministic")
_dec = msgspec.json.Decoder(JsonRecord)


def without_excluded(event: Event) -> Event:
    """The event with its ``digest_exclude`` fields (wall-clock facts) set to their defaults."""
    if not type(event).digest_exclude:
        return event
    defaults = {f.name: f.default for f in msgspec.structs.fields(event)
                if f.name in type(event).digest_exclude and f.default is not msgspec.NODEFAULT}
    return msgspec.structs.replace(event, **defaults) if defaults else event


def dump_jsonl(records: Iterable[Record], path: str | os.PathLike[str], *, stable: bool = False) -> int:
    """Write records as JSON lines; returns how many.

    ``stable=True`` resets digest-excluded fields (LLM latency) to their defaults, so
    dumping two runs of the same seed gives identical bytes (and identical digests).
    """
    count = 0
    with open(path, "wb") as f:
        for r in records:
            event = without_excluded(r.event) if stable else r.event
            f.write(_enc.encode(JsonRecord(stream=r.stream, n=r.n, cause=r.cause, actor=r.actor, event=event)))
            f.write(b"\n")
            count += 1
    return count


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Pending]:
    """The records of a JSON-lines dump, as writer items."""
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                j = _dec.decode(line)
                yield Pending(j.stream, j.n, j.cause, j.actor, j.event)


async def append_all(event_log: Log, items: Iterable[Pending], batch: int = BATCH) -> int:
    """Append items in order, in batches of ``batch`` (one transaction each)."""
    count = 0
    async with event_log.writer(max_batch=batch) as w:
        chunk: list[Pending] = []
        for it in items:
            chunk.append(it)
            if len(chunk) >= batch:
                await w.append(chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            await w.append(chunk)
            count += len(chunk)
    return count


def load_jsonl(path: str | os.PathLike[str], dest: str | os.PathLike[str], *, sync: bool = False) -> int:
    """Build a new LMDB log at ``dest`` from a JSON-lines dump."""
    with Log.open(dest, sync=sync) as event_log:
        return trio.run(append_all, event_log, read_jsonl(path))


def copy_log(src: Log, dest: str | os.PathLike[str], transform: Transform | None = None, *, sync: bool = False) -> int:
    """Copy every record of ``src`` into a new log at ``dest``, through ``transform`` if given.

    The meta keys (run config) are copied too. Used to make tampered copies in tests.
    """
    if Path(dest).exists() and any(Path(dest).iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    items = (_pending(transform(r) if transform else r) for r in src.read())
    with Log.open(dest, sync=sync) as event_log:
        for k, v in src.meta_items().items():
            if not k.startswith("scaleenv."):
                event_log.meta_set(k, v)
        return trio.run(append_all, event_log, items)


def _pending(r: Record) -> Pending:
    return Pending(r.stream, r.n, r.cause, r.actor, r.event)


def replace_event(record: Record, **changes: Any) -> Record:
    """The record with its event's fields changed (``msgspec.structs.replace``)."""
    event: Event = msgspec.structs.replace(record.event, **changes)
    return msgspec.structs.replace(record, event=event)
