"""The reward's column policies (exempt, exact, semantic), created rows matched by content,
and the per-goal and per-column breakdown."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from scaleenv._model.reward import SEMANTIC_THRESHOLD, _row_diff, column_matches, goal_records, policies_of, score, similarity
from scaleenv._store.events.tasks import GoldenStep, RecordChange
from scaleenv._store.specs import DomainSpec, FieldSpec, TableSpec

SPEC = DomainSpec(name="d", description="", tools=[], tables=[TableSpec(
    name="tickets", description="", primary_key="ticket_id", fields=[
        FieldSpec(name="ticket_id", type="str", reward="exempt"),
        FieldSpec(name="note", type="str", reward="semantic"),
        FieldSpec(name="updated_on", type="str", reward="exempt"),
        FieldSpec(name="status", type="str"),
        FieldSpec(name="total", type="float", reward="exact"),
    ])])
POLICIES = policies_of(SPEC)


def row(key: str, note: str = "Please call before arriving.", status: str = "open", total: float = 25.0,
        updated: str = "2024-01-01") -> dict:
    return {"ticket_id": key, "note": note, "status": status, "total": total, "updated_on": updated}


def test_policies_come_from_the_spec_exact_by_default() -> None:
    assert POLICIES == {"tickets": {"ticket_id": "exempt", "note": "semantic", "updated_on": "exempt"}}


def test_exempt_columns_are_not_compared_exact_ones_canonically() -> None:
    expected = {"tickets": {"t1": row("t1", total=25)}}
    assert score(expected, {"tickets": {"t1": row("t1", total=25.0, updated="2030-12-31")}}, [], [],
                 policies=POLICIES).reward == 1.0
    bad = score(expected, {"tickets": {"t1": row("t1", total=25.5)}}, [], [], policies=POLICIES)
    assert bad.reward == 0.0 and bad.diff == ["tickets[t1].total: expected 25, got 25.5"]
    assert score(expected, {"tickets": {"t1": row("t1", updated="x")}}, [], []).reward == 0.0  # no policies: all exact


def test_semantic_columns_match_by_similarity_above_the_threshold() -> None:
    a = "Please call before arriving."
    close = "please call before arriving"  # case and punctuation
    near = "Please call me before arriving."
    other = "Budget is tight this quarter."
    assert similarity(a, close) == 1.0 and similarity(a, near) >= SEMANTIC_THRESHOLD > similarity(a, other)
    assert column_matches("semantic", a, near) and not column_matches("semantic", a, other)
    assert not column_matches("exact", a, near) and column_matches("exempt", a, other)
    assert column_matches("semantic", 3, 3.0) and not column_matches("semantic", 3, 4)  # not text: exact
    expected = {"tickets": {"t1": row("t1")}}
    assert score(expected, {"tickets": {"t1": row("t1", note=near)}}, [], [], policies=POLICIES).reward == 1.0
    wrong = score(expected, {"tickets": {"t1": row("t1", note=other)}}, [], [], policies=POLICIES)
    assert wrong.reward == 0.0 and wrong.diff[0].startswith("tickets[t1].note")


def test_a_row_created_under_another_key_is_matched_by_content() -> None:
    initial = {"tickets": {"t1": row("t1")}}
    expected = {"tickets": {"t1": row("t1"), "tic_0002": row("tic_0002", note="New one", status="new")}}
    same = {"tickets": {"t1": row("t1"), "tic_0009": row("tic_0009", note="New one", status="new")}}
    assert score(expected, same, [], [], policies=POLICIES).reward == 1.0
    differs = {"tickets": {"t1": row("t1"), "tic_0009": row("tic_0009", note="New one", status="open")}}
    bad = score(expected, differs, [], [], policies=POLICIES)
    assert bad.reward == 0.0 and any("missing record" in d for d in bad.diff) and any("unexpected" in d for d in bad.diff)
    assert score(expected, initial, [], [], policies=POLICIES).reward == 0.0  # not created at all


def test_breakdown_per_goal_and_per_column() -> None:
    initial = {"tickets": {"t1": row("t1"), "t2": row("t2")}}
    golden = [
        GoldenStep(tool="close", args={}, result={}, delta=[RecordChange(table="tickets", key="t1", before=row("t1"),
                                                                       after=row("t1", status="closed"))]),
        GoldenStep(tool="get", args={}, result={}, delta=[]),
        GoldenStep(tool="repay", args={}, result={}, delta=[RecordChange(table="tickets", key="t2", before=row("t2"),
                                                                       after=row("t2", total=0.0))]),
    ]
    goals = goal_records(golden, [2, 3])
    assert goals == [{("tickets", "t1")}, {("tickets", "t2")}]
    expected = {"tickets": {"t1": row("t1", status="closed"), "t2": row("t2", total=0.0)}}
    half = {"tickets": {"t1": row("t1", status="closed"), "t2": row("t2")}}
    got = score(expected, half, [], [], policies=POLICIES, goals=goals)
    assert got.reward == 0.0
    assert got.breakdown["goal_1"] == 1.0 and got.breakdown["goal_2"] == 0.0
    assert got.breakdown["column:tickets.status"] == 1.0 and got.breakdown["column:tickets.total"] == 0.0
    assert score(expected, expected, [], [], policies=POLICIES, goals=goals).breakdown["goal_2"] == 1.0
    assert goal_records(golden, []) == [{("tickets", "t1"), ("tickets", "t2")}]  # one goal: every step
    assert score(expected, initial, [], [], goals=goals).reward == 0.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True, allow_infinity=False, width=16)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2), max_leaves=6)
rows = st.dictionaries(st.sampled_from(["ticket_id", "note", "status", "total", "updated_on"]), json_values)


@given(rows)
def test_equal_rows_have_no_diff_under_any_policy(r: dict) -> None:
    """score skips rows that are == (or the same object); _row_diff must find nothing there."""
    twin = msgspec.msgpack.decode(msgspec.msgpack.encode(r)) if r == msgspec.msgpack.decode(msgspec.msgpack.encode(r)) else dict(r)
    for cols in ({}, POLICIES["tickets"], {f: "semantic" for f in r}):
        assert _row_diff("tickets", r, r, cols) == []
        assert _row_diff("tickets", r, twin, cols) == []


def test_a_run_of_untouched_background_rows_scores_as_before() -> None:
    background = {f"t{i:03}": row(f"t{i:03}", total=float(i)) for i in range(50)}
    expected = {"tickets": {**background, "t999": row("t999", status="closed")}}
    actual = {"tickets": {**{k: dict(v) for k, v in background.items()}, "t999": row("t999", status="open")}}
    got = score(expected, actual, [], [], policies=POLICIES, goals=[{("tickets", "t999")}, {("tickets", "t001")}])
    assert got.reward == 0.0
    assert got.diff == ["tickets[t999].status: expected 'closed', got 'open'"]
    assert got.breakdown["goal_1"] == 0.0 and got.breakdown["goal_2"] == 1.0
    assert got.breakdown["column:tickets.status"] == 0.0 and got.breakdown["column:tickets.total"] == 1.0
