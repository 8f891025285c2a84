"""scaleenv.sandbox: check and run synthesized tool code, confined.

- `check_source(source, tool_name)`: pure check-time policy (RestrictedPython + our AST rules).
- `SandboxPool`: trio-native pool of locked-down worker processes with resident,
  sticky sessions, exact per-call deltas, rollback on failure (and on a broken
  integrity constraint, when the session enforces them) and transparent recovery
  when a worker dies.
- `SessionClock` / `task_clock`: the clock a session's tools read (seeded, one step per call).
- Tools may import a few pure standard modules (``scaleenv.sandbox.stdlib``).

Names are imported when first used: a worker process (``scaleenv.sandbox.worker``)
imports this package without loading the pool and trio, which it never uses (a worker
that starts faster is one a loaded machine replaces faster).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CallOutcome": "scaleenv.sandbox.types",
    "ClockError": "scaleenv.sandbox.clock",
    "CodeIssue": "scaleenv.sandbox.types",
    "DEFAULT_START": "scaleenv.sandbox.clock",
    "DbState": "scaleenv.sandbox.types",
    "FailureKind": "scaleenv.sandbox.types",
    "Limits": "scaleenv.sandbox.types",
    "RecordChange": "scaleenv.sandbox.types",
    "SandboxError": "scaleenv.sandbox.pool",
    "SandboxPool": "scaleenv.sandbox.pool",
    "SessionClock": "scaleenv.sandbox.clock",
    "ToolError": "scaleenv.sandbox.guards",
    "ToolFailure": "scaleenv.sandbox.types",
    "apply_delta": "scaleenv.sandbox.state",
    "check_source": "scaleenv.sandbox.policy",
    "task_clock": "scaleenv.sandbox.clock",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from scaleenv.sandbox.clock import DEFAULT_START, ClockError, SessionClock, task_clock
    from scaleenv.sandbox.guards import ToolError
    from scaleenv.sandbox.policy import check_source
    from scaleenv.sandbox.pool import SandboxError, SandboxPool
    from scaleenv.sandbox.state import apply_delta
    from scaleenv.sandbox.types import CallOutcome, CodeIssue, DbState, FailureKind, Limits, RecordChange, ToolFailure


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scaleenv.sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
