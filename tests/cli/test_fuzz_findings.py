"""What the CLI fuzz test (test_cli_fuzz.py) found, one regression test each: one line on
stderr, the documented exit status, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scaleenv.cli import main


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
