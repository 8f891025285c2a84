"""Progress on stderr while long work runs: counters, refreshed in place on a terminal.

On a terminal the line is redrawn at most a few times a second; elsewhere (CI, pipes)
a plain line is printed every few seconds, so logs stay readable. Never on stdout:
``--json`` output stays one clean object.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import attrs


@attrs.define
class Progress:
    enabled: bool = False
    out: TextIO = sys.stderr
    counters: dict[str, float] = attrs.field(factory=dict)
    totals: dict[str, int] = attrs.field(factory=dict)
    started: float = attrs.field(factory=time.monotonic)
    _last: float = 0.0
    stage: str = ""

    def set_stage(self, stage: str, totals: dict[str, int] | None = None) -> None:
        self.finish()
        self.stage = stage
        self.counters = {}
        self.totals = dict(totals or {})
        self.started = time.monotonic()
        self._last = 0.0

    def add(self, name: str, amount: float = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount
        self._maybe_draw()

    def set(self, name: str, value: float) -> None:
        self.counters[name] = value
        self._maybe_draw()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = []
        for name, value in self.counters.items():
            total = self.totals.get(name)
            shown = f"{value:.3g}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"
            parts.append(f"{name} {shown}/{total}" if total else f"{name} {shown}")
        return f"{self.stage}: " + "  ".join(parts) + f"  [{elapsed:.1f}s]"

    def _maybe_draw(self) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        tty = self.out.isatty()
        if now - self._last < (0.25 if tty else 5.0):
            return
        self._last = now
        if tty:
            self.out.write("\r\x1b[2K" + self.line())
        else:
            self.out.write(self.line() + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.enabled and self.stage:
            if self.out.isatty():
                self.out.write("\r\x1b[2K")
            self.out.write(self.line() + "\n")
            self.out.flush()
