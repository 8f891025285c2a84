"""The sim's latency model in virtual time (trio's MockClock, autojump): concurrent calls
overlap their sleeps, and each LlmCalled records the latency its answer slept."""

from __future__ import annotations

from typing import Any

import trio

from scaleenv._agents.llm.port import Llm, LlmRequest, render_messages
from scaleenv._agents.sim import NoiseModel, SimBackend
from scaleenv._agents.sim.call import LatencyModel

from .conftest import llm_calls, stream
from .structs import Pair

CALLS = 24


def _request() -> LlmRequest:
    return LlmRequest(role="test/counter", messages=render_messages("Count things.", {"k": 1}, "Count."), context={"k": 1})


async def test_latency_sleeps_overlap_and_are_recorded(autojump_clock: Any, writer: Any, log: Any) -> None:
    latency = LatencyModel(enabled=True, base_s=2.0, per_token_s=0.0, sigma=0.5)
    llm = Llm(SimBackend(noise=NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=0.0), latency=latency), run_seed=11)
    start = trio.current_time()
    done: dict[int, float] = {}

    async def one(i: int) -> None:
        await llm.generate(stream(writer, f"test/s{i}"), _request(), Pair)
        done[i] = trio.current_time() - start

    async with trio.open_nursery() as nursery:
        for i in range(CALLS):
            nursery.start_soon(one, i)
    await writer.aclose()
    slept = [c.latency_s for c in llm_calls(log)]
    assert len(slept) == CALLS and all(s > 0 for s in slept)  # noise off: one attempt each
    # All in flight at once: the last answer comes after the longest sleep, not their sum.
    elapsed = max(done.values())
    assert max(slept) <= elapsed < max(slept) + 1.0 < sum(slept)
    # Log-normal around the median: not all alike, none absurd.
    assert len({round(s, 6) for s in slept}) == CALLS and max(slept) < 2.0 * 10
