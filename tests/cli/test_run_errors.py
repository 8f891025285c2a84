"""``scaleenv run``: only bad usage is exit 2. A ValueError from inside the run is a failure
(exit 1, one line), not a usage error as every ValueError used to be."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaleenv._backend_spec import BackendSpecError
from scaleenv._cli import main
from scaleenv._cli.run import raise_for_cli
from scaleenv._config import ConfigError
from scaleenv._errors import UsageError, WorkFailed
from scaleenv._store.log import Log
from tests.conftest import copy_log


def _one_line(argv: list[str], status: int, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == status, argv
    out, err = capsys.readouterr()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert json.loads(out.strip().splitlines()[-1])["exit"] == status
    return err.strip()


def test_a_run_field_differing_from_the_logs_run_is_usage(tiny_log: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    log = copy_log(tiny_log, tmp_path / "log")
    line = _one_line(["run", "--log", str(log), "--max-turns", "3", "--quiet", "--json"], 2, capsys)
    assert "--max-turns 3 differs from this log's run" in line


def test_an_llm_value_naming_no_backend_is_usage_and_creates_nothing(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for llm in ("transformers:/nonexistent/model", "nope:x", "openai:not-a-url"):
        line = _one_line(["run", "--log", str(tmp_path / "new"), "--llm", llm, "--quiet", "--json"], 2, capsys)
        assert "--llm" in line, line
    assert list(tmp_path.iterdir()) == []


def test_an_invalid_config_stored_in_the_log_is_a_failure_not_usage(tiny_log: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The command line is fine; the log's own record is not (exit 1, naming the log)."""
    log = copy_log(tiny_log, tmp_path / "log")
    with Log.open(log) as lg:
        stored = lg.meta_get("run_config")
        lg.meta_set("run_config", {**stored, "max_turns": -4})
    line = _one_line(["run", "--log", str(log), "--quiet", "--json"], 1, capsys)
    assert "run config stored in this log is invalid" in line and str(log) in line and "--max-turns" in line


def test_an_internal_value_error_is_a_one_line_failure() -> None:
    for exc in (ValueError("bad state"), ExceptionGroup("run", [ValueError("bad state"), OSError("x")])):
        with pytest.raises(WorkFailed, match=r"internal error, not a problem with the command line "
                                             r"\(ValueError: bad state\)") as caught:
            raise_for_cli(exc)
        assert "\n" not in str(caught.value)


def test_usage_errors_stay_usage_and_others_pass_through() -> None:
    for exc in (ConfigError("--domains must be int in 1..1000000, got 0"), BackendSpecError("bad --llm value 'x'"),
                ExceptionGroup("run", [ConfigError("--seed 2 differs")])):
        with pytest.raises(UsageError):
            raise_for_cli(exc)
    disk_full = OSError(28, "No space left on device")
    with pytest.raises(OSError) as caught:
        raise_for_cli(disk_full)
    assert caught.value is disk_full  # the CLI's own classification reports it (exit 1)
