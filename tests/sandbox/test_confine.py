"""The defense-in-depth layer on its own, in a real subprocess: after lockdown,
the audit hook refuses what RestrictedPython should already have prevented."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from scaleenv._sandbox.confine import lockdown, SandboxViolation
    from scaleenv._sandbox.types import Limits
    lockdown(Limits(), sys.argv[1])
    attempt = sys.argv[2]
    try:
        if attempt == "open":
            open("/etc/hostname").read()
        elif attempt == "write":
            open(os.path.join(sys.argv[1], "x"), "w").write("data")
        elif attempt == "system":
            os.system("true")
        elif attempt == "fork":
            os.fork()
        elif attempt == "socket":
            import socket
            socket.socket()
        elif attempt == "subprocess":
            import subprocess
            subprocess.Popen(["true"])
        elif attempt == "listdir":
            os.listdir("/")
        elif attempt == "exec":
            exec("1")
        elif attempt == "getframe":
            sys._getframe(0)
    except SandboxViolation as exc:
        print("BLOCKED", exc)
    except OSError as exc:
        print("BLOCKED", type(exc).__name__, exc)
    else:
        print("ALLOWED")
    """
)


@pytest.mark.parametrize("attempt", ["open", "write", "system", "fork", "socket", "subprocess", "listdir", "exec", "getframe"])
def test_audit_hook_blocks(attempt: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), attempt], capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.startswith("BLOCKED"), (proc.stdout, proc.stderr)
    assert list(tmp_path.iterdir()) == []
