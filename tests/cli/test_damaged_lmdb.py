"""A damaged ``data.mdb`` (truncated, foreign, corrupt pages): one line, the documented
exit status, no SIGBUS and no traceback. Real copies of a real log, damaged on disk.

Commands that could crash the interpreter (a regression would SIGBUS) run in a child
process; the rest call ``scaleenv._cli.main`` in-process.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from scaleenv._cli import main
from scaleenv._store import Log
from scaleenv._store.errors import LogDamaged, NotALog
from tests.conftest import copy_log

SCALEENV = [sys.executable, "-m", "scaleenv"]
MDB_META = struct.Struct("=IIQQ48s48sQQ")  # LMDB 0.9's MDB_meta after the 16-byte page header


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCALEENV, *map(str, args)], capture_output=True, text=True, timeout=300)


def _one_clean_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _committed_meta(data: Path) -> tuple[int, int, int]:
    """(page size, main db root page, last page) of the meta page with the larger txnid."""
    raw = data.read_bytes()
    m0 = MDB_META.unpack_from(raw, 16)
    psize = struct.unpack_from("=I", m0[4])[0]
    m1 = MDB_META.unpack_from(raw, psize + 16)
    m = m1 if m1[7] > m0[7] else m0
    return psize, struct.unpack_from("=Q", m[5], 40)[0], m[6]


@pytest.mark.parametrize("keep", ["12KiB", "half"])
def test_a_truncated_log_is_refused_before_lmdb_maps_it(template: Path, tmp_path: Path, keep: str) -> None:
    log = copy_log(template, tmp_path / "log")
    data = log / "data.mdb"
    size = data.stat().st_size
    psize, _, last_pg = _committed_meta(data)
    assert size >= (last_pg + 1) * psize > 24 * 1024  # the intact copy is whole, and bigger than the cut
    cut = 12 * 1024 if keep == "12KiB" else size // 2
    os.truncate(data, cut)
    for args in (("log", "check"), ("log", "info"), ("show", "domain", "d00"), ("run", "--quiet")):
        out = _cli(*args, "--log", log)
        assert out.returncode == 1, (args, out.returncode, out.stderr)  # 135 was the SIGBUS
        line = _one_clean_line(out.stderr)
        assert "data.mdb" in line and str(cut) in line and "truncated" in line, line
        assert str((last_pg + 1) * psize) in line, line
    assert not (log / "writer.lock").exists()  # refused before the writer lock was taken
    assert data.stat().st_size == cut  # and nothing was written


def test_a_truncated_log_raises_log_damaged(template: Path, tmp_path: Path) -> None:
    log = copy_log(template, tmp_path / "log")
    # Half the file: past any free tail LMDB allows to be missing (one page may be free,
    # which the check rightly accepts: see the free-tail test below).
    os.truncate(log / "data.mdb", (log / "data.mdb").stat().st_size // 2)
    with pytest.raises(LogDamaged, match="truncated"):
        Log.open(log, readonly=True)
    os.truncate(log / "data.mdb", 100)  # inside the first meta page
    with pytest.raises(LogDamaged, match="first meta page"):
        Log.open(log, readonly=True)


def test_a_foreign_file_named_data_mdb_is_not_a_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log"
    log.mkdir()
    (log / "data.mdb").write_bytes(bytes(range(256)) * 64)  # 16 KiB, no LMDB magic
    with pytest.raises(NotALog, match="not an LMDB file"):
        Log.open(log, readonly=True)
    assert main(["log", "check", "--log", str(log), "--json"]) == 2
    out, err = capsys.readouterr()
    assert "not an LMDB file" in _one_clean_line(err)
    reported = json.loads(out.splitlines()[-1])
    assert reported["exit"] == 2 and "not an LMDB file" in reported["error"]
    assert sorted(p.name for p in log.iterdir()) == ["data.mdb"]  # no lock.mdb, no writer.lock


def test_damaged_lmdb_pages_are_the_logs_damage_error(template: Path, tmp_path: Path) -> None:
    log = copy_log(template, tmp_path / "log")
    data = log / "data.mdb"
    psize, root, _ = _committed_meta(data)
    with open(data, "r+b") as f:  # the main db's root page loses its page type (mp_flags)
        f.seek(root * psize + 10)
        f.write(b"\0\0")
    for args in (("log", "check"), ("log", "info", "--json")):
        out = _cli(*args, "--log", log)
        assert out.returncode == 1, (args, out.stderr)
        line = _one_clean_line(out.stderr)
        assert "MDB_CORRUPTED" in line and str(log) in line and "damaged" in line, line
    assert json.loads(out.stdout.splitlines()[-1])["exit"] == 1


def test_a_file_short_only_by_pages_lmdb_lists_as_free_still_opens(template: Path, tmp_path: Path) -> None:
    """mdb.c: "the file may be shorter [than mm_last_pg] if the freeDB lists the final pages"."""
    import random

    import lmdb

    log = copy_log(template, tmp_path / "log")
    data = log / "data.mdb"
    before = data.stat().st_size
    with Log.open(log, readonly=True) as opened:
        records = [pair for chunk in opened.read_raw() for pair in chunk]
    env = lmdb.open(str(log), max_dbs=8, map_size=1 << 30)
    snapshots = env.open_db(b"snapshots")
    with env.begin(write=True) as txn:  # a big value grows the file by ~100 overflow pages...
        txn.put(b"big", random.Random(0).randbytes(400_000), db=snapshots)
    with env.begin(write=True) as txn:  # ...which become free pages when it is deleted
        txn.delete(b"big", db=snapshots)
    env.close()
    psize, _, last_pg = _committed_meta(data)
    assert (last_pg + 1) * psize == data.stat().st_size >= before + 400_000
    os.truncate(data, before)  # drop the freed tail: what LMDB's own format allows
    if hasattr(lmdb, "verify"):  # py-lmdb >= 3: its offline verifier agrees the file is sound
        import lmdb.verify

        assert lmdb.verify.verify(str(log)) == []
    with Log.open(log, readonly=True) as opened:
        assert opened.check() == []
        assert [pair for chunk in opened.read_raw() for pair in chunk] == records
    with Log.open(log) as opened:  # and a writer reuses the free pages
        opened.put_snapshot(b"after", b"x" * 100_000)
        assert opened.get_snapshot(b"after") == b"x" * 100_000


def test_damage_found_after_the_open_is_one_line_too(template: Path, tmp_path: Path) -> None:
    """The events db's root page is first read by the command itself, not by ``Log.open``."""
    import lmdb

    log = copy_log(template, tmp_path / "log")
    env = lmdb.open(str(log), max_dbs=8, readonly=True, lock=False)
    with env.begin() as txn:
        events_db = txn.get(b"events")  # the main db holds each named db's MDB_db record
    env.close()
    root = struct.unpack_from("=Q", events_db, 40)[0]  # md_root
    psize, _, _ = _committed_meta(log / "data.mdb")
    with open(log / "data.mdb", "r+b") as f:
        f.seek(root * psize + 10)
        f.write(b"\0\0")
    with Log.open(log, readonly=True):
        pass  # opens: nothing it reads is damaged
    for args in (("log", "check"), ("log", "dump", "--json")):
        out = _cli(*args, "--log", log)
        assert out.returncode == 1, (args, out.stderr)
        line = _one_clean_line(out.stderr)
        assert "MDB_CORRUPTED" in line and str(log) in line and "damaged" in line, line
    assert json.loads(out.stdout.splitlines()[-1])["exit"] == 1
