"""Corruption: damaged records are found by seq, all of them, and the rest still reads."""

from __future__ import annotations

import random

import lmdb
import pytest
from store_testevents import Said

from scaleenv._store import Log, RecordDamaged
from scaleenv._store.log import seq_key


async def _fill(log_path, codec, count: int) -> None:
    with Log.open(log_path, codec=codec) as log:
        async with log.writer() as w:
            # One append call = one transaction: every record sits in exactly one page copy.
            await w.append([(f"s{i % 3}", i // 3, None, "x", Said(text=f"MARK-{i + 1:05d}" + "." * 50))
                            for i in range(count)])


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_flipped_bytes_in_data_file(log_path, codec, seed: int) -> None:
    await _fill(log_path, codec, 300)
    rng = random.Random(seed)
    damaged = sorted(rng.sample(range(1, 301), 5))
    data_file = log_path / "data.mdb"
    blob = bytearray(data_file.read_bytes())
    for seq in damaged:
        marker = f"MARK-{seq:05d}".encode()
        at = blob.find(marker)
        assert at > 0 and blob.find(marker, at + 1) == -1
        blob[at + rng.randrange(len(marker))] ^= 0x20
    data_file.write_bytes(bytes(blob))

    with Log.open(log_path, readonly=True, codec=codec) as log:
        found = log.check()
        assert [d.seq for d in found] == damaged
        assert all("CRC" in d.reason for d in found)
        with pytest.raises(RecordDamaged) as ei:
            list(log.read())
        assert ei.value.seq == damaged[0]
        for seq in range(1, 301):
            if seq in damaged:
                with pytest.raises(RecordDamaged, match=f"seq={seq}"):
                    log.get(seq)
            else:
                assert log.get(seq).event.text.startswith(f"MARK-{seq:05d}")
        good = [r for r in log.read(damaged[-1] + 1)]
        assert len(good) == 300 - damaged[-1]


async def test_bad_records_written_raw(log_path, codec) -> None:
    await _fill(log_path, codec, 20)
    env = lmdb.open(str(log_path), max_dbs=8)
    events = env.open_db(b"events")
    with env.begin(write=True) as txn:
        txn.put(seq_key(4), b"garbage!", db=events)
        txn.put(seq_key(9), b"SE", db=events)
        good = bytearray(txn.get(seq_key(15), db=events))
        txn.put(seq_key(15), bytes(good[:-4]), db=events)
        txn.delete(seq_key(17), db=events)
    env.close()
    with Log.open(log_path, readonly=True, codec=codec) as log:
        found = {d.seq: d.reason for d in log.check()}
        assert sorted(found) == [4, 9, 15, 17]
        assert "magic" in found[4] and "truncated" in found[9]
        assert "CRC" in found[15] and "missing" in found[17]
        assert log.get(5).event.text.startswith("MARK-00005")



async def test_check_verifies_the_stream_index(log_path, codec) -> None:
    """A per-stream index entry pointing at the wrong record is reported by seq."""
    from scaleenv._store.log import stream_key

    await _fill(log_path, codec, 9)  # s0#0 = seq 1, s1#0 = seq 2, ...
    with Log.open(log_path, readonly=True, codec=codec) as log:
        assert log.check() == []
    env = lmdb.open(str(log_path), max_dbs=8)
    streams = env.open_db(b"streams")
    with env.begin(write=True, db=streams) as txn:
        txn.put(stream_key("s0", 0), seq_key(2))  # s0#0 now points at s1#0's record
    env.close()
    with Log.open(log_path, readonly=True, codec=codec) as log:
        reasons = {d.seq: d.reason for d in log.check()}
    assert "s0#0 points here" in reasons[2] and "s1#0" in reasons[2]
    assert "has no stream index entry" in reasons[1]


def _move_record(log_path, frm: int, to: int) -> None:
    """Store seq ``frm``'s bytes under key ``to`` instead (what a damaged LMDB key does)."""
    env = lmdb.open(str(log_path), max_dbs=8)
    events = env.open_db(b"events")
    with env.begin(write=True, db=events) as txn:
        raw = bytes(txn.get(seq_key(frm)))
        assert txn.get(seq_key(to)) is None
        txn.delete(seq_key(frm))
        txn.put(seq_key(to), raw)
    env.close()


async def test_check_names_a_record_under_a_flipped_key(log_path, codec) -> None:
    """A bit flip in one key (seq 120 -> 2**16 + 120) is one entry naming that record, not
    a run of 65,000 "missing" seqs; the stream index still finds nothing else wrong."""
    await _fill(log_path, codec, 300)
    wrong = 120 ^ (1 << 16)
    _move_record(log_path, 120, wrong)
    with Log.open(log_path, readonly=True, codec=codec) as log:
        assert log.last_seq() == wrong
        found = log.check()
    assert len(found) == 1, [str(d) for d in found]
    d = found[0]
    assert isinstance(d, RecordDamaged) and d.seq == wrong and d.through is None
    assert f"stored under seq={wrong} but says seq=120" in d.reason
    assert "s2#39" in d.reason and "nothing is stored under seq 120" in d.reason


async def test_no_appends_after_a_last_record_under_a_wrong_key(log_path, codec) -> None:
    await _fill(log_path, codec, 50)
    _move_record(log_path, 20, 20 ^ (1 << 16))  # now the last key, far past the end
    with Log.open(log_path, codec=codec) as log:
        with pytest.raises(RecordDamaged, match="log check") as caught:
            async with log.writer():
                pass
        assert caught.value.seq == 20 ^ (1 << 16) and "says seq=20" in str(caught.value)
        assert log.last_seq() == 20 ^ (1 << 16)  # nothing was appended


async def test_check_names_both_records_of_swapped_keys(log_path, codec) -> None:
    await _fill(log_path, codec, 30)
    _move_record(log_path, 10, 1000)
    _move_record(log_path, 20, 10)
    _move_record(log_path, 1000, 20)
    with Log.open(log_path, readonly=True, codec=codec) as log:
        found = {d.seq: d.reason for d in log.check()}
    assert sorted(found) == [10, 20]
    assert "stored under seq=10 but says seq=20" in found[10]
    assert "stored under seq=20 but says seq=10" in found[20]


async def test_check_reports_a_run_of_missing_seqs_once(log_path, codec) -> None:
    await _fill(log_path, codec, 300)
    env = lmdb.open(str(log_path), max_dbs=8)
    events = env.open_db(b"events")
    with env.begin(write=True, db=events) as txn:
        for seq in [*range(50, 250), 260]:
            txn.delete(seq_key(seq))
    env.close()
    with Log.open(log_path, readonly=True, codec=codec) as log:
        found = [d for d in log.check() if "gap in seqs" in d.reason]
    assert [(d.seq, d.through) for d in found] == [(50, 249), (260, None)]
    assert "50..249" in found[0].reason and "200 records" in found[0].reason
