"""Whether a sandboxed call met a test case's expectation and its tool's contract.

The paper's three outcomes of a procedural test: success (no error, the state change is
the one expected and every post-condition holds), anticipated rejection (the clean
``ToolError`` the contract predicts, no state change), and unexpected failure (anything
else). Pure: stage 1 judges live calls with it, ``replay --verify`` re-executed ones.
"""

from __future__ import annotations

from typing import Any

from scaleenv._store.events.synth import CaseResult, TestCase
from scaleenv._store.specs import DomainSpec, ToolSpec

from .contracts import check_post
from .state import apply_delta, canonical, record_changes


def judge(spec: DomainSpec, tool: ToolSpec, case: TestCase, outcome: Any) -> CaseResult:
    """Whether a sandboxed call met the case's expectation (and the tool's contract)."""
    kind = "ok" if outcome.ok else outcome.error.kind
    message = "" if outcome.ok else outcome.error.message
    tb = "" if outcome.ok else (outcome.error.traceback or "")
    delta = record_changes(outcome.delta)

    def result(passed: bool, failure: str = "") -> CaseResult:
        return CaseResult(name=case.name, passed=passed, outcome=kind, message=message[:500], traceback=tb[:2000], failure=failure)

    if case.expect == "error":
        if outcome.ok:
            return result(False, f"expected a clean error ({case.note or 'invalid call'}), but the call succeeded with {str(outcome.result)[:200]}")
        if kind != "tool_error":
            return result(False, f"expected a clean ToolError, got {kind}: {message[:200]}")
        return result(True)
    if not outcome.ok:
        # A broken integrity constraint names each violation: room for several of them.
        return result(False, f"expected success, got {kind}: {message[:1000 if kind == 'integrity' else 300]}")
    after = apply_delta(case.state, delta)
    if not tool.mutates and delta:
        return result(False, f"a read-only tool changed {[(c.table, c.key) for c in delta][:5]}")
    shape = _shape_problem(tool, outcome.result)
    if shape:
        return result(False, shape)
    for exp in case.expect_changes:
        record = after.get(exp.table, {}).get(exp.key)
        if exp.deleted:
            if record is not None:
                return result(False, f"expected {exp.table}[{exp.key}] to be deleted")
        elif record is None:
            return result(False, f"expected {exp.table}[{exp.key}] to exist after the call")
        elif exp.field is not None and canonical(record.get(exp.field)) != canonical(exp.value):
            return result(False, f"expected {exp.table}[{exp.key}].{exp.field} == {exp.value!r}, got {record.get(exp.field)!r}")
    broken = check_post(tool, case.args, case.state, after, outcome.result)
    if broken:
        return result(False, "post-condition failed: " + "; ".join(v.detail for v in broken))
    if case.expect_changes:
        # Success means the transition is exactly the expected one: every record the call
        # changed is one the case expects to change, or a record it creates (new, in a table
        # it writes: its generated key cannot be known before the call).
        expected = {(e.table, e.key) for e in case.expect_changes}
        stray = [(c.table, c.key) for c in delta
                 if (c.table, c.key) not in expected and not (c.before is None and c.table in tool.writes)]
        if stray:
            return result(False, f"changed records the case does not expect: {stray[:5]}")
    return result(True)


def _shape_problem(tool: ToolSpec, value: Any) -> str:
    wanted = [f.name for f in tool.returns]
    items = value if tool.returns_list else [value]
    if tool.returns_list and not isinstance(value, list):
        return f"expected a list of objects, got {type(value).__name__}"
    for item in items:
        if not isinstance(item, dict):
            return f"expected an object with fields {wanted}, got {str(item)[:100]}"
        missing = [w for w in wanted if w not in item]
        if missing:
            return f"result lacks returned fields {missing}"
    return ""
