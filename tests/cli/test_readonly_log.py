"""A log on a read-only file system: every reading command works; a writing one says so in one
line (exit 1) and changes nothing.

Write permission cannot be taken away from root with chmod, so the log is shown through a
read-only bind mount of a copy (the test skips where mounting is not allowed: no root or no
CAP_SYS_ADMIN, as in most containers other than this project's CI machine).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaleenv._runner import project
from scaleenv._store.log import Log
from tests.conftest import copy_log, roll_out

SCALEENV = [sys.executable, "-m", "scaleenv"]


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="module")
def readonly_log(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    src = tmp_path_factory.mktemp("rw")
    roll_out(copy_log(template, src / "log"), 1)  # episodes to export
    view = tmp_path_factory.mktemp("ro")
    if not _mount("--bind", str(src), str(view)):
        pytest.skip("mount --bind is not allowed here (needs root with CAP_SYS_ADMIN)")
    try:
        if not _mount("-o", "remount,ro,bind", str(view)):
            pytest.skip("a read-only remount is not allowed here")
        yield view / "log"
    finally:
        subprocess.run(["umount", str(view)], capture_output=True, check=False)


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCALEENV, *map(str, args)], capture_output=True, text=True, timeout=600)


def _digest(path: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(path.iterdir()))).hexdigest()


def test_the_mount_is_read_only(readonly_log: Path) -> None:
    with pytest.raises(OSError):
        (readonly_log / "probe").write_text("x")


@pytest.mark.parametrize("command", [
    ("log", "info"), ("log", "check"), ("show", "domain", "d00"), ("show", "task", "d00/t000"), ("audit", "--json"),
])
def test_reading_commands_work_on_a_read_only_log(readonly_log: Path, command: tuple[str, ...]) -> None:
    if command[0] == "audit":  # audit takes a tool: the first verified one of d00
        with Log.open(readonly_log, readonly=True) as log:
            tool = sorted(project(log).domains["d00"].verified)[0]
        command = ("audit", f"d00/{tool}", "--json")
    proc = _cli(*command, "--log", readonly_log)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_export_from_a_read_only_log_writes_elsewhere(readonly_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    proc = _cli("export", "--out", out, "--log", readonly_log)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().count("\n") >= 1


def test_a_run_on_a_read_only_log_says_so_in_one_line(readonly_log: Path) -> None:
    before = _digest(readonly_log)
    proc = _cli("run", "--seed", "5", "--domains", "2", "--tasks-per-domain", "4", "--episodes-per-task", "2",
                "--log", readonly_log, "--json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Read-only file system" in lines[0] and str(readonly_log) in lines[0], proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["exit"] == 1
    assert _digest(readonly_log) == before


def test_verify_on_a_read_only_log_prints_its_findings_and_records_nothing(readonly_log: Path) -> None:
    before = _digest(readonly_log)
    proc = _cli("replay", "--verify", "--json", "--log", readonly_log)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["ok"] and got["checked"] > 0 and got["recorded"] is False
    assert "Traceback" not in proc.stderr and "the findings were not recorded" in proc.stderr
    proc = _cli("replay", "--verify", "--no-record", "--json", "--log", readonly_log)
    assert proc.returncode == 0 and "not recorded" not in proc.stderr, proc.stderr
    assert _digest(readonly_log) == before
