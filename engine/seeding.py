"""Deterministic randomness: every stream derives its own seed from (run seed, stream id).

Never a global RNG, never the clock: the same run seed gives the same numbers in each
stream whatever order trio runs the streams in.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(run_seed: int, *parts: object) -> int:
    """A 63-bit seed from the run seed and any path of names/numbers."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(run_seed).encode())
    for part in parts:
        h.update(b"\x1f")
        h.update(str(part).encode())
    return int.from_bytes(h.digest(), "big") >> 1


def rng_for(run_seed: int, *parts: object) -> random.Random:
    return random.Random(derive_seed(run_seed, *parts))
