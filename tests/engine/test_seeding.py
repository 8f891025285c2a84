"""Seeds are a fixed function of (run seed, names): recorded runs depend on every value."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from scaleenv.seeding import derive_seed, rng_for


def test_known_values() -> None:
    """Values the first release computed (every recorded log's seeds depend on them)."""
    assert derive_seed(11, "episode/d00/t000/g1", 5) == 7448723428900940644
    assert derive_seed(0) == 4761921975702974394
    assert derive_seed(-3, "a", 1.5, None) == 3224045315084073618


@given(st.integers(), st.lists(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.none()), max_size=4))
def test_the_definition(run_seed: int, parts: list[object]) -> None:
    h = hashlib.blake2b(digest_size=8)
    h.update(str(run_seed).encode())
    for p in parts:
        h.update(b"\x1f" + str(p).encode())
    assert derive_seed(run_seed, *parts) == int.from_bytes(h.digest(), "big") >> 1
    assert rng_for(run_seed, *parts).random() == rng_for(run_seed, *parts).random()
