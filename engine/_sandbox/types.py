"""Public data types of the sandbox: issues, limits, outcomes and record deltas.

All are msgspec Structs so they cross the parent/worker pipe as msgpack without
hand-written conversion, and compare by value in tests.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

DbState: TypeAlias = dict[str, dict[str, dict[str, Any]]]
"""Table name -> record key -> record (field -> JSON value)."""

FailureKind: TypeAlias = Literal[
    "tool_error",
    "exception",
    "timeout",
    "memory",
    "crashed",
    "output_too_large",
    "policy",
    "bad_args",
    "integrity",
]


class CodeIssue(msgspec.Struct, frozen=True, array_like=True):
    """One problem found in tool source at check time (1-based line, 0-based col)."""

    line: int
    col: int
    message: str


class Limits(msgspec.Struct, frozen=True):
    """Resource limits applied to every worker and every call."""

    timeout_s: float = 2.0
    """Per-call wall-clock budget (soft in-worker alarm; hard kill after `kill_grace_s`)."""
    memory_bytes: int = 512 * 1024 * 1024
    """RLIMIT_AS of each worker process."""
    max_result_bytes: int = 1024 * 1024
    """Largest encoded result a call may return."""
    max_delta_bytes: int = 16 * 1024 * 1024
    """Largest encoded state delta a call may produce."""
    recursion_limit: int = 200
    """Python frames available to tool code (worker frames are added on top)."""
    kill_grace_s: float = 1.0
    test_clock: bool = False
    """TEST ONLY: tools may call ``clock_ns()``, a deliberately nondeterministic builtin, so
    tests can prove that ``scaleenv replay --verify`` catches nondeterminism. Never set it
    for real runs."""
    """Extra time after `timeout_s` before the parent SIGKILLs an unresponsive worker."""


class ToolFailure(msgspec.Struct, frozen=True, omit_defaults=True):
    """Why a call did not succeed."""

    kind: FailureKind
    message: str
    type: str | None = None
    """Exception type name, for `exception` / `tool_error`."""
    traceback: str | None = None
    """Traceback restricted to tool-source frames (file `<tool:NAME>`), for `exception`."""
    issues: list[CodeIssue] = []
    """Check-time issues, for `policy`."""
    violations: list[str] = []
    """The integrity constraints the call broke, one sentence each, for `integrity`
    (the call was rolled back like any failed call)."""


class RecordChange(msgspec.Struct, frozen=True, array_like=True):
    """One record created (before=None), changed, or deleted (after=None) by a call."""

    table: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class CallOutcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """Result of one tool call. A failed call never changes session state."""

    ok: bool
    result: Any = None
    error: ToolFailure | None = None
    delta: list[RecordChange] = []
    clock: str | None = None
    """The session clock's reading (``YYYY-MM-DD HH:MM:SS``) when the tool read the time
    (``datetime.now()``, ``time.time()``, ...); None when it did not."""


def failure(kind: FailureKind, message: str, **extra: Any) -> CallOutcome:
    """Build a failed outcome with no delta."""
    return CallOutcome(ok=False, error=ToolFailure(kind=kind, message=message, **extra))
