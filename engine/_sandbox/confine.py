"""Defense in depth for a worker process (on top of RestrictedPython).

`lockdown()` empties the environment (but ``TZ=UTC``), sets resource limits
(address space, no core files, no file writes, no new processes, few fds) and
installs an audit hook that, from then on, refuses process creation, sockets,
ctypes, gc/frame introspection, new imports and any file open outside the (empty) scratch directory. `exec` and
`compile` events are allowed only inside `Gate.loading()` (when the worker
itself compiles tool source), and `object.__getattr__` events (tb_frame etc.)
only inside `Gate.trusted()` (when the worker formats a traceback).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from scaleenv._sandbox.types import Limits

_BLOCKED_PREFIXES = (
    "os.", "subprocess.", "socket.", "ctypes.", "shutil.", "_posixsubprocess.", "pty.",
    "mmap.", "gc.", "marshal.", "pickle.", "sqlite3.", "urllib.", "webbrowser.", "fcntl.",
    "http.", "ftplib.", "smtplib.", "imaplib.", "poplib.", "nntplib.", "telnetlib.",
    "syslog.", "resource.", "signal.", "cpython.", "winreg.", "msvcrt.", "_winapi.",
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace",
    "sys.setprofile", "sys.set_asyncgen_hooks", "sys.excepthook", "sys.unraisablehook",
    "sys.addaudithook", "code.__new__", "function.__new__", "builtins.input", "setopencode",
    "object.__setattr__", "object.__delattr__", "import", "glob.", "tempfile.",
)
_GATED_LOADING = frozenset({"exec", "compile"})
_GATED_TRUSTED = frozenset({"object.__getattr__"})


class SandboxViolation(PermissionError):
    """Raised by the audit hook when code attempts a blocked operation."""


class Gate:
    """Worker-side switches the audit hook consults, plus the record of violations."""

    def __init__(self, scratch: str) -> None:
        self.scratch = os.path.realpath(scratch)
        self.loading_depth = 0
        self.trusted_depth = 0
        self.violations: list[str] = []

    @contextmanager
    def loading(self) -> Iterator[None]:
        """Allow exec/compile events (the worker compiling tool source)."""
        self.loading_depth += 1
        try:
            yield
        finally:
            self.loading_depth -= 1

    @contextmanager
    def trusted(self) -> Iterator[None]:
        """Allow introspection events (the worker formatting a traceback)."""
        self.trusted_depth += 1
        try:
            yield
        finally:
            self.trusted_depth -= 1

    def _deny(self, event: str) -> None:
        self.violations.append(event)
        raise SandboxViolation(f"sandbox: {event} is not allowed")

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        """The audit hook (installed by `lockdown`)."""
        if event == "open":
            path = args[0] if args else None
            if isinstance(path, (str, bytes)):
                real = os.path.realpath(os.fsdecode(path))
                mode = args[1] if len(args) > 1 else "r"
                flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                    flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC)
                )
                inside = real == self.scratch or real.startswith(self.scratch + os.sep)
                if inside and not writing:
                    return
            self._deny(f"open({path!r})")
        elif event in _GATED_LOADING:
            if self.loading_depth == 0:
                self._deny(event)
        elif event in _GATED_TRUSTED:
            if self.trusted_depth == 0:
                self._deny(f"{event}{args[1:2]!r}")
        elif event.startswith(_BLOCKED_PREFIXES):
            self._deny(event)


def _set_limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def lockdown(limits: Limits, scratch: str) -> Gate:
    """Confine the current process; returns the Gate its audit hook consults.

    Irreversible: call it once, after every module the worker needs is imported.
    """
    os.chdir(scratch)
    os.environ.clear()
    os.environ["TZ"] = "UTC"  # local time is UTC on every host (tools' datetime and time)
    time.tzset()
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_FSIZE, 0)
    _set_limit(resource.RLIMIT_NPROC, 0)
    _set_limit(resource.RLIMIT_NOFILE, 64)
    _set_limit(resource.RLIMIT_AS, limits.memory_bytes)
    sys.setrecursionlimit(limits.recursion_limit + 60)
    gate = Gate(scratch)
    sys.addaudithook(gate.hook)
    return gate
