"""A scripted HTTP/1.1 server on a loopback socket: real bytes, real resets, real stalls.

Each request it reads is answered by the next scripted action (a valid completion once
the script is used up). It records what it received and, per connection, whether the
client closed it, so tests can check what a client did on the wire. Actions:

- :func:`reply` a status, headers and a body (``Content-Length``; ``close`` closes after);
- :func:`chunked` the same body in chunked transfer encoding (with a trailer);
- :func:`reset` send some bytes (maybe none), then reset the connection (RST);
- :func:`hang_up` close the connection without answering (EOF);
- :func:`stall` send some bytes, then send nothing more until the client goes away;
- :func:`trickle` the response in pieces with pauses;
- :func:`events` a server-sent-event stream (``done=False``: cut short, no ``[DONE]``).
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

Action = Callable[[trio.SocketStream], Awaitable[bool]]
"""Answers one request on the stream; returns whether the connection stays open."""


def completion(content: str | None = "hello", *, tool_calls: list[dict[str, Any]] | None = None,
               usage: tuple[int, int] = (3, 2), **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", **extra}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}}


def _bytes(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def response_bytes(status: int, body: Any, headers: list[tuple[str, str]] = (), *, close: bool = False) -> bytes:
    data = _bytes(body)
    lines = [f"HTTP/1.1 {status} X", "content-type: application/json", f"content-length: {len(data)}",
             *(f"{k}: {v}" for k, v in headers)]
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def reply(status: int = 200, body: Any = None, headers: list[tuple[str, str]] = (), *, close: bool = False) -> Action:
    async def act(stream: trio.SocketStream) -> bool:
        await stream.send_all(response_bytes(status, completion() if body is None else body, headers, close=close))
        return not close

    return act


def chunked(body: Any, pieces: int = 3) -> Action:
    async def act(stream: trio.SocketStream) -> bool:
        data = _bytes(body)
        step = max(1, len(data) // pieces)
        out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        for i in range(0, len(data), step):
            part = data[i:i + step]
            out += b"%x;ext=1\r\n%s\r\n" % (len(part), part)
        out += b"0\r\nx-trailer: yes\r\n\r\n"
        await stream.send_all(out)
        return True

    return act


def _rst(stream: trio.SocketStream) -> None:
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


def reset(partial: bytes = b"") -> Action:
    async def act(stream: trio.SocketStream) -> bool:
        if partial:
            await stream.send_all(partial)
        _rst(stream)
        return False

    return act


def hang_up() -> Action:
    async def act(stream: trio.SocketStream) -> bool:
        await stream.aclose()
        return False

    return act


def stall(partial: bytes = b"") -> Action:
    async def act(stream: trio.SocketStream) -> bool:
        if partial:
            await stream.send_all(partial)
        return False  # the handler then waits for the client to close

    act.stalls = True  # type: ignore[attr-defined]
    return act


def trickle(body: Any, pieces: int, pause_s: float) -> Action:
    async def act(stream: trio.SocketStream) -> bool:
        data = response_bytes(200, body)
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            await stream.send_all(data[i:i + step])
            await trio.sleep(pause_s)
        return True

    return act


def events(chunks: list[Any], *, done: bool = True, status: int = 200) -> Action:
    async def act(stream: trio.SocketStream) -> bool:
        head = (f"HTTP/1.1 {status} OK\r\ncontent-type: text/event-stream\r\n"
                "transfer-encoding: chunked\r\n\r\n").encode()
        await stream.send_all(head)
        for c in [*chunks, *(["[DONE]"] if done else [])]:
            text = c if isinstance(c, str) else json.dumps(c)
            event = f"data: {text}\r\n\r\n".encode()
            await stream.send_all(b"%x\r\n%s\r\n" % (len(event), event))
        if not done:
            await stream.aclose()
            return False
        await stream.send_all(b"0\r\n\r\n")
        return True

    return act


@attrs.define
class Received:
    connection: int
    head: str
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name:
                return v.strip()
        return None


@attrs.define
class ScriptedServer:
    """Serve ``script`` (one action per request, in order) on a loopback port."""

    script: list[Action] = attrs.field(factory=list)
    received: list[Received] = attrs.field(factory=list)
    connections: int = 0
    closed_by_client: list[int] = attrs.field(factory=list)
    got_request: trio.Event = attrs.field(factory=trio.Event)
    client_gone: trio.Event = attrs.field(factory=trio.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self, nursery: trio.Nursery) -> ScriptedServer:
        listeners = await nursery.start(trio.serve_tcp, self._handle, 0)
        self.port = listeners[0].socket.getsockname()[1]
        return self

    async def _read(self, stream: trio.SocketStream, buf: bytearray) -> tuple[str, bytes] | None:
        while b"\r\n\r\n" not in buf:
            data = await stream.receive_some(65536)
            if not data:
                return None
            buf += data
        end = buf.index(b"\r\n\r\n")
        head = bytes(buf[:end]).decode("latin-1")
        del buf[:end + 4]
        length = 0
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        while len(buf) < length:
            data = await stream.receive_some(65536)
            if not data:
                return None
            buf += data
        body = bytes(buf[:length])
        del buf[:length]
        return head, body

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = self.connections
        buf = bytearray()
        try:
            while True:
                got = await self._read(stream, buf)
                if got is None:
                    self.closed_by_client.append(conn)
                    self.client_gone.set()
                    return
                self.received.append(Received(conn, *got))
                self.got_request.set()
                action = self.script.pop(0) if self.script else reply()
                keep = await action(stream)
                if getattr(action, "stalls", False):
                    while await stream.receive_some(65536):
                        pass
                    self.closed_by_client.append(conn)
                    self.client_gone.set()
                    return
                if not keep:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed_by_client.append(conn)
            self.client_gone.set()
        finally:
            if stream.socket.fileno() != -1:
                await stream.aclose()
