"""``scaleenv serve`` as a real process, shared by a module's tests (one test per error path,
each on its own episode, so one failure does not hide the others)."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from scaleenv._replay.projection import fold
from scaleenv._store.log import Log

STARTUP_LIMIT_S = 300.0  # bounds on a hang, not timing assertions
EXIT_LIMIT_S = 120.0


@attrs.frozen
class Served:
    url: str
    port: int
    log: Path
    task_id: str
    tool: str
    """The first tool of the task's golden chain."""

    def stream_events(self, log_episode_id: str) -> int:
        """How many events the log holds for an episode (read-only, beside the server)."""
        with Log.open(self.log, readonly=True) as log:
            return sum(1 for _ in log.read_stream(f"episode/{log_episode_id}"))


@contextmanager
def serving(log: Path, *options: str) -> Iterator[Served]:
    """Serve ``log`` on a free loopback port with ``options``; stop it with SIGINT after the block
    (it must exit 0 or 130, without a traceback)."""
    with Log.open(log, readonly=True) as lg:
        view = fold(lg.read())
    task_id = next(t for t, task in sorted(view.tasks.items()) if task.status == "kept")
    tool = view.tasks[task_id].golden.steps[0].tool
    err_file = tempfile.TemporaryFile("w+")  # a file, not a pipe: a server that logs much never blocks on it
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaleenv", "serve", "--log", str(log), "--host", "127.0.0.1", "--port", "0", "--json",
         "--no-sync", "--sandbox-workers", "1", *options],
        stdout=subprocess.PIPE, stderr=err_file, text=True)
    try:
        started = _first_line(proc, err_file)
        yield Served(started["url"].removesuffix("/v1"), int(started["port"]), log, task_id, tool)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=EXIT_LIMIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        err_file.seek(0)
        err = err_file.read()
        err_file.close()
        if proc.stdout is not None:
            proc.stdout.close()
    assert code in (0, 130) and "Traceback" not in err, (code, err[-3000:])


def _first_line(proc: subprocess.Popen[str], err_file: Any) -> dict[str, Any]:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(STARTUP_LIMIT_S):
            raise AssertionError(f"scaleenv serve printed nothing in {STARTUP_LIMIT_S:g}s")
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        err_file.seek(0)
        raise AssertionError(f"scaleenv serve exited ({proc.returncode}) before listening: {err_file.read()[-3000:]}")
    return json.loads(line)
