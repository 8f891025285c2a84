"""`scaleenv diff LOG_A LOG_B`: per-stream digests, first differing event."""

from __future__ import annotations

import json
from pathlib import Path

from scaleenv._replay.logcopy import copy_log, replace_event
from scaleenv._store.events.episodes import MessageSent
from scaleenv._store.log import Log
from scaleenv._store.record import Record


def test_identical_runs(shop_run: Path, tmp_path: Path, cli) -> None:
    with Log.open(shop_run, readonly=True) as lg:
        copy_log(lg, tmp_path / "b.lmdb")
    code, out, _ = cli("diff", shop_run, tmp_path / "b.lmdb", "--json")
    got = json.loads(out)
    assert code == 0 and got["equal"] and got["differing"] == 0 and got["run_digest_a"] == got["run_digest_b"]


def test_differing_stream_and_streams_only_on_one_side(shop_run: Path, golden_run: Path, tmp_path: Path, cli) -> None:
    hit: list[Record] = []

    def change(r: Record) -> Record:
        if not hit and isinstance(r.event, MessageSent) and r.event.role == "user":
            hit.append(r)
            return replace_event(r, content="something else")
        return r

    with Log.open(shop_run, readonly=True) as lg:
        copy_log(lg, tmp_path / "b.lmdb", change)
    code, out, _ = cli("diff", shop_run, tmp_path / "b.lmdb", "--json")
    got = json.loads(out)
    assert code == 1 and got["differing"] == 1 and got["only_in_a"] == 0
    d = got["differences"][0]
    assert (d["stream"], d["n"]) == (hit[0].stream, hit[0].n)
    assert d["fields"] == [{"field": "event.content", "a": hit[0].event.content, "b": "something else"}]
    code, text, _ = cli("diff", shop_run, tmp_path / "b.lmdb")
    assert code == 1 and "event.content: A " in text
    code, out, _ = cli("diff", shop_run, golden_run, "--json")
    got = json.loads(out)
    assert code == 1 and got["only_in_a"] > 0 and got["only_in_b"] > 0


def test_missing_log_is_bad_input(shop_run: Path, tmp_path: Path, cli) -> None:
    code, _, err = cli("diff", shop_run, tmp_path / "nope")
    assert code == 2 and "nope" in err
