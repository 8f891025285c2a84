"""Frames reach a worker whole and in order, also when the pipe fills up.

Requests are written to the worker's pipe at once when nothing is queued before them and
handed to the writer task otherwise; frames larger than a pipe buffer (64 KiB on Linux)
sent from many tasks at once exercise both paths and every hand-over between them.
"""

from __future__ import annotations

import trio

from scaleenv._sandbox import Limits, SandboxPool
from tests.sandbox.domain import TOOLS, make_state


async def test_large_frames_from_many_tasks_arrive_whole_and_in_order() -> None:
    async with SandboxPool(workers=1, limits=Limits(timeout_s=30)) as pool:
        results: dict[int, object] = {}

        async def one(i: int) -> None:
            state = make_state()
            state["notes"] = {"big": {"text": f"{i}:" + "x" * (100_000 + 997 * i)}}  # > a pipe buffer
            await pool.open_session(f"s{i}", TOOLS, state)
            out = await pool.call(f"s{i}", "cancel_order", {"order_id": "o1", "reason": f"r{i}"})
            got = await pool.get_state(f"s{i}")
            results[i] = (out.ok, got["orders"]["o1"]["reason"], got["notes"]["big"]["text"].split(":")[0])

        async with trio.open_nursery() as nursery:
            for i in range(60):
                nursery.start_soon(one, i)
        assert results == {i: (True, f"r{i}", str(i)) for i in range(60)}
