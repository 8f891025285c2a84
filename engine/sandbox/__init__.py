"""scaleenv.sandbox: check and run synthesized tool code, confined.

- `check_source(source, tool_name)`: pure check-time policy (RestrictedPython + our AST rules).
- `SandboxPool`: trio-native pool of locked-down worker processes with resident,
  sticky sessions, exact per-call deltas, rollback on failure and transparent
  recovery when a worker dies.
"""

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
    "CodeIssue",
    "DbState",
    "FailureKind",
    "Limits",
    "RecordChange",
    "SandboxError",
    "SandboxPool",
    "ToolError",
    "ToolFailure",
    "apply_delta",
    "check_source",
]
