"""The sim server's HTTP/1.1 handling over a raw loopback socket: keep-alive, JSON errors."""

from __future__ import annotations

import json

import trio



async def _exchange(stream: trio.SocketStream, raw: bytes) -> tuple[int, dict]:
    await stream.send_all(raw)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += await stream.receive_some(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(v) for k, _, v in (ln.partition(": ") for ln in lines[1:]) if k.lower() == "content-length")
    while len(body) < length:
        body += await stream.receive_some(65536)
    return status, json.loads(body[:length])


def _post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def test_keep_alive_routes_and_errors(sim_url: str) -> None:
    port = int(sim_url.rsplit(":", 1)[1].split("/")[0])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        status, body = await _exchange(stream, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200 and body["data"][0]["id"] == "scaleenv-sim-1"
        status, body = await _exchange(stream, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 404 and "no route GET /nope" in body["error"]["message"]
        status, body = await _exchange(stream, _post("/v1/chat/completions", b"{not json"))
        assert status == 400 and "not valid JSON" in body["error"]["message"]
        status, body = await _exchange(stream, _post("/v1/chat/completions", b'{"messages": []}'))
        assert status == 400 and "messages" in body["error"]["message"]
        status, body = await _exchange(stream, _post("/v1/chat/completions", json.dumps({
            "messages": [{"role": "user", "content": "hi"}], "seed": 3,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}},
        }).encode()))
        assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"
        assert body["usage"]["total_tokens"] > 0
        status, _ = await _exchange(stream, b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 405


async def test_bad_http_gets_400(sim_url: str) -> None:
    port = int(sim_url.rsplit(":", 1)[1].split("/")[0])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        status, body = await _exchange(stream, b"NOT HTTP AT ALL\r\n\r\n")
        assert status == 400 and "bad HTTP request" in body["error"]["message"]
