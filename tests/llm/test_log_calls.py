"""``rerun`` reads a log's recorded model calls decoding only them (``log_calls``): the same
whole calls, in the same order, as resolving every ``llm.called`` of ``log.read()``; an
event no model call needs is never decoded (one of an unknown type does not stop it)."""

from __future__ import annotations

import zlib
from pathlib import Path

import lmdb
import msgspec

from scaleenv._agents.llm.recorded import log_calls, whole_calls
from scaleenv._store.keys import seq_key
from scaleenv._store.log import Log
from scaleenv._store.record import _HEADER, MAGIC, decode_envelope
from tests.conftest import copy_log


def test_log_calls_are_whole_calls_of_every_record(template: Path) -> None:
    with Log.open(template, readonly=True) as log:
        calls = log_calls(log)
        assert calls == whole_calls(log.read())
    assert calls and all(c.whole for c in calls)


def test_an_event_no_call_needs_is_not_decoded(template: Path, tmp_path: Path) -> None:
    path = copy_log(template, tmp_path / "log")
    with Log.open(path, readonly=True) as log:
        want = log_calls(log)
        target = next(r.seq for r in log.read() if r.type == "task.instantiated")
    env = lmdb.open(str(path), max_dbs=8, map_size=1 << 30)
    events = env.open_db(b"events")
    with env.begin(write=True) as txn:
        raw = bytes(txn.get(seq_key(target), db=events))
        e = decode_envelope(raw, target)
        event = msgspec.msgpack.encode({"type": "task.from_a_newer_version", "x": 1})
        body = msgspec.msgpack.encode((e.seq, e.stream, e.n, e.cause, e.actor, e.wall_ns, msgspec.Raw(event)))
        version = _HEADER.unpack_from(raw)[1]
        txn.put(seq_key(target), _HEADER.pack(MAGIC, version, zlib.crc32(body)) + body, db=events)
    env.close()
    with Log.open(path, readonly=True) as log:
        assert log_calls(log) == want
        try:
            list(log.read())
        except Exception as exc:  # reading every record decodes it, and fails on it
            assert "task.from_a_newer_version" in str(exc) or "unknown" in str(exc).lower(), exc
        else:
            raise AssertionError("the changed record still decodes")
