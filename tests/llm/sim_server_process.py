"""``scaleenv sim-server`` as a real process on a free loopback port, for the tests that
need the HTTP path end to end."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

CLI = [sys.executable, "-c", "from scaleenv._cli import main; raise SystemExit(main())", "sim-server", "--port", "0"]


@contextmanager
def sim_server_process(*args: str) -> Iterator[str]:
    """A ``scaleenv sim-server --port 0`` process with ``args``; yields its base URL and
    terminates it after the block."""
    proc = subprocess.Popen([*CLI, *args], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line and "serving" not in line:
            line = proc.stderr.readline()
        assert " at http://" in line, f"sim-server did not start: {line!r}"
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
