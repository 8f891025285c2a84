"""``replay --verify`` and ``regrade`` read the log's projection checkpoint and the streams
they check through the per-stream index, not a fold of the whole log: a record damaged in
a stream neither reads (a domain's design, folded into the checkpoint long ago) stops
neither, and both answer what they answered on the intact log."""

from __future__ import annotations

import json
from pathlib import Path

import lmdb
import trio

from scaleenv._replay.checkpoint import projected
from scaleenv._replay.projection import fold
from scaleenv._replay.regrade import changes, regrade_view
from scaleenv._replay.verify import verify_log
from scaleenv._store.errors import LogError
from scaleenv._store.keys import seq_key
from scaleenv._store.log import Log


def _checkpointed_then_damaged(path: Path) -> int:
    """Checkpoint the log, then flip a byte of the first record of a domain stream (its
    design: folded into the checkpoint, read by neither); that record's seq."""
    with Log.open(path) as lg:
        projected(lg)
        target = next(r.seq for r in lg.read() if r.stream.startswith("domain/"))
    env = lmdb.open(str(path), max_dbs=8, map_size=1 << 30)  # room to rewrite the record (address space only)
    events = env.open_db(b"events")
    with env.begin(write=True) as txn:
        raw = bytearray(txn.get(seq_key(target), db=events))
        raw[-3] ^= 0xFF
        txn.put(seq_key(target), bytes(raw), db=events)
    env.close()
    with Log.open(path, readonly=True) as lg:
        try:
            lg.get(target)
        except LogError:
            return target
    raise AssertionError("the record was not damaged")


def _verified(path: Path) -> dict[str, object]:
    with Log.open(path, readonly=True) as lg:
        report = trio.run(lambda: verify_log(lg, workers=1))
    out = report.to_json()
    return {k: out[k] for k in ("ok", "divergences", "checked", "skipped", "streams", "by_kind", "errors")}


def test_verify_reads_only_the_streams_it_verifies(golden_run: Path, copy_of) -> None:
    intact = _verified(golden_run)
    assert intact["ok"] and intact["checked"]
    damaged = copy_of(golden_run)
    _checkpointed_then_damaged(damaged)
    assert _verified(damaged) == intact


def test_regrade_reads_only_the_episodes_it_regrades(shop_run: Path, copy_of, cli) -> None:
    with Log.open(shop_run, readonly=True) as lg:
        whole = changes(fold(lg.read()))
    damaged = copy_of(shop_run)
    _checkpointed_then_damaged(damaged)
    with Log.open(damaged, readonly=True) as lg:
        found, checked = changes(regrade_view(lg), lg)
    assert [g.to_json() for g in found] == [g.to_json() for g in whole[0]] and checked == whole[1]
    assert found and checked
    code, out, _ = cli("regrade", "--log", damaged, "--dry-run", "--json")
    assert code == 0 and json.loads(out)["changed"] == len(found)
