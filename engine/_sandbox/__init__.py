"""scaleenv._sandbox: check and run synthesized tool code, confined.

- `check_source(source, tool_name)`: pure check-time policy (RestrictedPython + our AST rules).
- `SandboxPool`: trio-native pool of locked-down worker processes with resident,
  sticky sessions, exact per-call deltas, rollback on failure (and on a broken
  integrity constraint, when the session enforces them) and transparent recovery
  when a worker dies.
- `SessionClock` / `task_clock`: the clock a session's tools read (seeded, one step per call).
- Tools may import a few pure standard modules (``scaleenv._sandbox.stdlib``).

Names are imported when first used: a worker process (``scaleenv._sandbox.worker``)
imports this package without loading the pool and trio, which it never uses (a worker
that starts faster is one a loaded machine replaces faster).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CallOutcome": "scaleenv._sandbox.types",
    "ClockError": "scaleenv._sandbox.clock",
    "CodeIssue": "scaleenv._sandbox.types",
    "DEFAULT_START": "scaleenv._sandbox.clock",
    "DbState": "scaleenv._sandbox.types",
    "FailureKind": "scaleenv._sandbox.types",
    "Limits": "scaleenv._sandbox.types",
    "RecordChange": "scaleenv._sandbox.types",
    "SandboxError": "scaleenv._sandbox.pool",
    "SandboxPool": "scaleenv._sandbox.pool",
    "SessionClock": "scaleenv._sandbox.clock",
    "ToolError": "scaleenv._sandbox.guards",
    "ToolFailure": "scaleenv._sandbox.types",
    "apply_delta": "scaleenv._sandbox.state",
    "check_source": "scaleenv._sandbox.policy",
    "task_clock": "scaleenv._sandbox.clock",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from scaleenv._sandbox.clock import DEFAULT_START, ClockError, SessionClock, task_clock
    from scaleenv._sandbox.guards import ToolError
    from scaleenv._sandbox.policy import check_source
    from scaleenv._sandbox.pool import SandboxError, SandboxPool
    from scaleenv._sandbox.state import apply_delta
    from scaleenv._sandbox.types import CallOutcome, CodeIssue, DbState, FailureKind, Limits, RecordChange, ToolFailure


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scaleenv._sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
