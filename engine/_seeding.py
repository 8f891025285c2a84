"""Deterministic randomness: every stream derives its own seed from (run seed, stream id).

Never a global RNG, never the clock: the same run seed gives the same numbers in each
stream whatever order trio runs the streams in.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(run_seed: int, *parts: object) -> int:
    """A 63-bit seed from the run seed and any path of names/numbers."""
    text = "\x1f".join([str(run_seed), *map(str, parts)])  # one update: the same bytes, hashed at once
    # surrogatepass: any str has bytes (a lone surrogate in a model-made name must not crash a run)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big") >> 1


def rng_for(run_seed: int, *parts: object) -> random.Random:
    return random.Random(derive_seed(run_seed, *parts))
