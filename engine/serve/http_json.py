"""A small HTTP/1.1 JSON server on trio sockets, built on h11 (sans-IO HTTP parsing).

One job: accept connections, parse requests with h11 (keep-alive, Content-Length and
chunked bodies, pipelining handled by h11's state machine), hand ``(method, path, body)``
to an async handler and write its ``(status, JSON object)`` back. Errors the handler
raises as :class:`HttpError` become JSON error bodies in OpenAI's shape
``{"error": {"message", "type", "code"}}``; anything else becomes a 500 with the same
shape and is logged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio
from scaleenv.logs import get_logger

log = get_logger("scaleenv.llm.http")

MAX_BODY = 64 << 20
RECEIVE_SIZE = 65536
SERVER = b"scaleenv-sim"

Handler = Callable[[str, str, bytes, dict[str, str]], Awaitable[tuple[int, Any]]]
"""``(method, path, body, headers) -> (status, JSON payload)``; header names are lower case."""


class HttpError(Exception):
    """A client error with a clear message (status 4xx) or a deliberate server error."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": status}}


async def _send(stream: trio.SocketStream, conn: h11.Connection, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"server", SERVER),
    ]
    out = conn.send(h11.Response(status_code=status, headers=headers))
    out += conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage())
    await stream.send_all(out)


async def _next_event(stream: trio.SocketStream, conn: h11.Connection) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await stream.receive_some(RECEIVE_SIZE)
        conn.receive_data(data)  # b"" signals EOF to h11


async def _read_request(stream: trio.SocketStream, conn: h11.Connection) -> tuple[str, str, bytes, dict[str, str]] | None:
    event = await _next_event(stream, conn)
    if isinstance(event, h11.ConnectionClosed):
        return None
    if not isinstance(event, h11.Request):
        raise HttpError(400, f"expected a request, got {type(event).__name__}")
    body = bytearray()
    while True:
        part = await _next_event(stream, conn)
        if isinstance(part, h11.Data):
            body += part.data
            if len(body) > MAX_BODY:
                raise HttpError(413, f"request body larger than {MAX_BODY} bytes")
        elif isinstance(part, h11.EndOfMessage):
            break
        elif isinstance(part, h11.ConnectionClosed):
            return None
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers}
    return event.method.decode(), event.target.decode().split("?", 1)[0], bytes(body), headers


async def _connection(stream: trio.SocketStream, handler: Handler) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            try:
                request = await _read_request(stream, conn)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await _send(stream, conn, 400, error_body(400, f"bad HTTP request: {exc}", "invalid_request_error"))
                return
            except HttpError as exc:
                await _send(stream, conn, exc.status, error_body(exc.status, exc.message, exc.kind))
                return
            if request is None:
                return
            method, path, body, headers = request
            try:
                status, payload = await handler(method, path, body, headers)
            except HttpError as exc:
                status, payload = exc.status, error_body(exc.status, exc.message, exc.kind)
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
                log.exception("handler failed", method=method, path=path)
                status, payload = 500, error_body(500, f"internal error: {type(exc).__name__}: {exc}", "server_error")
            await _send(stream, conn, status, payload)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    finally:
        await stream.aclose()


async def serve_json(handler: Handler, host: str, port: int, *,
                     task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``handler`` on ``host:port`` until cancelled; ``task_status.started(bound_port)``."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    log.info("listening", host=host, port=bound)

    async def _handle(stream: trio.SocketStream) -> None:
        await _connection(stream, handler)

    async with trio.open_nursery() as nursery:
        task_status.started(bound)
        await trio.serve_listeners(_handle, listeners, handler_nursery=nursery)
