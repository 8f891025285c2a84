"""Ctrl-C of a sharded run with the in-process executor (no Ray): a real process, a real signal.

The driver runs in a subprocess (signals reach only a main thread); it is signalled once
its receiving logs hold shipped-back records (an observable event, not a delay), must
exit promptly with its workers stopped, leave the main log intact, and a second run must
resume to the single-machine digest with every episode started once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from scaleenv._distributed import distributed_domains, distributed_rollouts
from scaleenv._shards import existing_shards, shards_dir

from .conftest import CONFIG, OPTIONS, Base, bounded, episode_starts, stream_digests
from .interrupt import received, run_and_signal, scaleenv

EXIT_BOUND_S = 10.0
"""A generous bound for a loaded CI machine; the typical figure is well under a second (README)."""

DRIVER = """
import sys
import msgspec
from scaleenv._config import RunConfig
from scaleenv import _distributed as distributed
from scaleenv._runner import EngineOptions

config = msgspec.json.decode(sys.argv[2], type=RunConfig)
options = EngineOptions(progress=False, sync=False, latency=True, concurrency=2)
stage = getattr(distributed, sys.argv[3] if len(sys.argv) > 3 else "distributed_rollouts")
try:
    stage(sys.argv[1], config, options, shards=2, executor="inprocess")
except KeyboardInterrupt as exc:
    print(f"interrupted ({exc})", file=sys.stderr)
    sys.exit(130)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_inprocess_executor_and_a_rerun_resumes(tmp_path: Path, base: Base, sig: int) -> None:
    main = base.copy(tmp_path / "main")
    argv = [sys.executable, "-c", DRIVER, str(main), msgspec.json.encode(CONFIG).decode()]
    stopped = run_and_signal(argv, main, sig, min_records=10)
    assert not stopped.finished_first, "the run ended before the trigger: make it longer"
    assert stopped.code == 130, stopped.stderr
    assert stopped.stderr.strip() == f"interrupted ({signal.Signals(sig).name})"
    assert stopped.exit_s < EXIT_BOUND_S
    # What the driver stored is on disk, unmerged; both logs check clean.
    assert existing_shards(main) and received(main) >= stopped.received_at_signal
    for path in (main, *existing_shards(main)):
        check = subprocess.run(scaleenv("log", "check", "--log", str(path)), capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    result = bounded(distributed_rollouts, str(main), CONFIG, OPTIONS, shards=2, executor="inprocess")
    d = result["distributed"]
    assert d["recovered_from_earlier_run"]["events_merged"] >= stopped.received_at_signal
    assert result["digest"] == base.digest
    assert stream_digests(main) == base.streams
    starts = episode_starts(main)
    assert len(starts) == base.episodes and set(starts.values()) == {1}
    assert not shards_dir(main).exists()


def test_a_signal_during_sharded_stage1_stops_it_and_a_rerun_resumes(tmp_path: Path, synth_only: Path) -> None:
    main = tmp_path / "main"  # a new log: stage 1 from the start
    argv = [sys.executable, "-c", DRIVER, str(main), msgspec.json.encode(CONFIG).decode(), "distributed_domains"]
    stopped = run_and_signal(argv, main, signal.SIGINT, min_records=10)
    assert not stopped.finished_first, "the run ended before the trigger: make it longer"
    assert stopped.code == 130, stopped.stderr
    assert stopped.stderr.strip() == "interrupted (SIGINT)"
    assert stopped.exit_s < EXIT_BOUND_S
    assert existing_shards(main) and received(main) >= stopped.received_at_signal
    result = bounded(distributed_domains, str(main), CONFIG, OPTIONS, shards=2, executor="inprocess")
    d = result["distributed"]
    assert d["recovered_from_earlier_run"]["events_merged"] >= stopped.received_at_signal
    assert sum(w["resumed"] for w in d["workers"]) >= 1, d  # a domain went on from what was shipped back
    assert stream_digests(main) == stream_digests(synth_only)
    assert not shards_dir(main).exists()


GROUPED = """
import atexit
import os
import signal
import sys

import trio

from scaleenv._cli.run import prompt_exit_when_interrupted

atexit.register(print, "late teardown", flush=True)  # registered first, so it runs last: like Ray's


async def main():
    async with trio.open_nursery() as nursery:  # the Ctrl-C lands inside a nursery: trio groups it
        nursery.start_soon(trio.sleep_forever)
        os.kill(os.getpid(), signal.SIGINT)
        await trio.sleep_forever()


try:
    with prompt_exit_when_interrupted():
        trio.run(main)
except BaseException as exc:
    print(f"{type(exc).__name__}: {[type(e).__name__ for e in getattr(exc, 'exceptions', [])]}", flush=True)
    sys.exit(1)
"""


def test_a_ctrl_c_inside_an_exception_group_exits_promptly() -> None:
    # trio hands a Ctrl-C that lands inside a nursery to the caller in an exception group;
    # the CLI's prompt exit must see it there too: status 130 at the first exit handler,
    # so later ones (Ray's slow teardown) never run.
    done = subprocess.run([sys.executable, "-c", GROUPED], capture_output=True, text=True, timeout=300)
    assert done.stdout.splitlines() == ["BaseExceptionGroup: ['KeyboardInterrupt']"], done.stdout + done.stderr
    assert done.returncode == 130, done.stdout + done.stderr
