"""`scaleenv ui` on bad input: one clear line on stderr, exit status 2, nothing created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def ui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scaleenv", "ui", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("setup", "args", "words"), [
    (None, ["--log", "{tmp}/missing.lmdb"], "no log at {tmp}/missing.lmdb"),
    ("dir", ["--log", "{tmp}/empty"], "is not a scaleenv log"),
    (None, ["--log", "{log}", "--port", "70000"], "--port must be between 0 and 65535"),
])
def test_bad_usage_exits_2_with_one_line(tmp_path: Path, ui_run, setup: str | None, args: list[str], words: str) -> None:
    if setup == "dir":
        (tmp_path / "empty").mkdir()
    fill = {"tmp": str(tmp_path), "log": str(ui_run[0])}
    out = ui(*[a.format(**fill) for a in args])
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scaleenv ui: ") and words.format(**fill) in lines[0]
    assert not (tmp_path / "missing.lmdb").exists()


def test_a_port_in_use_is_bad_usage(ui_server, ui_run) -> None:
    out = ui("--log", str(ui_run[0]), "--port", str(ui_server.port))
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{ui_server.port}" in out.stderr
