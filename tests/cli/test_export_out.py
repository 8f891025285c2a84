"""``export --out`` is written whole or not at all: through a temporary file in the same
directory, moved onto ``--out`` with one ``os.replace`` when every row is written."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import scaleenv
from scaleenv._cli import main


def _export_with_file_size_limit(log: Path, out: Path, limit_bytes: int) -> subprocess.CompletedProcess[str]:
    """``scaleenv export`` in a process whose files may not grow past ``limit_bytes``
    (RLIMIT_FSIZE, as ``ulimit -f``; SIGXFSZ ignored, so the write fails with EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "scaleenv", "export", "--log", str(log), "--out", str(out), "--json"],
                          capture_output=True, text=True, preexec_fn=limit, timeout=600)


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_partial_one(tiny_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "episodes.jsonl"
    out.write_text("the previous export\n")
    p = _export_with_file_size_limit(tiny_log, out, 4096)  # the export is several times larger
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "File too large" in p.stderr and str(out) in p.stderr and "--out" in p.stderr, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["exit"] == 1
    assert out.read_text() == "the previous export\n"
    assert sorted(tmp_path.iterdir()) == [out]  # no partial file beside it


def test_a_failure_with_no_old_file_leaves_nothing(tiny_log: Path, tmp_path: Path) -> None:
    p = _export_with_file_size_limit(tiny_log, tmp_path / "episodes.jsonl", 4096)
    assert p.returncode == 1, p.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_finished_export_replaces_the_file_keeping_its_mode(tiny_log: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "episodes.jsonl"
    out.write_text("old\n")
    os.chmod(out, 0o640)
    assert main(["export", "--log", str(tiny_log), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["episodes"] == len(rows) >= 1 and rows[0]["messages"]
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(tmp_path.iterdir()) == [out]


def test_a_symlinked_out_writes_its_target_and_keeps_the_link(tiny_log: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "episodes.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert main(["export", "--log", str(tiny_log), "--out", str(link)]) == 0
    capsys.readouterr()
    assert link.is_symlink() and target.read_text().startswith('{"')
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["episodes.jsonl"]


API_EXPORT = """
import resource, signal, sys
import scaleenv
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    scaleenv.export_log(sys.argv[1], sys.argv[2])
except OSError as exc:
    print(type(exc).__name__, exc.errno)
"""


def test_the_python_apis_export_is_written_whole_or_not_at_all(tiny_log: Path, tmp_path: Path) -> None:
    """``scaleenv.export_log`` goes through the same temporary file as ``export --out``:
    a write that fails midway (a file size limit) leaves the old file and no partial one;
    one that finishes replaces it, keeping its mode."""
    out = tmp_path / "episodes.jsonl"
    out.write_text("the previous export\n")
    p = subprocess.run([sys.executable, "-c", API_EXPORT, str(tiny_log), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and p.stdout.split() == ["OSError", "27"], (p.stdout, p.stderr)  # EFBIG
    assert out.read_text() == "the previous export\n"
    assert sorted(tmp_path.iterdir()) == [out]
    os.chmod(out, 0o640)
    rows = scaleenv.export_log(tiny_log, out)
    assert rows == len(out.read_text().splitlines()) >= 1
    assert out.stat().st_mode & 0o777 == 0o640 and sorted(tmp_path.iterdir()) == [out]
