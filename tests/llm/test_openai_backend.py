"""The openai/vllm backend under trio, against the sim server over a loopback socket."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from scaleenv._agents.llm.errors import BackendError
from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import (Llm, LlmExhaustedError, LlmRequest, render_messages, schema_for,
                                      strict_schema_for, validation_error)
from scaleenv._agents.llm.strict import STRICT_SHAPE
from scaleenv._agents.sim import LatencyModel, NoiseModel, SimBackend
from scaleenv._serve.sim_http import SimServer, serve_sim, strict_answer
from scaleenv._store import Log, Stream

from .conftest import llm_calls
from .structs import Pair, Person, Plan


def _request(i: int, role: str = "test/generic") -> LlmRequest:
    ctx = {"item": i, "note": "é ü ✓"}
    return LlmRequest(role=role, messages=render_messages("Describe.", ctx, f"Describe item {i}."),
                      context=ctx, seed=1000 + i, temperature=0.3, max_tokens=256)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("flavor", ["openai", "vllm"])
async def test_same_text_as_in_process_sim(sim_url: str, flavor: str, stream: bool) -> None:
    backend = OpenAIBackend(base_url=sim_url, model="scaleenv-sim-1", flavor=flavor, stream=stream)
    sim = SimBackend()  # default noise; the constraint holds over the wire as in-process
    try:
        for i in range(30):
            for t in (Person, Plan, Pair):
                schema, name = schema_for(t)
                req = _request(i)
                got = await backend.complete(req, schema, name)
                want = await sim.complete(req, schema, name)
                if flavor == "openai":  # sent the strict schema: the answer comes in its shape
                    assert got.shape == STRICT_SHAPE
                    assert got.text == strict_answer(want.text, strict_schema_for(t))
                    assert validation_error(got.text, t, got.shape) == validation_error(want.text, t)
                else:
                    assert got.shape == "" and got.text == want.text
                assert (got.prompt_tokens, got.completion_tokens) == (want.prompt_tokens, want.completion_tokens)
    finally:
        await backend.aclose()


async def test_port_events_match_in_process_sim(sim_url: str, tmp_path) -> None:
    """The same agent calls through the port record the same outputs over HTTP as in-process."""
    recorded = {}
    for name, backend in (("http", OpenAIBackend(base_url=sim_url, model="scaleenv-sim-1")), ("local", SimBackend())):
        llm = Llm(backend, run_seed=9)
        with Log.open(tmp_path / name, sync=False) as log:
            async with log.writer() as w:
                for i in range(8):
                    try:
                        await llm.generate(Stream(w, f"agent/{i}"), _request(i), Person)
                    except LlmExhaustedError:
                        pass
            recorded[name] = [(c.request_digest, c.raw, c.parsed, c.error, c.attempt, c.prompt_tokens,
                               c.completion_tokens) for c in llm_calls(log)]
        await llm.aclose()
    assert recorded["http"] == recorded["local"]
    assert len(recorded["http"]) >= 8


async def test_unconstrained_server_answers_reach_the_port_retries(nursery: trio.Nursery, tmp_path) -> None:
    """A server that ignores the constraint sends malformed answers; the port retries them as in-process."""
    noise = NoiseModel(malformed=0.3, schema_violation=0.3, mistakes=0.0)
    port = await nursery.start(partial(serve_sim, "127.0.0.1", 0, server=SimServer(sim=SimBackend(noise=noise), constrain=False)))
    recorded = {}
    for name, backend in (("http", OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", model="scaleenv-sim-1")),
                          ("local", SimBackend(noise=noise, constrained=False))):
        llm = Llm(backend, run_seed=4)
        with Log.open(tmp_path / name, sync=False) as log:
            async with log.writer() as w:
                for i in range(10):
                    try:
                        await llm.generate(Stream(w, f"agent/{i}"), _request(i), Pair)
                    except LlmExhaustedError:
                        pass
            recorded[name] = [(c.raw, c.error, c.attempt) for c in llm_calls(log)]
        await llm.aclose()
    assert recorded["http"] == recorded["local"]
    assert sum(error is not None for _, error, _ in recorded["http"]) >= 3


async def test_concurrent_calls_under_trio(sim_url: str) -> None:
    backend = OpenAIBackend(base_url=sim_url, model="m", max_connections=8)
    schema, name = schema_for(Pair)
    sim = SimBackend()
    results: dict[int, str] = {}

    async def one(i: int) -> None:
        results[i] = (await backend.complete(_request(i), schema, name)).text

    async with trio.open_nursery() as n:
        for i in range(40):
            n.start_soon(one, i)
    assert backend.client.pool.open_connections <= 8
    await backend.aclose()
    assert results == {i: (await sim.complete(_request(i), schema, name)).text for i in range(40)}


async def test_connection_refused_is_a_backend_error_with_the_url() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()  # nobody listens there now
    url = f"http://127.0.0.1:{port}/v1"
    backend = OpenAIBackend(base_url=url, model="m", retries=2, backoff_s=0.001)
    schema, name = schema_for(Pair)
    with pytest.raises(BackendError) as info:
        await backend.complete(_request(0), schema, name)
    await backend.aclose()
    assert info.value.url == url and url in str(info.value)
    assert info.value.retryable and info.value.attempts == 3 and info.value.status is None and info.value.kind == "connect"


async def test_transient_5xx_is_retried(sim_url: str, sim_server: SimServer) -> None:
    sim_server.fail_first = 2
    backend = OpenAIBackend(base_url=sim_url, model="m", retries=3, backoff_s=0.001)
    schema, name = schema_for(Pair)
    got = await backend.complete(_request(0), schema, name)
    await backend.aclose()
    assert got.text == (await SimBackend().complete(_request(0), schema, name)).text
    assert sim_server.served == 1 and sim_server.fail_first == 0


async def test_client_error_is_not_retried(sim_url: str, sim_server: SimServer) -> None:
    sim_server.fail_first, sim_server.fail_status = 5, 400
    backend = OpenAIBackend(base_url=sim_url, model="m", retries=3, backoff_s=0.001)
    schema, name = schema_for(Pair)
    with pytest.raises(BackendError) as info:
        await backend.complete(_request(0), schema, name)
    await backend.aclose()
    assert info.value.status == 400 and info.value.attempts == 1 and not info.value.retryable
    assert "injected fault" in str(info.value) and sim_url in str(info.value)
    assert sim_server.fail_first == 4


async def test_cancelled_calls_leave_no_connection_behind(nursery: trio.Nursery) -> None:
    """Calls cancelled while the server sleeps close their connections; the backend goes on."""
    slow = SimServer(sim=SimBackend(latency=LatencyModel(enabled=True, base_s=3600.0, per_token_s=0.0, sigma=0.0)))
    port = await nursery.start(partial(serve_sim, "127.0.0.1", 0, server=slow))
    backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", model="m")
    schema, name = schema_for(Pair)
    async with trio.open_nursery() as n:
        for i in range(5):
            n.start_soon(backend.complete, _request(i), schema, name)
        while backend.client.pool.open_connections < 5:  # all five sent (the server answers in an hour)
            await trio.sleep(0.01)
        n.cancel_scope.cancel()
    assert backend.client.pool.open_connections == 0 and backend.client.pool.idle_connections == 0
    slow.sim = SimBackend()
    got = await backend.complete(_request(0), schema, name)
    await backend.aclose()
    assert got.text == (await SimBackend().complete(_request(0), schema, name)).text
