"""Snapshots: seeking folds at most N events; a corrupted or stale snapshot is detected and ignored."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import fcntl
import json
import os
from pathlib import Path

import msgspec

from scaleenv._replay.snapshots import seek
from scaleenv._replay.snapshots import (
    SnapshotIndex,
    build_snapshots,
    check_all,
    encode_snapshot,
    index_key,
    snapshot_key,
    snapshot_value,
)
from scaleenv._store.log import Log

STREAM = "episode/d00/t000/g0"


@contextlib.contextmanager
def captured() -> Iterator[list[dict[str, Any]]]:
    """The event dicts the ``scaleenv`` loggers emit inside the block (warnings and up)."""
    events: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if isinstance(record.msg, dict):
                events.append(record.msg)

    root = logging.getLogger("scaleenv")
    handler = Keep(logging.WARNING)
    root.addHandler(handler)
    try:
        yield events
    finally:
        root.removeHandler(handler)


def test_seek_with_snapshots_touches_at_most_n_events(shop_run: Path, copy_of) -> None:
    path = copy_of(shop_run)
    every = 3
    with Log.open(path) as lg:
        p = build_snapshots(lg, every)
        length = lg.stream_length(STREAM)
        assert p.snapshots == length // every
        for n in range(length + 1):
            cold = seek(lg, STREAM, n, use_snapshots=False)
            warm = seek(lg, STREAM, n)
            assert cold.touched == n
            assert warm.touched <= every, (n, warm)
            assert warm.state == cold.state and warm.digest == cold.digest
            if n >= every:
                assert warm.snapshot_n == n - n % every
        assert check_all(lg) == []


def _corrupt(lg: Log, n: int, **changes) -> None:
    snap = snapshot_value(lg, STREAM, n)
    lg.put_snapshot(snapshot_key(STREAM, n), encode_snapshot(msgspec.structs.replace(snap, **changes)))


def test_corrupted_state_is_detected_and_ignored(shop_run: Path, copy_of) -> None:
    path = copy_of(shop_run)
    with Log.open(path) as lg:
        build_snapshots(lg, 4)
        good = seek(lg, STREAM, 9, use_snapshots=False)
        snap = snapshot_value(lg, STREAM, 8)
        bad_state = {**snap.state, "orders": {}}
        _corrupt(lg, 8, state=bad_state)  # the state no longer matches its recorded digest
        with captured() as logs:
            got = seek(lg, STREAM, 9)
        assert got.state == good.state and got.snapshot_n == 4  # fell back to the previous snapshot
        assert any(e["event"] == "snapshot ignored" and e["n"] == 8 and "corrupted" in e["reason"] for e in logs)
        assert [(p.n, "corrupted" in p.reason) for p in check_all(lg)] == [(8, True)]


def test_stale_digest_is_detected(shop_run: Path, copy_of) -> None:
    path = copy_of(shop_run)
    with Log.open(path) as lg:
        build_snapshots(lg, 4)
        snap = snapshot_value(lg, STREAM, 4)
        # A consistent-looking snapshot of another history: state and its digest match, the chain does not.
        _corrupt(lg, 4, digest="00" * 32)
        with captured() as logs:
            got = seek(lg, STREAM, 5)
        assert got.snapshot_n is None and got.touched == 5 + 1  # 5 folded + the record the check read
        assert any("digest does not continue" in e.get("reason", "") for e in logs)
        _corrupt(lg, 4, digest=snap.digest, fold_version=99)
        with captured() as logs:
            assert seek(lg, STREAM, 5).snapshot_n is None
        assert any("stale" in e.get("reason", "") for e in logs)
        # Undecodable bytes and an undecodable index are ignored too.
        lg.put_snapshot(snapshot_key(STREAM, 4), b"\x00garbage")
        with captured() as logs:
            assert seek(lg, STREAM, 5).state == seek(lg, STREAM, 5, use_snapshots=False).state
            lg.put_snapshot(index_key(STREAM), msgspec.msgpack.encode(SnapshotIndex(every=4, positions=[4, 8]))[:-1])
            assert seek(lg, STREAM, 9).snapshot_n is None
        assert [e["event"] for e in logs] == ["snapshot ignored", "snapshot index undecodable; ignoring it"]


def test_cli_snapshot_pass_and_replay_uses_them(shop_run: Path, copy_of, cli) -> None:
    path = copy_of(shop_run)
    code, out, _ = cli("replay", "--log", path, "--snapshot-every", 4, "--json")
    assert code == 0 and json.loads(out)["snapshots"] == 3
    code, out, _ = cli("replay", "--log", path, "--episode", "d00/t000/g0", "--step", 11, "--json")
    view = json.loads(out)
    assert view["snapshot_n"] == 12 - 12 % 4 and view["events_touched"] <= 4
    code, out, _ = cli("replay", "--log", path, "--check-snapshots", "--json")
    assert code == 0 and json.loads(out)["ok"]


def test_no_snapshots_while_a_writer_holds_the_log(shop_run: Path, copy_of, cli) -> None:
    path = copy_of(shop_run)
    fd = os.open(path / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running writer holds
        code, out, _ = cli("replay", "--log", path, "--snapshot-every", 4, "--json")
        assert code == 0 and json.loads(out)["written"] is False
        code, out, _ = cli("replay", "--log", path, "--episode", "d00/t000/g0", "--snapshot-every", 4, "--json")
        assert code == 0 and json.loads(out)["snapshots"]["written"] is False
    finally:
        os.close(fd)
    with Log.open(path, readonly=True) as lg:
        assert lg.get_snapshot(index_key(STREAM)) is None
