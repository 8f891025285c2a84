"""Ordinary mistakes on the command line: one line on stderr naming what was wrong, exit 2,
no traceback, nothing written; with ``--json`` also one ``{"error", "exit"}`` object as
stdout's last line. ``log dump --limit``, ``log tail --until-finished``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from scaleenv._cli import main
from scaleenv._cli.log import writer_active
from scaleenv._store import Log
from tests.conftest import copy_log


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], status: int = 2) -> tuple[str, str]:
    """Run ``argv``; assert ``status`` and one clean stderr line; return (that line, stdout)."""
    assert main(argv) == status, argv
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0], out


def test_export_out_into_a_missing_directory_or_onto_a_directory(
        template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(tmp_path.iterdir())
    line, _ = _fails(["export", "--log", str(template), "--out", str(tmp_path / "nope" / "e.jsonl")], capsys)
    assert "--out" in line and str(tmp_path / "nope") in line and "does not exist" in line
    line, _ = _fails(["export", "--log", str(template), "--out", str(tmp_path)], capsys)
    assert "--out" in line and "is a directory" in line
    (tmp_path / "file").write_text("x")
    line, _ = _fails(["export", "--log", str(template), "--out", str(tmp_path / "file" / "e.jsonl")], capsys)
    assert "is not a directory" in line
    assert sorted(tmp_path.iterdir()) == sorted([*before, tmp_path / "file"])  # nothing else written
    assert (tmp_path / "file").read_text() == "x"


def test_a_log_path_longer_than_the_filesystem_allows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    too_long = str(tmp_path / ("x" * (os.pathconf(tmp_path, "PC_NAME_MAX") + 1)))
    for argv in (["log", "info", "--log", too_long], ["run", "--log", too_long, "--quiet"],
                 ["show", "domain", "d00", "--log", too_long],
                 ["export", "--log", str(tmp_path), "--out", too_long],
                 ["diff", too_long, str(tmp_path)]):  # a positional log: caught where it is opened
        line, _ = _fails(argv, capsys)
        assert "too long" in line.lower() and "characters)" in line, line  # the path is clipped
    assert list(tmp_path.iterdir()) == []


def test_tail_poll_must_be_a_positive_number(template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for poll in ("-1", "0", "nan", "inf"):
        line, _ = _fails(["log", "tail", "--log", str(template), "--poll", poll], capsys)
        assert line.startswith("scaleenv log tail: --poll must be a positive number"), line


@pytest.mark.parametrize("spec", ["bogus:x", "openai:notaurl", "openai:http://127.0.0.1:9/v1",
                                  "sim:extra", "recorded:/no/such/log", "recorded:{tmp}", "transformers:/no/such/model"])
def test_a_bad_llm_leaves_no_log_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str) -> None:
    log = tmp_path / "run.lmdb"
    spec = spec.format(tmp=tmp_path)  # recorded:{tmp}: a directory that holds no log
    line, _ = _fails(["run", "--log", str(log), "--llm", spec, "--quiet"], capsys)
    assert f"bad --llm value {spec!r}" in line and "Valid forms" in line
    assert not log.exists()
    assert list(tmp_path.iterdir()) == []


def test_json_failures_print_one_error_object_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["run", "--log", str(tmp_path / "a"), "--domains", "0", "--json"], "domains"),
        (["show", "domain", "d00", "--log", str(tmp_path / "missing"), "--json"], "no log at"),
        (["log", "info", "--log", str(tmp_path / "missing"), "--json"], "not a scaleenv log"),
        (["run", "--log", str(tmp_path / "b"), "--llm", "bogus", "--json"], "bad --llm"),
    ]
    for argv, says in cases:
        line, out = _fails(argv, capsys)
        reported = json.loads(out.strip().splitlines()[-1])
        assert set(reported) == {"error", "exit"} and reported["exit"] == 2, reported
        assert says in reported["error"] and reported["error"] in line  # the stderr line stays
    with pytest.raises(SystemExit) as exc:  # argparse's own usage errors too
        main(["log", "dump", "--limit", "many", "--json"])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    reported = json.loads(out.strip().splitlines()[-1])
    assert reported["exit"] == 2 and "--limit" in reported["error"] and "invalid int value" in err
    assert list(tmp_path.iterdir()) == []


def test_dump_limit(template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "dump", "--log", str(template), "--limit", "0"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["log", "dump", "--log", str(template), "--limit", "2"]) == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [1, 2]
    line, _ = _fails(["log", "dump", "--log", str(template), "--limit", "-1"], capsys)
    assert "--limit must be 0 or more" in line


def test_info_prefix_depth_must_be_positive(template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "-1"):
        line, _ = _fails(["log", "info", "--log", str(template), "--prefix-depth", bad], capsys)
        assert "--prefix-depth must be 1 or more" in line
    assert main(["log", "info", "--log", str(template), "--prefix-depth", "2", "--json"]) == 0


def test_tail_until_finished_prints_the_rest_and_exits(template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Log.open(template, readonly=True) as log:
        last = log.last_seq()
    assert main(["log", "tail", "--log", str(template), "--from", str(last - 2), "--until-finished"]) == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [last - 2, last - 1, last]


async def test_writer_active_sees_the_writer_lock(template: Path, tmp_path: Path) -> None:
    path = copy_log(template, tmp_path / "log")
    assert not writer_active(path)
    with Log.open(path) as log:  # the writer lock: held while the log is open for writing
        assert writer_active(path)
        async with log.writer():
            assert writer_active(path)
    assert not writer_active(path)
    await trio.lowlevel.checkpoint()
