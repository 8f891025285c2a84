"""The CLI's logging: diagnostics to stderr, as console text or JSON lines.

Only the CLI configures logging (see :mod:`scaleenv._logs`: the library is silent until an
application does). Logs are never the audit trail (events are) and never feed a digest.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from scaleenv._logs import ROOT

LogFormat = Literal["console", "json"]


def configure_logging(fmt: LogFormat = "console", level: str = "info") -> None:
    """Send the ``scaleenv`` loggers' records to stderr, rendered as console text or JSON
    lines, from ``level`` up (idempotent: the CLI calls it once per command)."""
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    renderer],
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.stdlib.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
    ))
    root = logging.getLogger(ROOT)
    root.handlers = [h for h in root.handlers if not isinstance(h, _StderrHandler)] + [handler]
    root.setLevel(logging.getLevelNamesMapping()[level.upper()])
    root.propagate = False


class _StderrHandler(logging.Handler):
    """Writes each record to whatever ``sys.stderr`` is at write time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - a failed log line must never fail the work
            self.handleError(record)
