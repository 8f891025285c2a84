"""Cycle-collector settings for the engine's busy phases (the log writer, runs).

CPython runs a generation-0 collection every 700 net container allocations, and the
engine allocates a great many short-lived containers (events, messages, dicts of tool
arguments) while holding a large live heap (the projection, a thousand episode tasks).
Measured on the rollout bench's engine-only setting (1,000 episodes in flight), the
default thresholds spent ~30% of the rollout time in the collector. A generation-0
threshold of 20,000, with the projection frozen during rollouts (:func:`frozen_heap`),
leaves ~5-9%; 50,000 left ~3-5% but held ~45 MB more garbage at peak (cycles wait
longer), so 20,000 it is (`python bench/rollout.py --quick`, rows "1000 True", and the
memory columns).

Nothing in the engine relies on prompt cycle collection (records and events are acyclic,
episode state is dropped when its task ends), so collecting less often changes memory only
by the garbage that waits a little longer; the soak test keeps memory flat.

:func:`engine_gc` is a context manager: the old thresholds come back on exit, so a
process embedding the engine (a trainer) gets its own settings back. ``Log.writer()``
and the runs (``open_run``, ``open_verify``) hold it while they are open. On the log's
append bench the same setting took the writer from ~250k to ~300k events/s
(`python bench/log_append.py`, which runs every contender under this setting).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

ENGINE_GEN0_THRESHOLD = 20_000
"""Net container allocations between generation-0 collections while the engine runs."""


_holders = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def engine_gc(gen0_threshold: int = ENGINE_GEN0_THRESHOLD) -> Iterator[None]:
    """Collect cycles less often inside the block; restore the previous thresholds after.

    Only ever raises generation 0's threshold (a process already tuned higher keeps its
    own setting); generations 1 and 2 keep their values. Blocks may overlap in any order
    (two logs' writers in one process): the thresholds in force before the first block
    come back when the last one exits.
    """
    global _holders, _saved
    if _holders == 0:
        _saved = gc.get_threshold()
    _holders += 1
    current = gc.get_threshold()
    if gen0_threshold > current[0]:
        gc.set_threshold(gen0_threshold, *current[1:])
    try:
        yield
    finally:
        _holders -= 1
        if _holders == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the collector off everything alive now, for the block.

    For a long busy phase that starts right after a big load (rollouts after the
    projection of the log): the loaded objects live throughout, yet sit in the young
    generations, and the first generation-1 collection in the busy phase traversed them
    all (~0.2 s mid-run on the rollout bench). ``gc.freeze()`` moves them to a permanent
    generation without traversing anything; on exit they go back to the oldest one.
    Garbage already waiting is parked with them until then (bounded: what the load left).
    Nested use, or a process that froze objects itself, is left alone (``gc.unfreeze``
    would also release what the process froze).
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
