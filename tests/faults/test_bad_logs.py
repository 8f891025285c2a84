"""Foreign, newer or damaged logs and two writers: one clear line, exit 2 (or 1 for damage), no traceback."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import msgspec
import pytest

from scaleenv.store.log import Log

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
        deadline = time.monotonic() + 60
        while not (path / "writer.lock").exists() or not (path / "data.mdb").exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = _cli("run", "--log", path, "--domains", "3", "--quiet", "--seed", "2")
        assert second.returncode == 2
        _one_clean_line(second.stderr)
        assert str(first.pid) in second.stderr and str(path) in second.stderr
        assert _cli("log", "info", "--log", path).returncode == 0  # readers work meanwhile
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


@pytest.fixture(scope="module")
def finished_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("done") / "log"
    out = _cli("run", "--log", path, "--domains", "1", "--tasks-per-domain", "3", "--episodes-per-task", "2",
               "--quiet", "--seed", "4", "--no-sync")
    assert out.returncode == 0, out.stderr
    return path


def test_flipped_bytes_are_reported_by_seq_and_nothing_else_is_lost(finished_log: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(finished_log, damaged, ignore=shutil.ignore_patterns("writer.lock"))
    with Log.open(damaged, readonly=True) as log:
        total = log.count()
    data = bytearray((damaged / "data.mdb").read_bytes())
    rng = random.Random(11)
    # Flip bytes inside record bodies: find our record magic and hit a few records' payloads.
    starts = [i for i in range(len(data) - 16) if data[i:i + 2] == b"SE" and data[i + 2] == 1]
    hit = rng.sample(starts, 5)
    for i in hit:
        data[i + 12] ^= 0xFF
    (damaged / "data.mdb").write_bytes(bytes(data))
    out = _cli("log", "check", "--log", damaged, "--json")
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert 1 <= len(report["damaged"]) <= 5
    assert all("seq" in d for d in report["damaged"])
    dump = _cli("log", "dump", "--log", damaged)
    assert "Traceback" not in dump.stderr
    with Log.open(damaged, readonly=True) as log:
        good = 0
        for seq in range(1, total + 1):
            try:
                log.get(seq)
                good += 1
            except Exception:  # noqa: BLE001 - counting what is still readable
                pass
    assert good >= total - len(report["damaged"])
