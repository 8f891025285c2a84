"""The OpenAI-protocol client against a scripted server on a loopback socket: keep-alive,
framing, and every failure the issue names (429 with and without Retry-After, 500, a
reset connection, a slow body, malformed JSON, a truncated stream), with the retry rule
(safe failures retried, ones the server may have acted on once and loudly) and
cancellation closing the connection."""

from __future__ import annotations

import select
import time
from email.utils import formatdate
from typing import Any

import pytest
import logging
import trio

from scaleenv._agents.llm.errors import BackendError
from scaleenv._agents.llm.openai_client import OpenAIClient
from scaleenv._agents.llm.retry import RetryPolicy

from .scripted_server import (
    ScriptedServer,
    chunked,
    completion,
    events,
    hang_up,
    reply,
    reset,
    response_bytes,
    stall,
    trickle,
)

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


class Waits:
    """The client's clock for retries: notes each wait instead of sleeping it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await trio.lowlevel.checkpoint()


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(record.msg if isinstance(record.msg, dict) else {"event": record.getMessage()})


@pytest.fixture
def warned() -> Any:
    """The client's warnings (retries), as event dicts."""
    logger = logging.getLogger("scaleenv.llm.http")
    handler, level = _Warnings(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield handler.events
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
async def server(nursery: trio.Nursery) -> ScriptedServer:
    return await ScriptedServer().start(nursery)


def client(server: ScriptedServer, waits: Waits | None = None, **kw: Any) -> OpenAIClient:
    policy = RetryPolicy(**{k: kw.pop(k) for k in list(kw) if k in ("retries", "unsafe_retries", "base_s", "max_s",
                                                                       "retry_after_max_s")})
    return OpenAIClient(server.url, policy=policy, sleep=waits or Waits(), **kw)


async def test_keep_alive_reuses_one_connection_and_sends_the_request(server: ScriptedServer) -> None:
    c = client(server, api_key="sk-test")
    for i in range(5):
        got = await c.chat(BODY, b"x-scaleenv-role: user\r\n")
        assert got.choices[0].message.content == "hello" and got.usage.completion_tokens == 2
    await c.aclose()
    assert server.connections == 1 and len(server.received) == 5
    first = server.received[0]
    assert first.head.startswith("POST /v1/chat/completions HTTP/1.1")
    assert first.header("authorization") == "Bearer sk-test" and first.header("x-scaleenv-role") == "user"
    assert first.header("content-type") == "application/json" and first.body == BODY


async def test_chunked_and_slow_bodies_are_read_whole(server: ScriptedServer) -> None:
    body = completion("x" * 5000)
    server.script = [chunked(body, pieces=7), trickle(body, pieces=5, pause_s=0.05)]
    c = client(server)
    for _ in range(2):
        got = await c.chat(BODY)
        assert got.choices[0].message.content == "x" * 5000
    await c.aclose()
    assert server.connections == 1  # both framings leave the connection reusable


async def test_429_with_retry_after_waits_what_the_server_asks(server: ScriptedServer) -> None:
    waits = Waits()
    server.script = [reply(429, {"error": {"message": "slow down"}}, [("retry-after", "7")])]
    c = client(server, waits)
    got = await c.chat(BODY)
    await c.aclose()
    assert got.choices[0].message.content == "hello"
    assert len(waits.waits) == 1 and 7.0 <= waits.waits[0] <= 7.7
    assert len(server.received) == 2


async def test_retry_after_as_an_http_date(server: ScriptedServer) -> None:
    waits = Waits()
    server.script = [reply(503, {"error": {"message": "busy"}}, [("retry-after", formatdate(time.time() + 30, usegmt=True))])]
    c = client(server, waits)
    await c.chat(BODY)
    await c.aclose()
    assert len(waits.waits) == 1 and 20 <= waits.waits[0] <= 34


async def test_429_without_retry_after_backs_off_with_jitter(server: ScriptedServer) -> None:
    waits = Waits()
    server.script = [reply(429, {"error": {"message": "rate"}}) for _ in range(3)]
    c = client(server, waits, base_s=0.5, max_s=8.0)
    await c.chat(BODY)
    await c.aclose()
    caps = [0.5, 1.0, 2.0]
    assert len(waits.waits) == 3
    assert all(cap / 2 <= w <= cap for w, cap in zip(waits.waits, caps))


async def test_retry_after_longer_than_the_client_waits_fails_at_once(server: ScriptedServer) -> None:
    server.script = [reply(429, {"error": {"message": "come back tomorrow"}}, [("retry-after", "86400")])]
    c = client(server)
    with pytest.raises(BackendError) as info:
        await c.chat(BODY)
    await c.aclose()
    err = info.value
    assert err.status == 429 and err.attempts == 1 and err.kind == "status"
    assert "come back tomorrow" in str(err) and "86400 s" in str(err) and server.url in str(err)


async def test_safe_failures_are_retried_to_the_limit(server: ScriptedServer) -> None:
    server.script = [reply(503, {"error": {"message": "overloaded"}}) for _ in range(10)]
    c = client(server, retries=3)
    with pytest.raises(BackendError) as info:
        await c.chat(BODY)
    await c.aclose()
    assert info.value.attempts == 4 and info.value.status == 503 and info.value.retryable
    assert len(server.received) == 4


async def test_500_is_retried_once_loudly_then_raised(server: ScriptedServer, warned: list[dict[str, Any]]) -> None:
    server.script = [reply(500, {"error": {"message": "boom"}}), reply(500, {"error": {"message": "boom again"}})]
    c = client(server)
    with pytest.raises(BackendError) as info:
        await c.chat(BODY)
    await c.aclose()
    assert info.value.status == 500 and info.value.attempts == 2 and "boom again" in str(info.value)
    assert len(server.received) == 2  # never a third time
    warnings = warned
    assert len(warnings) == 1 and warnings[0]["may_have_been_processed"] is True and warnings[0]["status"] == 500


async def test_one_500_then_an_answer(server: ScriptedServer) -> None:
    server.script = [reply(500, b"Internal Server Error")]
    c = client(server)
    got = await c.chat(BODY)
    await c.aclose()
    assert got.choices[0].message.content == "hello" and len(server.received) == 2


@pytest.mark.parametrize(("status", "body", "says"), [
    (400, {"error": {"message": "messages[0] is missing content", "type": "invalid_request_error"}}, "missing content"),
    (404, {"object": "error", "message": "The model `x` does not exist.", "code": 404}, "does not exist"),  # vLLM's older shape
    (422, {"detail": [{"loc": ["body", "seed"], "msg": "not an int"}]}, "not an int"),  # FastAPI's
    (401, b"unauthorized", "unauthorized"),
])
async def test_client_errors_are_not_retried(server: ScriptedServer, status: int, body: Any, says: str) -> None:
    server.script = [reply(status, body)]
    c = client(server)
    with pytest.raises(BackendError) as info:
        await c.chat(BODY)
    await c.aclose()
    assert info.value.status == status and info.value.attempts == 1 and not info.value.retryable
    assert says in str(info.value) and len(server.received) == 1


@pytest.mark.parametrize("action", [
    reset(),  # RST right after the request
    reset(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{\"choi"),  # RST in the middle of the body
    hang_up(),  # EOF instead of a response
])
async def test_lost_connections_are_retried_once(server: ScriptedServer, action: Any,
                                                 warned: list[dict[str, Any]]) -> None:
    server.script = [action]
    c = client(server)
    got = await c.chat(BODY)
    await c.aclose()
    assert got.choices[0].message.content == "hello"
    assert [e["kind"] for e in warned] == ["reset"]
    assert server.connections == 2


async def test_two_lost_connections_raise(server: ScriptedServer) -> None:
    server.script = [reset(), reset()]
    c = client(server)
    with pytest.raises(BackendError) as info:
        await c.chat(BODY)
    await c.aclose()
    assert info.value.kind == "reset" and info.value.attempts == 2 and len(server.received) == 2


@pytest.mark.parametrize(("body", "why"), [
    (b"{not json", "not a chat completion"),
    ({"choices": "none"}, "not a chat completion"),
    ({"choices": [{"message": {"content": 5}}]}, "not a chat completion"),
])
async def test_malformed_bodies(server: ScriptedServer, body: Any, why: str) -> None:
    server.script = [reply(200, body), reply(200, body)]
    c = client(server)
    with pytest.raises(BackendError) as info:
        await c.chat(BODY)
    await c.aclose()
    assert info.value.kind == "malformed" and why in str(info.value) and info.value.attempts == 2


async def test_not_http_is_a_protocol_error(server: ScriptedServer) -> None:
    async def garbage(stream: trio.SocketStream) -> bool:
        await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        return False

    server.script = [garbage, garbage]
    c = client(server)
    with pytest.raises(BackendError) as info:
        await c.chat(BODY)
    await c.aclose()
    assert info.value.kind == "protocol" and "status line" in str(info.value)


async def test_a_stalled_body_times_out_and_the_client_closes_the_connection(server: ScriptedServer) -> None:
    server.script = [stall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"ch")]
    c = client(server, timeout_s=1.0, unsafe_retries=0)
    with pytest.raises(BackendError) as info:
        await c.chat(BODY)
    assert info.value.kind == "timeout" and info.value.attempts == 1
    await server.client_gone.wait()
    assert server.closed_by_client == [1] and c.pool.open_connections == 0
    got = await c.chat(BODY)  # and the pool goes on, on a new connection
    await c.aclose()
    assert got.choices[0].message.content == "hello" and server.connections == 2


async def test_cancellation_closes_the_connection_cleanly(server: ScriptedServer) -> None:
    server.script = [stall()]
    c = client(server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(c.chat, BODY)
        await server.got_request.wait()
        nursery.cancel_scope.cancel()
    await server.client_gone.wait()
    assert server.closed_by_client == [1] and c.pool.open_connections == 0 and c.pool.idle_connections == 0
    got = await c.chat(BODY)
    await c.aclose()
    assert got.choices[0].message.content == "hello" and server.connections == 2


async def test_connection_close_is_honoured(server: ScriptedServer, warned: list[dict[str, Any]]) -> None:
    server.script = [reply(close=True), reply(close=True)]
    c = client(server)
    for _ in range(3):
        await c.chat(BODY)
    await c.aclose()
    assert server.connections == 3 and not warned


async def _answer_then_close(stream: trio.SocketStream) -> bool:
    await stream.send_all(response_bytes(200, completion()))  # keep-alive by default, yet...
    await stream.aclose()  # ...closed at once, as a server's idle timeout would later
    return False


async def _until_closed_by_server(c: OpenAIClient) -> None:
    """Until the FIN of the pooled connection's server has arrived (loopback: at once)."""
    idle = c.pool._idle  # noqa: SLF001 - what sits in the pool is what these tests are about
    while not select.select([idle[-1].fd], [], [], 0)[0]:
        await trio.sleep(0.001)


async def test_a_connection_the_server_closed_while_idle_is_not_used(server: ScriptedServer,
                                                                      warned: list[dict[str, Any]]) -> None:
    server.script = [_answer_then_close]
    c = client(server)
    c.pool.idle_check_s = 0.0  # check every pooled connection before use
    await c.chat(BODY)
    await _until_closed_by_server(c)
    await c.chat(BODY)
    await c.aclose()
    assert server.connections == 2 and not warned


async def test_a_dead_pooled_connection_used_anyway_costs_one_loud_retry(server: ScriptedServer,
                                                                          warned: list[dict[str, Any]]) -> None:
    server.script = [_answer_then_close]
    c = client(server)
    c.pool.idle_check_s = 3600.0  # never check: the request goes out on the dead connection
    await c.chat(BODY)
    await _until_closed_by_server(c)
    got = await c.chat(BODY)
    await c.aclose()
    assert got.choices[0].message.content == "hello" and server.connections == 2
    assert [(e["kind"], e["may_have_been_processed"]) for e in warned] == [("reset", True)]


async def test_pool_bound(server: ScriptedServer) -> None:
    peak = 0
    inside = 0

    async def slow(stream: trio.SocketStream) -> bool:
        nonlocal peak, inside
        inside += 1
        peak = max(peak, inside)
        await trio.sleep(0.05)
        inside -= 1
        await stream.send_all(response_bytes(200, completion()))
        return True

    server.script = [slow for _ in range(8)]
    c = client(server, max_connections=2)
    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(c.chat, BODY)
    await c.aclose()
    assert peak <= 2 and server.connections == 2 and len(server.received) == 8


def chunk(content: str | None = None, *, tool: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, int] | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if tool is not None:
        delta["tool_calls"] = [tool]
    out: dict[str, Any] = {"id": "c1", "model": "m", "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        out["usage"] = usage
    return out


STREAM = [chunk(""), chunk('{"a": '), chunk("1}"),
          chunk(tool={"index": 0, "id": "call_0", "type": "function", "function": {"name": "f", "arguments": ""}}),
          chunk(tool={"index": 0, "function": {"arguments": '{"x":'}}),
          chunk(tool={"index": 0, "function": {"arguments": " 2}"}}), chunk(finish="tool_calls"),
          chunk(usage={"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10})]


async def test_stream_chunks_as_they_come_and_folded(server: ScriptedServer) -> None:
    server.script = [events(STREAM), events(STREAM)]
    c = client(server)
    async with c.chat_stream(BODY) as chunks:
        got = [ch async for ch in chunks]
    assert len(got) == len(STREAM) and got[1].choices[0].delta.content == '{"a": '
    seen: list[Any] = []
    folded = await c.chat_folded(BODY, on_chunk=seen.append)
    await c.aclose()
    assert len(seen) == len(STREAM)
    message = folded.choices[0].message
    assert message.content == '{"a": 1}' and folded.choices[0].finish_reason == "tool_calls"
    assert [(t.id, t.function.name, t.function.arguments) for t in message.tool_calls] == [("call_0", "f", '{"x": 2}')]
    assert folded.usage.total_tokens == 10
    assert server.connections == 1  # both streams were read to their end: the connection was reused


async def test_a_truncated_stream_is_an_error(server: ScriptedServer) -> None:
    server.script = [events(STREAM[:3], done=False), events(STREAM[:3], done=False), events(STREAM[:3], done=False)]
    c = client(server)
    got: list[Any] = []
    with pytest.raises(BackendError) as info:
        async with c.chat_stream(BODY) as chunks:
            async for ch in chunks:
                got.append(ch)
    assert info.value.kind == "truncated" and "cut short" in str(info.value) and len(got) == 3
    with pytest.raises(BackendError) as info:
        await c.chat_folded(BODY)  # folded: retried once (the server may have acted), then raised
    await c.aclose()
    assert info.value.kind == "truncated" and info.value.attempts == 2


async def test_an_error_event_in_a_stream(server: ScriptedServer) -> None:
    error = {"error": {"message": "engine crashed", "type": "InternalServerError", "code": 500}}
    server.script = [events([STREAM[0], error])]
    c = client(server, unsafe_retries=0)
    with pytest.raises(BackendError) as info:
        await c.chat_folded(BODY)
    await c.aclose()
    assert info.value.kind == "stream" and "engine crashed" in str(info.value)


async def test_a_refused_connection_is_retried_to_the_limit() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()  # nobody listens there now
    url = f"http://127.0.0.1:{port}/v1"
    waits = Waits()
    c = OpenAIClient(url, policy=RetryPolicy(retries=2), sleep=waits)
    with pytest.raises(BackendError) as info:
        await c.chat(BODY)
    await c.aclose()
    assert info.value.kind == "connect" and info.value.attempts == 3 and info.value.retryable
    assert url in str(info.value) and len(waits.waits) == 2


async def test_leaving_a_stream_early_closes_its_connection(server: ScriptedServer) -> None:
    server.script = [events(STREAM)]
    c = client(server)
    async with c.chat_stream(BODY) as chunks:
        async for ch in chunks:
            if ch.choices and ch.choices[0].delta.content:
                break  # enough: the rest of the stream is not wanted
    await server.client_gone.wait()
    assert server.closed_by_client == [1] and c.pool.open_connections == 0
    got = await c.chat(BODY)
    await c.aclose()
    assert got.choices[0].message.content == "hello" and server.connections == 2


def test_bad_urls_and_keys_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="is not an http"):
        OpenAIClient("ftp://example.com/v1")
    with pytest.raises(ValueError, match="API key"):
        OpenAIClient("http://127.0.0.1:8000/v1", api_key="sk-1\r\nx-injected: 1")
    ipv6 = OpenAIClient("http://[::1]:8000/v1")
    assert ipv6.pool.host == "::1" and ipv6.pool.port == 8000
