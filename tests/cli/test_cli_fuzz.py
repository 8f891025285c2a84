"""Fuzzing the command line (issue 21): argv for every subcommand, drawn from the real parser.

For each subcommand (walked from ``build_parser()``, so a new option is fuzzed the day it is
added) hypothesis draws a few of its options, each with a good value (one that fits the
tiny finished log the session builds), an edge value (0, -1, 2**70, nan, inf, "") or junk
(unicode, words where numbers go, paths to a missing file, a directory, a regular file, a
directory that is no log, a name too long for the filesystem), and calls
``scaleenv._cli.main`` in-process in a fresh temporary working directory. Properties:

- no traceback: ``main`` returns (or argparse exits) and stderr holds no ``Traceback``;
- the exit status is one of 0, 1, 2, 130;
- with ``--json``, stdout's last line is one JSON object (``log dump``/``log tail``
  succeeding: every line is one, one per event, so none where there is no event);
- no file is created or changed outside the ``--log`` and ``--out`` given.

What is bounded, and why (each is covered by its own tests elsewhere):
- ``run | synth | tasks | rollout`` never get a fresh or empty log: on one they would start
  a whole new run (minutes of work). They get the finished tiny log (with counts never above
  its own, so a resume has nothing to do) or a path that is no log.
- The servers (``serve``, ``serve-mcp``, ``sim-server``, ``ui``) would serve until stopped:
  each of their argv carries one invalid element they must refuse before listening (a
  limit of 0, a TLS certificate without its key or missing, a public address without a
  token, a port out of range, a log that is not there).
- ``log tail`` always gets ``--until-finished`` (without it, it follows the log until Ctrl-C).
- ``--ray`` is never drawn (``--ray local`` starts a Ray cluster); ``--shards`` is.
- No ``--llm openai:`` URL that answers: only a closed local port, which a finished log
  never calls.

The examples are derandomized (the same ones on every run, so CI cannot fail by chance);
``SCALEENV_FUZZ_EXAMPLES=N`` draws N fresh random examples per subcommand for a deeper local
search.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleenv._cli import build_parser, main
from scaleenv._config import fields as config_fields
from scaleenv._store.log import Log

LOG = "tiny.lmdb"  # the finished tiny log, copied into every example's working directory
HANG_LIMIT_S = 600  # a bound on a hang (the test process is dumped and stopped), not a timing assertion

RUN_FAMILY = {"run", "synth", "tasks", "rollout"}
SERVERS = {"serve", "serve-mcp", "sim-server", "ui"}
NEVER_DRAWN = {"--ray", "--help"}
STREAMING = {"log dump", "log tail"}  # with --json: one JSON object per event, as many as there are

_EXPLORE = int(os.environ.get("SCALEENV_FUZZ_EXAMPLES", "0"))


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out: dict[str, argparse.ArgumentParser] = {}
            for name, sub in action.choices.items():
                out.update(_commands(sub, (*prefix, name)))
            return out
    return {" ".join(prefix): parser}


COMMANDS = _commands(build_parser())


# ------------------------------------------------------------------ the world each example runs in


@pytest.fixture(scope="module")
def tiny(tiny_log: Path) -> dict[str, Any]:
    """The tiny finished log, its stored config, a tool, a task and an episode id (good
    values for the options that name them)."""
    path = tiny_log
    with Log.open(path, readonly=True) as log:
        config = log.meta_get("run_config")
        streams = [s for s, _ in log.streams()]
    episodes = [s.removeprefix("episode/") for s in streams if s.startswith("episode/")]
    tools = [s.split("/")[-1] for s in streams if s.startswith("tool/")]
    tasks = [s.removeprefix("task/") for s in streams if s.startswith("task/")]
    assert episodes and tools and tasks, streams
    return {"path": path, "config": config, "episode": episodes[0], "tool": tools[0], "task": tasks[0],
            "stream": streams[0]}


def _workdir(root: Path, tiny: dict[str, Any]) -> None:
    """The files every example may name: the log, a regular file, a directory that is no log."""
    shutil.copytree(tiny["path"], root / LOG, ignore=shutil.ignore_patterns("writer.lock"))
    (root / "afile.txt").write_text("not a log\n")
    (root / "notalog").mkdir()
    (root / "notalog" / "data.mdb").write_bytes(b"this is not an LMDB file" * 100)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root``: (size, mtime_ns) for files, (-1, 0) for directories."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = (-1, 0)
        for f in filenames:
            st_ = os.stat(os.path.join(dirpath, f))
            out[os.path.relpath(os.path.join(dirpath, f), root)] = (st_.st_size, st_.st_mtime_ns)
    return out


@contextlib.contextmanager
def _in(root: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(before)


# ------------------------------------------------------------------ values

EDGE_INTS = ["0", "-1", "1", str(2**31), str(2**63), str(2**70), str(-(2**70))]
JUNK = ["", " ", "abc", "é🙂", "1e3", "0x10", "\u0661\u0662", "--", "-", "nan", "None", "ä" * 300]
EDGE_FLOATS = ["0", "-1", "0.0001", "1e309", "-1e309", "nan", "inf", "-inf", "1e-300", str(2**70)]
PATHS = [LOG, "missing.lmdb", "nodir/sub/x", "afile.txt", "afile.txt/sub", "notalog", "", ".", "x" * 300,
         "é🙂.lmdb"]
# A path that is no log (or cannot be one) where a fresh log would mean a whole new run.
RUN_LOGS = [LOG, LOG, LOG, "afile.txt", "afile.txt/sub", "notalog", "x" * 300, ""]
OUTS = ["out.jsonl", "nodir/out.jsonl", "afile.txt", "notalog", "", ".", "x" * 300 + ".jsonl", "afile.txt/o",
        "é🙂.jsonl"]
LLMS = ["sim", "sim:x", "recorded:" + LOG, "recorded:missing.lmdb", "recorded:", "openai:http://127.0.0.1:9/v1",
        "vllm:not-a-url", "transformers:/nonexistent", "transformers:", "nope:x", "", "🙂"]
COUNTS = {"domains", "tasks_per_domain", "episodes_per_task"}


def _text(dest: str, tiny: dict[str, Any]) -> st.SearchStrategy[str]:
    good = {
        "log": PATHS, "out": OUTS, "log_a": PATHS, "log_b": PATHS, "tls_cert": ["afile.txt", "missing.pem", ""],
        "tls_key": ["afile.txt", "missing.pem", ""], "llm": LLMS, "model": ["m", ""],
        "episode": [tiny["episode"], "episode/" + tiny["episode"], "d99/t999/g9", "d00"],
        "tool": [tiny["tool"], "d00/" + tiny["tool"], "nope.tool", "/"],
        "id": [tiny["task"], "d00", "d99", "t000"], "stream": [tiny["stream"], "episode/", "nope"],
        "only": ["local", "served", "local,served", "nope", ",,"], "chain_length": ["2-4", "4-2", "2", "a-b", "2-4-6"],
        "log_level": ["debug", "warning", "LOUD"], "host": ["127.0.0.1", "::1", "localhost", "999.1.1.1", ""],
        "token": ["t0ken-long-enough-0123456789", "x"], "task": [tiny["task"], "d99/t9"],
    }.get(dest, [])
    return st.sampled_from(good) | st.sampled_from(JUNK) if good else st.sampled_from(JUNK)


def _value(command: str, action: argparse.Action, tiny: dict[str, Any]) -> st.SearchStrategy[str]:
    if action.choices is not None:
        return st.sampled_from([str(c) for c in action.choices]) | st.sampled_from(JUNK)
    if command in RUN_FAMILY and action.dest == "log":
        return st.sampled_from(RUN_LOGS)
    if command in RUN_FAMILY and action.dest in tiny["config"]:
        stored = tiny["config"][action.dest]
        edges = EDGE_FLOATS if action.type is float else EDGE_INTS
        if action.dest in COUNTS:  # never above the log's own counts: a resume with nothing to do
            edges = [e for e in edges if not _above(e, stored)]
        return st.sampled_from([str(stored)]) | st.sampled_from(edges) | st.sampled_from(JUNK)
    if action.type is int:
        return st.sampled_from(["1", "2", "3"]) | st.sampled_from(EDGE_INTS) | st.sampled_from(JUNK)
    if action.type is float:
        return st.sampled_from(["0.05", "0.5", "1"]) | st.sampled_from(EDGE_FLOATS) | st.sampled_from(JUNK)
    return _text(action.dest, tiny)


def _above(text: str, stored: int) -> bool:
    try:
        return int(text) > stored
    except ValueError:
        return False


# A server's argv carries one of these, each refused before anything listens.
SERVER_REFUSALS: dict[str, list[list[str]]] = {
    "serve": [["--max-body-bytes", "0"], ["--tls-cert", "afile.txt"], ["--tls-cert", "missing.pem", "--tls-key", "afile.txt"],
              ["--host", "0.0.0.0"], ["--port", "70000"], ["--port", "-1"], ["--log", "missing.lmdb"],
              ["--log", "notalog"], ["--log", "afile.txt"], ["--header-timeout", "nan"], ["--max-depth", "-1"]],
    "ui": [["--tls-cert", "afile.txt"], ["--host", "0.0.0.0"], ["--port", "70000"], ["--log", "missing.lmdb"],
           ["--log", "notalog"]],
    "sim-server": [["--max-body-bytes", "0"], ["--tls-key", "afile.txt"], ["--host", "0.0.0.0"], ["--port", "-5"],
                   ["--body-timeout", "-1"]],
}
SERVER_REFUSALS["serve-mcp"] = [["--transport", "http", *r] for r in SERVER_REFUSALS["serve"]]
SERVER_FIXED = {"--host", "--port", "--token", "--insecure", "--transport", "--tls-cert", "--tls-key"}


@st.composite
def argvs(draw: st.DrawFn, command: str, tiny: dict[str, Any]) -> list[str]:
    parser = COMMANDS[command]
    argv = command.split()
    optionals = [a for a in parser._actions
                 if a.option_strings and not isinstance(a, argparse._HelpAction)
                 and not set(a.option_strings) & NEVER_DRAWN]
    positionals = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
    refusal: list[str] = []
    if command in SERVERS:
        refusal = draw(st.sampled_from(SERVER_REFUSALS[command]))
        taken = {r for r in refusal if r.startswith("--")} | SERVER_FIXED
        optionals = [a for a in optionals if not set(a.option_strings) & taken]
    chosen = draw(st.lists(st.sampled_from(optionals), max_size=6, unique_by=lambda a: a.dest)) if optionals else []
    if command in RUN_FAMILY and not any(a.dest == "log" for a in chosen):
        chosen.append(next(a for a in optionals if a.dest == "log"))
    for action in chosen:
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            argv.append(flag)
        else:
            argv += [flag, draw(_value(command, action, tiny))]
    for action in positionals:
        if draw(st.integers(0, 9)) > 0:  # now and then one left out (argparse's own error)
            argv.append(draw(_value(command, action, tiny)))
    if command == "log tail" and "--until-finished" not in argv:
        argv.append("--until-finished")
    return argv + refusal


# ------------------------------------------------------------------ the properties


def _allowed_roots(argv: list[str]) -> list[str]:
    """The paths the command may write under: the --log (default ./scaleenv.lmdb) and --out
    given, and the logs ``diff`` reads (LMDB notes its readers in each log's lock.mdb)."""
    roots = [a for a in argv[1:] if not a.startswith("-")] if argv[0] == "diff" else []
    for option, default in (("--log", "scaleenv.lmdb"), ("--out", None)):
        values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == option]
        value = values[-1] if values else default
        if value:
            roots.append(os.path.normpath(value))
    return roots


def _under(path: str, roots: list[str]) -> bool:
    return any(r == "." or path == r or path.startswith(r + os.sep) for r in roots)


def check_argv(argv: list[str], root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree(root)
    status: object
    stdin = sys.stdin
    sys.stdin = io.StringIO("n\np\ng 1\nq\n")  # for replay --interactive
    try:
        with _in(root):
            status = main(argv)
    except SystemExit as exc:  # argparse: a usage error (2) or --help (0)
        status = exc.code
    finally:
        sys.stdin = stdin
    out, err = capsys.readouterr()
    assert "Traceback" not in err, (argv, err)
    assert status in (0, 1, 2, 130), (argv, status, err[-2000:])
    if "--json" in argv:
        lines = out.strip().splitlines()
        if " ".join(argv[:2]) in STREAMING and status == 0:  # JSON lines, one per event: maybe none
            assert all(isinstance(json.loads(line), dict) for line in lines), (argv, out[-500:])
        else:
            assert lines, (argv, status, "no JSON object on stdout", err[-500:])
            assert isinstance(json.loads(lines[-1]), dict), (argv, lines[-1][:500])
    after = _tree(root)
    roots = _allowed_roots(argv)
    stray = sorted(p for p in after.keys() - before.keys() if not _under(p, roots))
    assert not stray, (argv, "files created outside --log/--out", stray)
    changed = sorted(p for p in before.keys() & after.keys()
                     if before[p] != after[p] and before[p][0] >= 0 and not _under(p, roots))
    assert not changed, (argv, "files changed outside --log/--out", changed)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=_EXPLORE or examples, deadline=None, derandomize=not _EXPLORE, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Examples per subcommand: fewer where a valid draw does real work (a sandbox, a re-run).
EXAMPLES = {"replay": 8, "rerun": 6, "regrade": 6, "run": 10, "synth": 6, "tasks": 6, "rollout": 6}


@pytest.fixture(autouse=True)
def _hang_watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_LIMIT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_argv_crashes_the_cli(command: str, tiny: dict[str, Any], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    counter = iter(range(10**6))

    @_settings(EXAMPLES.get(command, 12))
    @given(argv=argvs(command, tiny))
    def one(argv: list[str]) -> None:
        root = tmp_path / f"ex{next(counter)}"
        root.mkdir()
        _workdir(root, tiny)
        try:
            check_argv(argv, root, capsys)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    one()


def test_every_subcommand_is_fuzzed() -> None:
    """The walk finds every subcommand the CLI has (a new one is fuzzed without a change here)."""
    assert {"run", "export", "log info", "log tail", "serve", "ui", "diff", "show"} <= set(COMMANDS)
    assert all(c in COMMANDS for c in SERVERS)
    assert {f.name for f in config_fields()} <= {a.dest for a in COMMANDS["run"]._actions}
