"""What the CLI fuzz test (test_cli_fuzz.py) found, one regression test each: one line on
stderr, the documented exit status, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scaleenv._cli import main
from tests.conftest import copy_log


def _usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2, (argv, err)
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def test_an_unknown_log_level_is_a_usage_error_not_a_keyerror(capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage(["log", "info", "--log", "missing", "--log-level", "LOUD"], capsys)
    assert "--log-level" in line and "invalid choice" in line
    assert main(["log", "info", "--log", "missing", "--log-level", "DEBUG"]) == 2  # any case; then: no log
    capsys.readouterr()


@pytest.mark.parametrize("argv", [["run", "--log", "", "--quiet"], ["run", "--log", "  ", "--quiet"],
                                  ["log", "info", "--log", ""], ["export", "--log", "x", "--out", ""]])
def test_an_empty_path_is_refused_not_taken_for_the_working_directory(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``run --log ''`` used to start a whole new run with its log in the working directory."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        line = _usage(argv, capsys)
    finally:
        os.chdir(cwd)
    assert "is empty: give a path" in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["run", "--sandbox-workers", "100000"],  # would start 100,000 worker processes at once
    ["run", "--sandbox-workers", str(2**70)],  # would build slots until memory ran out
    ["rerun", "--sandbox-workers", "0"],  # was SandboxPool's ValueError
    ["replay", "--verify", "--sandbox-workers", "2000"],
    ["replay", "--verify", "--concurrency", "0"],  # was trio.CapacityLimiter's ValueError
    ["serve", "--sandbox-workers", "5000"],
])
def test_worker_and_concurrency_counts_are_bounded_before_anything_starts(
        argv: list[str], tiny_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log"
    line = _usage([*argv, "--log", str(tiny_log if argv[0] != "run" else log)], capsys)
    assert ("--sandbox-workers must be between 1 and 1024" in line or "--concurrency must be at least 1" in line), line
    assert not log.exists()


@pytest.mark.parametrize("argv", [
    ["log", "dump", "--from", str(2**70)],  # was OverflowError (no key that large)
    ["log", "dump", "--from", "-5"],
    ["log", "tail", "--from", str(2**70), "--until-finished"],  # was OverflowError
    ["replay", "--snapshot-every", str(2**70)],  # was OverflowError (msgspec, storing the snapshot)
])
def test_event_positions_out_of_range_are_usage_errors(argv: list[str], tiny_log: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    log = copy_log(tiny_log, tmp_path / "log")
    line = _usage([*argv, "--log", str(log)], capsys)
    assert argv[2] in line and "2**63-1" in line, line
