"""outlines + the real openai client, under trio, against the sim server over a loopback socket."""

from __future__ import annotations

import pytest
import trio

from scaleenv.agents.llm.errors import BackendError
from scaleenv.agents.llm.openai_backend import OpenAIBackend
from scaleenv.agents.llm.port import Llm, LlmExhaustedError, LlmRequest, render_messages, schema_for
from scaleenv.agents.sim import SimBackend
from scaleenv.serve.sim_http import SimServer
from scaleenv.store import Log, Stream

from .conftest import llm_calls
from .structs import Pair, Person, Plan


def _request(i: int, role: str = "test/generic") -> LlmRequest:
    ctx = {"item": i, "note": "é ü ✓"}
    return LlmRequest(role=role, messages=render_messages("Describe.", ctx, f"Describe item {i}."),
                      context=ctx, seed=1000 + i, temperature=0.3, max_tokens=256)


@pytest.mark.parametrize("flavor", ["openai", "vllm"])
async def test_same_text_as_in_process_sim(sim_url: str, flavor: str) -> None:
    backend = OpenAIBackend(base_url=sim_url, model="scaleenv-sim-1", flavor=flavor)
    sim = SimBackend()  # default noise: malformed and schema-violating texts go over the wire too
    try:
        for i in range(30):
            for t in (Person, Plan, Pair):
                schema, name = schema_for(t)
                req = _request(i)
                got = await backend.complete(req, schema, name)
                text, prompt_tokens, completion_tokens, _ = sim.answer(req.messages, schema, name, req.seed)
                assert got.text == text
                assert (got.prompt_tokens, got.completion_tokens) == (prompt_tokens, completion_tokens)
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


async def test_concurrent_calls_under_trio(sim_url: str) -> None:
    backend = OpenAIBackend(base_url=sim_url, model="m")
    schema, name = schema_for(Pair)
    sim = SimBackend()
    results: dict[int, str] = {}

    async def one(i: int) -> None:
        results[i] = (await backend.complete(_request(i), schema, name)).text

    async with trio.open_nursery() as n:
        for i in range(40):
            n.start_soon(one, i)
    await backend.aclose()
    assert results == {i: sim.answer(_request(i).messages, schema, name, 1000 + i)[0] for i in range(40)}


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
    assert info.value.retryable and info.value.attempts == 3 and info.value.status is None


async def test_transient_5xx_is_retried(sim_url: str, sim_server: SimServer) -> None:
    sim_server.fail_first = 2
    backend = OpenAIBackend(base_url=sim_url, model="m", retries=3, backoff_s=0.001)
    schema, name = schema_for(Pair)
    got = await backend.complete(_request(0), schema, name)
    await backend.aclose()
    assert got.text == SimBackend().answer(_request(0).messages, schema, name, 1000)[0]
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
