"""The rule-based reward: compare final database states (and required answers). No LLM.

Binary, as the paper's: 1 when the episode's final state matches the task's expected
final state and every required answer was told to the user; else 0. Rows are matched by
primary key; a row the agent created under another key than the golden chain did is
matched by content (its compared columns). Each column is judged by its policy (the
spec's ``FieldSpec.reward``):

- ``exact`` (and no policy): equal, canonically (25 and 25.0 are equal);
- ``semantic``: free text that must say the same thing: equal after normalising case,
  punctuation and spacing, or a :func:`similarity` of at least :data:`SEMANTIC_THRESHOLD`
  (non-text values: exact);
- ``exempt``: not compared (generated ids, stamps a tool sets itself).

The breakdown beside the reward: ``state``, ``tables_matching``, ``answers``, one
``goal_<n>`` per goal (1 when every record that goal's golden calls changed matches),
and one ``column:<table>.<field>`` per column of those records (1 when it matches in
every one of them).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from scaleenv._store.specs import DbState, DomainSpec

from .state import same

REWARD_VERSION = "columns-1"
SEMANTIC_THRESHOLD = 0.85
"""Least :func:`similarity` at which two texts of a ``semantic`` column count as the same."""

Policies = Mapping[str, Mapping[str, str]]
"""table -> column -> policy (a column not listed is exact)."""


@attrs.frozen
class Score:
    reward: float
    breakdown: dict[str, float]
    diff: list[str]
    version: str = REWARD_VERSION


def policies_of(spec: DomainSpec | None) -> dict[str, dict[str, str]]:
    """Each column's reward policy in ``spec`` (only those that are not exact)."""
    if spec is None:
        return {}
    out: dict[str, dict[str, str]] = {}
    for table in spec.tables:
        cols = {f.name: f.reward for f in table.fields if f.reward not in (None, "exact")}
        if cols:
            out[table.name] = cols  # type: ignore[assignment]
    return out


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _text_norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def similarity(a: str, b: str) -> float:
    """A deterministic text similarity in [0, 1]: difflib's ratio over the texts normalised
    (lower case, punctuation as spaces, single spaces)."""
    x, y = _text_norm(a), _text_norm(b)
    if x == y:
        return 1.0
    return difflib.SequenceMatcher(None, x, y, autojunk=False).ratio()


def column_matches(policy: str | None, expected: Any, actual: Any) -> bool:
    """Whether one column's value matches under its policy."""
    if policy == "exempt":
        return True
    if policy == "semantic" and isinstance(expected, str) and isinstance(actual, str):
        return similarity(expected, actual) >= SEMANTIC_THRESHOLD
    return same(expected, actual)


def _row_diff(table: str, expected: dict[str, Any], actual: dict[str, Any], cols: Mapping[str, str]) -> list[str]:
    """The columns of one row that do not match (by policy).

    Empty for rows that are ``==`` (dict equality compares values by identity, then
    ``==``; :func:`same` accepts both, and equal texts are similar), which :func:`score`
    relies on to skip the many rows an episode leaves as they were."""
    return sorted(f for f in set(expected) | set(actual)
                  if not column_matches(cols.get(f), expected.get(f), actual.get(f)))


def _rows_match(expected: dict[str, Any] | None, actual: dict[str, Any] | None, cols: Mapping[str, str]) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    return expected is actual or not _row_diff("", expected, actual, cols)


def _pair_created(table: str, missing: list[str], unexpected: list[str], exp_rows: dict[str, Any],
                  act_rows: dict[str, Any], cols: Mapping[str, str]) -> dict[str, str]:
    """Rows the golden chain made (expected key -> the agent's key) that the agent made under
    another key: paired by content, in key order."""
    pairs: dict[str, str] = {}
    free = list(unexpected)
    for key in missing:
        for other in free:
            if _rows_match(exp_rows[key], act_rows[other], cols):
                pairs[key] = other
                free.remove(other)
                break
    return pairs


def score(expected: DbState, actual: DbState, expected_answers: Iterable[str], said: Iterable[str], *,
          policies: Policies | None = None, goals: list[set[tuple[str, str]]] | None = None) -> Score:
    """The reward of an episode whose final state is ``actual``.

    ``policies``: each column's reward policy (:func:`policies_of`); none: every column exact.
    ``goals``: the records each goal's golden calls changed, for the per-goal breakdown."""
    policies = policies or {}
    lines: list[str] = []
    matching = 0
    tables = sorted(set(expected) | set(actual))
    # table -> expected key -> the actual key it is compared with (created rows may differ)
    matched: dict[str, dict[str, str | None]] = {}
    for table in tables:
        exp_rows, act_rows = expected.get(table, {}), actual.get(table, {})
        cols = policies.get(table, {})
        keys = matched[table] = {}
        if exp_rows is act_rows or exp_rows == act_rows:
            matching += 1
            continue
        missing = sorted(k for k in exp_rows if k not in act_rows)
        unexpected = sorted(k for k in act_rows if k not in exp_rows)
        pairs = _pair_created(table, missing, unexpected, exp_rows, act_rows, cols) if missing and unexpected else {}
        ok = True
        for key in sorted(exp_rows):
            if key in act_rows:
                keys[key] = key
                if exp_rows[key] is act_rows[key] or exp_rows[key] == act_rows[key]:
                    continue  # equal rows match under every policy (see _row_diff)
                bad = _row_diff(table, exp_rows[key], act_rows[key], cols)
                if bad:
                    ok = False
                    for f in bad:
                        lines.append(f"{table}[{key}].{f}: expected {exp_rows[key].get(f)!r}, got {act_rows[key].get(f)!r}")
            elif key in pairs:
                keys[key] = pairs[key]
            else:
                keys[key] = None
                ok = False
                lines.append(f"{table}[{key}]: missing record (expected {exp_rows[key]})")
        for key in unexpected:
            if key not in pairs.values():
                ok = False
                lines.append(f"{table}[{key}]: unexpected record {act_rows[key]}")
        matching += ok
    spoken = _norm(" ".join(said))
    answers = list(expected_answers)
    found = [a for a in answers if _norm(str(a)) in spoken]
    missing_answers = [a for a in answers if a not in found]
    state_ok = not lines
    breakdown = {
        "state": 1.0 if state_ok else 0.0,
        "tables_matching": matching / len(tables) if tables else 1.0,
        "answers": len(found) / len(answers) if answers else 1.0,
    }
    if goals:
        columns: dict[str, bool] = {}
        for n, records in enumerate(goals, start=1):
            goal_ok = True
            for table, key in sorted(records):
                exp = expected.get(table, {}).get(key)
                other = matched.get(table, {}).get(key, key)
                act = actual.get(table, {}).get(other) if other is not None else None
                if exp is None:  # the goal deleted it: it must be gone
                    goal_ok &= actual.get(table, {}).get(key) is None
                    continue
                if act is None:
                    goal_ok = False
                    continue
                cols = policies.get(table, {})
                bad = set() if exp is act or exp == act else set(_row_diff(table, exp, act, cols))
                goal_ok &= not bad
                for f in exp:
                    name = f"column:{table}.{f}"
                    columns[name] = columns.get(name, True) and f not in bad
            breakdown[f"goal_{n}"] = 1.0 if goal_ok else 0.0
        breakdown.update({k: 1.0 if v else 0.0 for k, v in sorted(columns.items())})
    lines += [f"answer not given to the user: {a!r}" for a in missing_answers]
    return Score(reward=1.0 if state_ok and not missing_answers else 0.0, breakdown=breakdown, diff=lines)


def goal_records(steps: list[Any], goal_ends: list[int]) -> list[set[tuple[str, str]]]:
    """The records each goal's golden steps changed (``steps``: GoldenSteps with deltas)."""
    out: list[set[tuple[str, str]]] = []
    start = 0
    for end in goal_ends or ([len(steps)] if steps else []):
        out.append({(c.table, c.key) for s in steps[start:end] for c in s.delta})
        start = end
    return out
