"""What one request may cost a network front end: sizes, nesting, and how long it may take.

Each limit has a name (the ``--max-...``/``--...-timeout`` option that sets it) and a
refusal that names it: ``413 max_body_bytes``, ``408 header_timeout``, ``400 max_depth``,
... (:class:`LimitExceeded`). The servers enforce the transport limits (headers, body,
time); the request handlers enforce the content limits (:func:`check_json_value`,
:func:`check_arguments_text`) before anything is recorded, so an oversized tool argument
never reaches the log.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

KiB = 1024
MiB = 1024 * KiB


@attrs.frozen
class Limits:
    """Per-request limits (every one configurable from the command line)."""

    max_body_bytes: int = 4 * MiB
    """A request body larger than this is refused with 413 before it is read."""
    max_header_bytes: int = 16 * KiB
    """The request line and headers together (431 past it)."""
    header_timeout_s: float = 10.0
    """From the moment a connection waits for a request to its last header byte (408; an
    idle keep-alive connection is simply closed after this long)."""
    body_timeout_s: float = 60.0
    """From the end of the headers to the last body byte (408)."""
    max_argument_bytes: int = 64 * KiB
    """One tool call's arguments, as JSON text (413)."""
    max_depth: int = 32
    """How deep a tool call's arguments (or any free-form JSON in a request) may nest (400)."""
    max_name_chars: int = 256
    """Ids and names a request carries (task ids, tool names, call ids) (400)."""

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(Limits):
            value = getattr(self, field.name)
            if not value > 0:
                raise ValueError(f"{field.name} must be positive, got {value!r}")


SIM_SERVER_LIMITS = Limits(max_body_bytes=64 * MiB)
"""sim-server: whole conversations travel in each request."""


class LimitExceeded(Exception):
    """A request over one of the :class:`Limits`; ``limit`` is the field's name."""

    def __init__(self, status: int, limit: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.limit = limit
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": "limit_exceeded", "param": self.limit, "code": self.status}}


def clip(value: Any, chars: int = 80) -> str:
    """``repr(value)`` cut to about ``chars`` characters, saying how long it was: what an
    error message may echo of client input."""
    text = repr(value)
    if len(text) <= chars:
        return text
    return f"{text[:chars]}... ({len(text)} characters)"


def shorten(text: str, chars: int = 300) -> str:
    """``text`` cut to about ``chars`` characters (a message that may quote client input)."""
    return text if len(text) <= chars else f"{text[:chars]}... ({len(text)} characters)"


def depth_of(value: Any, limit: int) -> int:
    """How deep ``value`` (decoded JSON) nests, counting stops once past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        stack.extend((c, d + 1) for c in children)
    return deepest


def check_json_value(value: Any, limits: Limits, where: str) -> None:
    """Refuse free-form JSON nested deeper than ``max_depth`` (400 naming ``where``)."""
    if depth_of(value, limits.max_depth) > limits.max_depth:
        raise LimitExceeded(400, "max_depth", f"{where} nests deeper than max_depth={limits.max_depth}")


def check_arguments_text(text: str, limits: Limits, where: str) -> None:
    """Refuse tool-call arguments (JSON text) over ``max_argument_bytes`` (413) or nested
    deeper than ``max_depth`` (400). Text that is not JSON passes: it is recorded and
    becomes the tool error it is, as in a local episode."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_argument_bytes:
        raise LimitExceeded(413, "max_argument_bytes",
                            f"{where}: arguments are {size} bytes, over max_argument_bytes={limits.max_argument_bytes}")
    try:
        value = json.loads(text)  # the parser the episode itself uses on them
    except RecursionError:
        raise LimitExceeded(400, "max_depth", f"{where}: arguments nest deeper than max_depth={limits.max_depth}") from None
    except ValueError:
        return
    check_json_value(value, limits, f"{where}: arguments")


def check_name(value: str, limits: Limits, where: str) -> None:
    if len(value) > limits.max_name_chars:
        raise LimitExceeded(400, "max_name_chars",
                            f"{where} is {len(value)} characters, over max_name_chars={limits.max_name_chars}")
