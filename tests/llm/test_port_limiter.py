"""The port's per-backend concurrency bound: never more calls in the backend than tokens,
and a call cancelled while it waits for a token (or inside the backend) gives none away."""

from __future__ import annotations

from typing import Any

import trio

from scaleenv._agents.llm.port import Completion, Llm, LlmRequest
from scaleenv._store import Stream

from .structs import Pair


class Slow:
    name = "slow"
    model = "slow-1"

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            await trio.sleep(0.01)
        finally:
            self.inside -= 1
        return Completion(text='{"label": "a", "count": 1}')

    async def aclose(self) -> None:
        return None


def _req() -> LlmRequest:
    return LlmRequest(role="r", messages=[{"role": "user", "content": "count"}], context={})


async def test_calls_in_the_backend_never_exceed_the_tokens(writer) -> None:
    backend = Slow()
    llm = Llm(backend, run_seed=1, limiter=trio.CapacityLimiter(3))
    async with trio.open_nursery() as n:
        for i in range(12):
            n.start_soon(llm.generate, Stream(writer, f"s/{i}"), _req(), Pair)
    assert backend.most == 3
    assert llm.limiter.borrowed_tokens == 0


class Stuck(Slow):
    """A backend whose calls wait until cancelled; ``entered`` is set once one is inside."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = trio.Event()

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        self.inside += 1
        self.entered.set()
        try:
            await trio.sleep_forever()
        finally:
            self.inside -= 1
        raise AssertionError("unreachable")


async def test_a_cancelled_call_gives_its_token_back(writer) -> None:
    backend = Stuck()
    llm = Llm(backend, run_seed=1, limiter=trio.CapacityLimiter(1))
    async with trio.open_nursery() as n:
        for i in range(4):
            n.start_soon(llm.generate, Stream(writer, f"c/{i}"), _req(), Pair)
        await backend.entered.wait()  # one call inside the backend, the others waiting for the token
        assert backend.inside == 1 and llm.limiter.borrowed_tokens == 1
        n.cancel_scope.cancel()
    assert llm.limiter.borrowed_tokens == 0 and backend.inside == 0
    llm.backend = Slow()
    await llm.generate(Stream(writer, "after"), _req(), Pair)  # the token is free again
