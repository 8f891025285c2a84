"""Database states as values: canonical form, digests, deltas, diffs.

States are compared and digested in a canonical form, so the reward never depends on
representation noise: key order does not matter, ``25`` equals ``25.0``, and a call that
changes nothing changes no digest. Deltas (the records a call created, changed or
deleted) are the only way a state moves forward, in the live engine and in replay alike.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from typing import Any

import msgspec

from scaleenv._store.events.tasks import RecordChange
from scaleenv._store.specs import DbState


def same(a: Any, b: Any) -> bool:
    """Canonically equal: ``canonical(a) == canonical(b)``, without building either when
    plain equality already says so (JSON values that are ``==`` are canonically equal:
    ``25 == 25.0``, dict equality ignores key order; object keys are always str)."""
    return a is b or a == b or canonical(a) == canonical(b)


def canonical(value: Any) -> Any:
    """Normalise a JSON value: integral floats become ints, -0.0 becomes 0, dict keys sorted on encode."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return int(value)
        return round(value, 9)
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def state_digest(state: DbState) -> str:
    """A digest of a state's canonical form (independent of key order and of 25 vs 25.0)."""
    payload = msgspec.msgpack.encode(canonical(state), order="deterministic")
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def record_changes(changes: Iterable[Any]) -> list[RecordChange]:
    """A sandbox outcome's delta as the log's RecordChange events carry it."""
    return [RecordChange(table=c.table, key=c.key, before=c.before, after=c.after) for c in changes]


def apply_delta(state: DbState, delta: Iterable[RecordChange]) -> DbState:
    """The state after a call's delta (a new dict; untouched tables are shared, not copied)."""
    out = dict(state)
    copied: set[str] = set()
    for change in delta:
        if change.table not in copied:
            out[change.table] = dict(out.get(change.table, {}))
            copied.add(change.table)
        if change.after is None:
            out[change.table].pop(change.key, None)
        else:
            out[change.table][change.key] = change.after
    return out


def compute_delta(before: DbState, after: DbState) -> list[RecordChange]:
    """The records that differ between two states, sorted by (table, key)."""
    changes: list[RecordChange] = []
    for table in sorted(set(before) | set(after)):
        old_rows, new_rows = before.get(table, {}), after.get(table, {})
        if old_rows is new_rows or old_rows == new_rows:
            continue
        for key in sorted(set(old_rows) | set(new_rows)):
            old, new = old_rows.get(key), new_rows.get(key)
            if not same(old, new):
                changes.append(RecordChange(table=table, key=key, before=old, after=new))
    return changes


def diff_states(expected: DbState, actual: DbState) -> list[str]:
    """A readable table-by-table diff: which records differ, and how (field: expected -> got)."""
    lines: list[str] = []
    for table in sorted(set(expected) | set(actual)):
        exp_rows, act_rows = expected.get(table, {}), actual.get(table, {})
        if exp_rows is act_rows or exp_rows == act_rows:
            continue
        for key in sorted(set(exp_rows) | set(act_rows)):
            exp, act = exp_rows.get(key), act_rows.get(key)
            if same(exp, act):
                continue
            if exp is None:
                lines.append(f"{table}[{key}]: unexpected record {act}")
            elif act is None:
                lines.append(f"{table}[{key}]: missing record (expected {exp})")
            else:
                for field in sorted(set(exp) | set(act)):
                    if not same(exp.get(field), act.get(field)):
                        lines.append(f"{table}[{key}].{field}: expected {exp.get(field)!r}, got {act.get(field)!r}")
    return lines
