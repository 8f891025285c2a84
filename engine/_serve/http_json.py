"""A small HTTP/1.1 JSON server on trio sockets, built on h11 (sans-IO HTTP parsing).

One job: accept connections (plain or TLS), parse requests with h11 (keep-alive,
Content-Length and chunked bodies, pipelining and ``Expect: 100-continue`` handled by
h11's state machine), let in only the requests :class:`~scaleenv._serve.auth.Auth` names a
principal for, hand ``(method, path, body, headers)`` to an async handler (with
:func:`scaleenv._serve.auth.principal` set) and write its ``(status, JSON object)`` back, or,
when the handler returns an :class:`EventStream`, its server-sent events as they come
(chunked).

Errors the handler raises as :class:`HttpError` (or
:class:`~scaleenv._serve.limits.LimitExceeded`) become JSON error bodies in OpenAI's shape
``{"error": {"message", "type", "code"}}``; a RecursionError (a parser meeting input
nested as deep as Python goes) is a 400 naming ``max_depth``; anything else becomes a
500 with the same shape and is logged. A body that is not UTF-8 never reaches the
handler (400).

What a client may cost the server is bounded by :class:`~scaleenv._serve.limits.Limits`:
the request head must arrive within ``header_timeout_s`` of the server starting to wait
for it (a connection idle that long is closed; one that sent part of a head gets 408) and
fit in ``max_header_bytes`` (431); a body declared or sent larger than
``max_body_bytes`` gets 413 before it is read, one slower than ``body_timeout_s`` gets
408 (and a client that does not read its answer within that long is dropped). Each
refusal names its limit and closes the connection. A request without a valid
token gets 401 before its body is read, and is logged nowhere.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, NamedTuple

import h11
import msgspec
import trio

from scaleenv._logs import get_logger
from scaleenv._serve.auth import Auth, acting_as, unauthorized_json
from scaleenv._serve.limits import LimitExceeded, Limits, clip, shorten

log = get_logger("scaleenv._serve.http")

MAX_BODY = 64 << 20
"""The default body limit of :func:`serve_json` when no :class:`Limits` is given (sim-server's)."""
RECEIVE_SIZE = 65536
SERVER = b"scaleenv"
CLOSE_TIMEOUT_S = 5.0

Handler = Callable[[str, str, bytes, dict[str, str]], Awaitable[tuple[int, Any]]]
"""``(method, path, body, headers) -> (status, payload)``; header names are lower case.
The payload is anything msgspec encodes as JSON (dicts, Structs) or a :class:`RawBody`."""

_encoder = msgspec.json.Encoder()


class RawBody(NamedTuple):
    """A response body that is not JSON (an HTML page)."""

    content_type: str
    data: bytes


class EventStream:
    """A handler's answer sent as server-sent events (``text/event-stream``, chunked): each
    item of ``events`` (a whole ``data: ...`` event, bytes) is sent as soon as it is made."""

    __slots__ = ("events",)

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        self.events = events


class HttpError(Exception):
    """A client error with a clear message (status 4xx) or a deliberate server error."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": status}}


class _Refused(Exception):
    """Answer with this and close the connection (the request was not read to its end)."""

    def __init__(self, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.payload = payload
        self.headers = headers or []


class _Closed(Exception):
    """The peer went away, or an idle connection timed out: close without answering."""


async def _send(stream: trio.abc.Stream, conn: h11.Connection, status: int, body: Any,
                extra: list[tuple[bytes, bytes]] | None = None, close: bool = False) -> None:
    if isinstance(body, RawBody):
        data, ctype = body.data, body.content_type.encode()
    else:
        data, ctype = _encoder.encode(body), b"application/json"
    headers = [(b"content-type", ctype), (b"content-length", str(len(data)).encode()), (b"server", SERVER), *(extra or [])]
    if close:
        headers.append((b"connection", b"close"))
    out = conn.send(h11.Response(status_code=status, headers=headers))
    out += conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage())  # type: ignore[operator]
    await stream.send_all(out)


async def _send_events(stream: trio.abc.Stream, conn: h11.Connection, status: int, body: EventStream,
                       timeout_s: float) -> bool:
    """Send an event stream; False if the client stopped reading (one send took over ``timeout_s``)."""
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"server", SERVER)]
    async with aclosing(body.events) as events:  # type: ignore[type-var]
        pending = conn.send(h11.Response(status_code=status, headers=headers))
        async for event in events:
            with trio.move_on_after(timeout_s):
                await stream.send_all(pending + conn.send(h11.Data(data=event)))  # type: ignore[operator]
                pending = b""
                continue
            return False
    with trio.move_on_after(timeout_s):
        await stream.send_all(pending + conn.send(h11.EndOfMessage()))  # type: ignore[operator]
        return True
    return False


async def _next_event(stream: trio.abc.Stream, conn: h11.Connection) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await stream.receive_some(RECEIVE_SIZE)
        conn.receive_data(data)  # b"" signals EOF to h11


async def _read_head(stream: trio.abc.Stream, conn: h11.Connection, limits: Limits) -> h11.Request:
    with trio.move_on_after(limits.header_timeout_s):
        try:
            event = await _next_event(stream, conn)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if status == 431:
                raise _Refused(431, LimitExceeded(431, "max_header_bytes", f"request line and headers are larger than "
                                                  f"max_header_bytes={limits.max_header_bytes}").to_json()) from None
            raise _Refused(400, error_body(400, f"bad HTTP request: {exc}", "invalid_request_error")) from None
        if isinstance(event, h11.ConnectionClosed):
            raise _Closed
        if not isinstance(event, h11.Request):
            raise _Refused(400, error_body(400, f"expected a request, got {type(event).__name__}", "invalid_request_error"))
        # h11 bounds a head that arrives in pieces; one that arrives whole is measured here
        size = len(event.method) + len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers) + 12
        if size > limits.max_header_bytes:
            raise _Refused(431, LimitExceeded(431, "max_header_bytes", f"request line and headers are larger than "
                                              f"max_header_bytes={limits.max_header_bytes}").to_json())
        return event
    if conn.trailing_data[0]:  # part of a request arrived
        raise _Refused(408, LimitExceeded(408, "header_timeout_s", f"the request head did not arrive within "
                                          f"header_timeout_s={limits.header_timeout_s:g}").to_json())
    raise _Closed  # idle keep-alive connection


async def _read_body(stream: trio.abc.Stream, conn: h11.Connection, request: h11.Request, limits: Limits) -> bytes:
    declared = next((v for k, v in request.headers if k == b"content-length"), None)
    too_big = LimitExceeded(413, "max_body_bytes", f"request body is larger than max_body_bytes={limits.max_body_bytes}")
    if declared is not None and int(declared) > limits.max_body_bytes:
        raise _Refused(413, too_big.to_json())
    body = bytearray()
    with trio.move_on_after(limits.body_timeout_s):
        if conn.they_are_waiting_for_100_continue:
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))  # type: ignore[arg-type]
        while True:
            try:
                part = await _next_event(stream, conn)
            except h11.RemoteProtocolError as exc:
                raise _Refused(400, error_body(400, f"bad HTTP request body: {exc}", "invalid_request_error")) from None
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > limits.max_body_bytes:
                    raise _Refused(413, too_big.to_json())
            elif isinstance(part, h11.EndOfMessage):
                return bytes(body)
            elif isinstance(part, h11.ConnectionClosed):
                raise _Closed
    raise _Refused(408, LimitExceeded(408, "body_timeout_s", f"the request body did not arrive within "
                                      f"body_timeout_s={limits.body_timeout_s:g}").to_json())


async def _connection(stream: trio.abc.Stream, handler: Handler, auth: Auth, limits: Limits,
                      public_paths: frozenset[str]) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
    try:
        while True:
            try:
                request = await _read_head(stream, conn, limits)
                headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in request.headers}
                try:
                    target = request.target.decode("ascii")
                except UnicodeDecodeError:
                    raise _Refused(400, error_body(400, "the request target is not ASCII (percent-encode it)",
                                                   "invalid_request_error")) from None
                method, path = request.method.decode("ascii", "replace"), target.split("?", 1)[0]
                who = auth.authenticate(headers.get("authorization"))
                if who is None and not (method == "GET" and path in public_paths):
                    # recorded nowhere: no log line, no event
                    raise _Refused(401, unauthorized_json(), [(b"www-authenticate", b'Bearer realm="scaleenv"')])
                body = await _read_body(stream, conn, request, limits)
                try:
                    body.decode("utf-8")  # JSON is UTF-8 (RFC 8259): refused here for every handler
                except UnicodeDecodeError as exc:
                    raise _Refused(400, error_body(400, f"request body is not UTF-8 (byte {exc.start})",
                                                   "invalid_request_error")) from None
            except _Refused as refused:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await _send(stream, conn, refused.status, refused.payload, refused.headers, close=True)
                return
            except _Closed:
                return
            try:
                with acting_as(who):
                    status, payload = await handler(method, path, body, headers)
            except HttpError as exc:
                status, payload = exc.status, error_body(exc.status, exc.message, exc.kind)
            except LimitExceeded as exc:
                status, payload = exc.status, exc.to_json()
            except RecursionError:  # a parser went as deep as Python goes: the input nests too deep
                err = LimitExceeded(400, "max_depth", "request body nests too deep to decode")
                status, payload = err.status, err.to_json()
            except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
                log.exception("handler failed", method=method, path=clip(path))
                status, payload = 500, error_body(500, f"internal error: {type(exc).__name__}: {shorten(str(exc), 200)}",
                                                  "server_error")
            if isinstance(payload, EventStream):
                if not await _send_events(stream, conn, status, payload, limits.body_timeout_s):
                    return
            else:
                with trio.move_on_after(limits.body_timeout_s) as sending:  # a client that does not read its answer
                    await _send(stream, conn, status, payload)
                if sending.cancelled_caught:
                    return
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        return
    finally:
        with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            await stream.aclose()
        if scope.cancelled_caught:
            await trio.aclose_forcefully(stream)


async def serve_json(handler: Handler, host: str, port: int, *, auth: Auth | None = None,
                     limits: Limits | None = None, ssl_context: ssl.SSLContext | None = None,
                     public_paths: frozenset[str] = frozenset(),
                     task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``handler`` on ``host:port`` until cancelled; ``task_status.started(bound_port)``.

    ``auth``: who may call (default: anyone, as the anonymous principal); ``limits``: what
    a request may cost (default :class:`Limits` with a ``MAX_BODY`` body); ``ssl_context``:
    serve HTTPS (see :func:`scaleenv._serve.auth.tls_context`); ``public_paths``: paths a GET
    may fetch without a token (a static API description). Cancelling stops accepting and
    closes every connection.
    """
    auth = auth if auth is not None else Auth()
    limits = limits if limits is not None else Limits(max_body_bytes=MAX_BODY)
    if ssl_context is not None:
        listeners: list[Any] = await trio.open_ssl_over_tcp_listeners(port, ssl_context, host=host,
                                                                      https_compatible=True)
        bound = listeners[0].transport_listener.socket.getsockname()[1]
    else:
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
    log.info("listening", host=host, port=bound, tls=ssl_context is not None)

    async def _handle(stream: trio.abc.Stream) -> None:
        await _connection(stream, handler, auth, limits, public_paths)

    async with trio.open_nursery() as nursery:
        task_status.started(bound)
        await trio.serve_listeners(_handle, listeners, handler_nursery=nursery)
