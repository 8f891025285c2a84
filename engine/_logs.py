"""Diagnostic loggers that behave as a library's should: silent until the application asks.

Every module logs through :func:`get_logger` (structlog's API over the standard library's
``logging``, under the ``scaleenv`` logger). Nothing is printed unless the application
configures logging: the ``scaleenv`` CLI does (``scaleenv._cli.logs``, to stderr); a
program that imports scaleenv sees nothing on stdout or stderr unless it adds a handler
(``logging.basicConfig()`` is enough). Logs are diagnostics, never the audit trail
(events are), and never feed a digest. Context (stream, episode, tool, domain) is bound
with ``structlog.contextvars``; each trio task carries its own.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

ROOT = "scaleenv"

logging.getLogger(ROOT).addHandler(logging.NullHandler())

_PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,  # first: a disabled level costs one check
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
]


def get_logger(name: str) -> Any:
    """A structlog logger for ``name`` (a ``scaleenv.*`` name) over ``logging.getLogger(name)``."""
    return structlog.wrap_logger(logging.getLogger(name), processors=_PROCESSORS,
                                 wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=True)
