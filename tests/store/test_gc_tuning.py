"""The writer and runs raise the collector's generation-0 threshold and give it back."""

from __future__ import annotations

import gc
from pathlib import Path

from scaleenv._store import Log
from scaleenv._store.gc_tuning import ENGINE_GEN0_THRESHOLD, engine_gc


def test_overlapping_blocks_restore_the_thresholds_in_force_before_the_first() -> None:
    before = gc.get_threshold()
    a, b = engine_gc(), engine_gc(ENGINE_GEN0_THRESHOLD * 2)
    a.__enter__()
    assert gc.get_threshold()[0] == ENGINE_GEN0_THRESHOLD
    b.__enter__()
    assert gc.get_threshold()[0] == ENGINE_GEN0_THRESHOLD * 2
    a.__exit__(None, None, None)  # not LIFO: the other block still holds the setting
    assert gc.get_threshold()[0] == ENGINE_GEN0_THRESHOLD * 2
    b.__exit__(None, None, None)
    assert gc.get_threshold() == before


def test_a_higher_setting_of_the_process_is_kept() -> None:
    before = gc.get_threshold()
    gc.set_threshold(ENGINE_GEN0_THRESHOLD * 5, *before[1:])
    try:
        with engine_gc():
            assert gc.get_threshold()[0] == ENGINE_GEN0_THRESHOLD * 5
        assert gc.get_threshold()[0] == ENGINE_GEN0_THRESHOLD * 5
    finally:
        gc.set_threshold(*before)


async def test_the_log_writer_holds_the_setting_while_it_runs(tmp_path: Path) -> None:
    before = gc.get_threshold()
    with Log.open(tmp_path / "log") as log:
        async with log.writer():
            assert gc.get_threshold()[0] == max(before[0], ENGINE_GEN0_THRESHOLD)
    assert gc.get_threshold() == before
