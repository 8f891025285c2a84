"""`same` (the shortcut the reward and diffs use) agrees with canonical equality."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scaleenv._model.state import canonical, diff_states, same

scalars = (st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.0, -0.0, 1.0, 2.5, 0.1 + 0.2, 0.3, 25.0])
           | st.sampled_from(["", "a", "b"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(a=json_values, b=json_values)
def test_same_is_canonical_equality(a: Any, b: Any) -> None:
    assert same(a, b) == (canonical(a) == canonical(b))


@settings(max_examples=200, deadline=None)
@given(a=json_values)
def test_a_value_is_the_same_as_its_canonical_form(a: Any) -> None:
    assert same(a, canonical(a))


def test_diff_names_only_records_that_differ_canonically() -> None:
    expected = {"t": {"k1": {"n": 25, "s": "x"}, "k2": {"v": 0.3}}, "u": {"a": {"z": 1}}}
    actual = {"t": {"k1": {"s": "x", "n": 25.0}, "k2": {"v": 0.1 + 0.2}}, "u": {"a": {"z": 2}}}
    assert diff_states(expected, actual) == ["u[a].z: expected 1, got 2"]
