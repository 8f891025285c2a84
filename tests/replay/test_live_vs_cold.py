"""Property: per-stream digests computed live (from records as appended) equal a cold fold's.

Small sim runs over a couple of seeds and concurrency levels; also the same seed gives
the same digests at any concurrency (the design's promise).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from scaleenv._replay.projection import fold
from scaleenv._config import RunConfig
from scaleenv._runner import EngineOptions, open_run, rollouts, stage1, stage2
from scaleenv._store.log import Log
from scaleenv._store.record import Record, StreamDigest, digest_bytes
from scaleenv._store.writer import Ack, Pending


class TapWriter:
    """The run's real writer, with a digest per stream updated from every append sent to it.

    (Episodes do not wait for each commit, so the tap sits where appends are sent; a
    digest covers neither seq nor wall time, which only the commit assigns.)
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.digests: dict[str, StreamDigest] = {}

    def _tap(self, items: Any) -> None:
        for p in items:
            p = p if isinstance(p, Pending) else Pending(*p)
            self.digests.setdefault(p.stream, StreamDigest()).update_bytes(
                digest_bytes(p.stream, p.n, p.cause, p.actor, p.event))

    async def append(self, items: Any) -> Sequence[Record]:
        self._tap(items)
        return await self.inner.append(items)

    async def submit(self, items: Any, **kw: Any) -> Ack:
        self._tap(items)
        return await self.inner.submit(items, **kw)

    def submit_nowait(self, items: Any, **kw: Any) -> Ack:
        ack = self.inner.submit_nowait(items, **kw)  # may raise WouldBlock: then not sent
        self._tap(items)
        return ack

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _run(path: Path, seed: int, concurrency: int) -> dict[str, str]:
    config = RunConfig(seed=seed, domains=1, tasks_per_domain=2, episodes_per_task=2)
    options = EngineOptions(progress=False, sync=False, concurrency=concurrency, llm_concurrency=concurrency)

    async def main() -> dict[str, str]:
        async with open_run(str(path), config, options) as ctx:
            tap = TapWriter(ctx.writer)
            ctx.writer = tap
            for stage in (stage1, stage2, rollouts):
                await stage(ctx)
            return {s: d.hexdigest() for s, d in tap.digests.items()}

    return trio.run(main)


@pytest.mark.parametrize("seed", [2, 11])
def test_live_digests_equal_cold_fold_at_any_concurrency(seed: int, tmp_path: Path) -> None:
    runs = {}
    for concurrency in (1, 8):
        path = tmp_path / f"c{concurrency}.lmdb"
        live = _run(path, seed, concurrency)
        with Log.open(path, readonly=True) as lg:
            cold = fold(lg.read()).stream_digests()
        assert live and live == cold
        runs[concurrency] = cold
    assert runs[1] == runs[8]
