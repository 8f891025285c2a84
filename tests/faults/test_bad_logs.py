"""Foreign, newer or damaged logs and two writers: one clear line, exit 2 (or 1 for damage), no traceback."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lmdb
import msgspec

from scaleenv._store.errors import LogError
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.log import Log, seq_key

SCALEENV = [sys.executable, "-m", "scaleenv"]


def _cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCALEENV, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _one_clean_line(err: str) -> None:
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_a_directory_that_is_not_a_log(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    out = _cli("run", "--log", tmp_path, "--domains", "1", "--quiet")
    assert out.returncode == 2
    _one_clean_line(out.stderr)
    assert str(tmp_path) in out.stderr


def test_a_foreign_lmdb_environment(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "foreign"), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"hello", b"world")
    env.close()
    for args in (("run", "--log", tmp_path / "foreign", "--quiet"), ("log", "info", "--log", tmp_path / "foreign")):
        out = _cli(*args)
        assert out.returncode == 2, out
        _one_clean_line(out.stderr)
        assert "foreign" in out.stderr.lower() or "not a scaleenv log" in out.stderr.lower()


def test_a_newer_log_format(tmp_path: Path) -> None:
    path = tmp_path / "newer"
    Log.open(path).close()  # a fresh, empty log of today's format...
    env = lmdb.open(str(path), max_dbs=8)
    meta = env.open_db(b"meta")
    with env.begin(write=True, db=meta) as txn:  # ...then claim a format from the future
        assert txn.get(b"scaleenv.format") is not None
        txn.put(b"scaleenv.format", msgspec.msgpack.encode(99))
    env.close()
    out = _cli("log", "info", "--log", path)
    assert out.returncode == 2
    _one_clean_line(out.stderr)
    assert "99" in out.stderr


def test_two_writers_on_one_log(tmp_path: Path) -> None:
    path = tmp_path / "busy"
    first = subprocess.Popen(
        [*SCALEENV, "run", "--log", str(path), "--domains", "3", "--episodes-per-task", "40", "--quiet", "--seed", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # a hung start fails the test instead of hanging it
        while not (path / "writer.lock").exists() or not (path / "data.mdb").exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        # Frozen while it holds the lock: it cannot finish (and let go) before the second
        # run tries, however slow the machine makes the second one.
        first.send_signal(signal.SIGSTOP)
        assert first.poll() is None
        second = _cli("run", "--log", path, "--domains", "3", "--quiet", "--seed", "2")
        assert second.returncode == 2
        _one_clean_line(second.stderr)
        assert str(first.pid) in second.stderr and str(path) in second.stderr
        assert _cli("log", "info", "--log", path).returncode == 0  # readers work meanwhile
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


def _damage(log_dir: Path, pick: Any) -> list[int]:
    """Flip one byte inside the body of each record ``pick(records)`` names; return their seqs.

    The damaged bytes are written back under the record's own key with LMDB itself, so
    the damage lands exactly on the chosen records (a search of ``data.mdb`` for their
    bytes is not: LMDB keeps stale copies of pages it has copied on write).
    """
    with Log.open(log_dir, readonly=True) as log:
        records = list(log.read())
    chosen = sorted(pick(records))
    env = lmdb.open(str(log_dir), max_dbs=8, map_size=1 << 30)  # room for the rewritten records (address space only)
    events = env.open_db(b"events", create=False)
    with env.begin(write=True, db=events) as txn:
        for seq in chosen:
            value = bytearray(txn.get(seq_key(seq)))
            value[len(value) // 2] ^= 0xFF  # well inside the body, past the 7-byte header
            txn.put(seq_key(seq), bytes(value))
    env.close()
    return chosen


def _copy(finished_log: Path, to: Path) -> Path:
    shutil.copytree(finished_log, to, ignore=shutil.ignore_patterns("writer.lock"))
    return to


def test_flipped_bytes_are_reported_by_seq_and_nothing_else_is_lost(finished_log: Path, tmp_path: Path) -> None:
    damaged = _copy(finished_log, tmp_path / "damaged")
    with Log.open(damaged, readonly=True) as log:
        total = log.count()
    # Five records no other record refers to (model calls may be referred to by later ones).
    hit = _damage(damaged, lambda recs: [r.seq for r in recs if r.type != "llm.called"][3::37][:5])
    assert len(hit) == 5
    out = _cli("log", "check", "--log", damaged, "--json")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert sorted(d["seq"] for d in report["damaged"]) == hit
    assert all("CRC" in d["reason"] for d in report["damaged"])
    dump = _cli("log", "dump", "--log", damaged)
    assert "Traceback" not in dump.stderr
    with Log.open(damaged, readonly=True) as log:
        unreadable = []
        for seq in range(1, total + 1):
            try:
                log.get(seq)
            except LogError:
                unreadable.append(seq)
    assert unreadable == hit


def test_a_damaged_model_call_also_names_the_calls_that_refer_to_it(finished_log: Path, tmp_path: Path) -> None:
    damaged = _copy(finished_log, tmp_path / "damaged")

    def a_referred_call(recs: list[Any]) -> list[int]:
        calls = [r for r in recs if isinstance(r.event, LlmCalled)]
        by_pos = {(r.stream, r.n): r.seq for r in calls}
        referrer = next(r for r in calls if r.event.base_n is not None)
        return [by_pos[(referrer.stream, referrer.event.base_n)]]

    [hit] = _damage(damaged, a_referred_call)
    out = _cli("log", "check", "--log", damaged, "--json")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    crc = [d["seq"] for d in report["damaged"] if "CRC" in d["reason"]]
    dangling = [d for d in report["damaged"] if "CRC" not in d["reason"]]
    assert crc == [hit]
    assert dangling and all("cannot be resolved" in d["reason"] and d["seq"] > hit for d in dangling)
