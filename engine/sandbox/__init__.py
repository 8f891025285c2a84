"""scaleenv.sandbox: check and run synthesized tool code, confined.

- `check_source(source, tool_name)`: pure check-time policy (RestrictedPython + our AST rules).
- `SandboxPool`: trio-native pool of locked-down worker processes with resident,
  sticky sessions, exact per-call deltas, rollback on failure (and on a broken
  integrity constraint, when the session enforces them) and transparent recovery
  when a worker dies.
- `SessionClock` / `task_clock`: the clock a session's tools read (seeded, one step per call).
- Tools may import a few pure standard modules (``scaleenv.sandbox.stdlib``).
"""

from scaleenv.sandbox.clock import DEFAULT_START, ClockError, SessionClock, task_clock
from scaleenv.sandbox.guards import ToolError
from scaleenv.sandbox.policy import check_source
from scaleenv.sandbox.pool import SandboxError, SandboxPool
from scaleenv.sandbox.state import apply_delta
from scaleenv.sandbox.types import (
    CallOutcome,
    CodeIssue,
    DbState,
    FailureKind,
    Limits,
    RecordChange,
    ToolFailure,
)

__all__ = [
    "CallOutcome",
    "ClockError",
    "CodeIssue",
    "DEFAULT_START",
    "DbState",
    "FailureKind",
    "Limits",
    "RecordChange",
    "SandboxError",
    "SandboxPool",
    "SessionClock",
    "ToolError",
    "ToolFailure",
    "apply_delta",
    "check_source",
    "task_clock",
]
