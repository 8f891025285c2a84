"""JSON validation at the sandbox boundary: the fast path accepts exactly what the walk that
names each place accepts, and every refusal names the place as before."""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleenv._sandbox.jsonval import MAX_DEPTH, InvalidValue, _explain, check_json, check_state, is_plain_json

leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=3), st.binary(max_size=2), st.just(object()))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.tuples(inner),
        st.dictionaries(st.one_of(st.text(max_size=2), st.integers(0, 3)), inner, max_size=3),
        st.builds(OrderedDict, st.dictionaries(st.text(max_size=2), inner, max_size=2)),
        st.builds(Counter, st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)),
        st.sets(st.integers(), max_size=2)),
    max_leaves=20)


def _outcome(fn: Any, *args: Any) -> str | None:
    try:
        fn(*args)
    except InvalidValue as exc:
        return str(exc)
    return None


def _nested(levels: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


@settings(max_examples=500, deadline=None)
@given(values, st.integers(0, MAX_DEPTH + 2))
def test_the_fast_path_accepts_exactly_what_the_walk_accepts(value: Any, depth: int) -> None:
    walked = _outcome(_explain, value, "v", depth)
    if is_plain_json(value, depth):
        assert walked is None
    assert _outcome(check_json, value, "v", depth) == walked


@pytest.mark.parametrize("levels", range(MAX_DEPTH - 2, MAX_DEPTH + 3))
@pytest.mark.parametrize("leaf", ["x", [], {}])
def test_the_depth_limit_is_where_it_was(levels: int, leaf: Any) -> None:
    value = _nested(levels, leaf)
    for depth in (0, 1):
        assert _outcome(check_json, value, "v", depth) == _outcome(_explain, value, "v", depth)
    # the innermost value (a str or an empty container) sits at depth `levels`
    assert _outcome(check_json, value, "v") == (None if levels <= MAX_DEPTH else
                                                f"v{'[0]' * (MAX_DEPTH + 1)}: nested deeper than {MAX_DEPTH} levels")


def test_a_refusal_names_the_place() -> None:
    state = {"orders": {"o1": {"id": "o1", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": float("nan")}]}}}
    with pytest.raises(InvalidValue, match=r"^orders\['o1'\]\['items'\]\[1\]\['qty'\]: non-finite float nan"):
        check_state(state)
    with pytest.raises(InvalidValue, match=r"^args\['when'\]: bytes is not a JSON value"):
        check_json({"when": b"x"}, "args")
    with pytest.raises(InvalidValue, match=r"^t\['k'\]\['m'\]: dict key 1 is not a str"):
        check_state({"t": {"k": {"m": {1: 2}}}})
