"""The UI's HTTP/1.1 server on trio sockets (TLS optional), built on h11: GET and HEAD.

One job: parse requests with h11 (keep-alive and pipelining come from its state
machine), hand a :class:`Request` to an async handler and write its :class:`Response`
back. The app is read-only, so any other method is answered 405 without reaching the
handler, except POST on the ``post_paths`` the server is given (the login form). A handler exception becomes a 500 with a one-line message and is logged; a
client that goes away mid-response only ends its own connection.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs
import h11
import trio

from scaleenv._logs import get_logger

log = get_logger("scaleenv._ui.http")

RECEIVE_SIZE = 65536
MAX_REQUEST_BODY = 1 << 16
SERVER = b"scaleenv-ui"


@attrs.frozen
class Request:
    method: str
    path: str
    """Percent-decoded path, without the query."""
    query: dict[str, str]
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes = b""
    """The request body (read for POST; bounded by ``MAX_REQUEST_BODY``)."""


@attrs.frozen
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, separators=(",", ":"), default=str).encode())


def error_response(status: int, message: str) -> Response:
    return json_response({"error": {"status": status, "message": message}}, status)


Handler = Callable[[Request], Awaitable[Response]]

SECURITY_HEADERS = (
    # Everything the pages load comes from this server; no inline script runs, so text
    # a model wrote can never execute even if it reached the page as markup.
    ("content-security-policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
)


def parse_target(target: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(target)
    return unquote(parts.path) or "/", dict(parse_qsl(parts.query, keep_blank_values=True))


async def _next_event(stream: trio.abc.Stream, conn: h11.Connection) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(RECEIVE_SIZE))  # b"" signals EOF to h11


async def _read_request(stream: trio.abc.Stream, conn: h11.Connection) -> Request | None:
    event = await _next_event(stream, conn)
    if isinstance(event, h11.ConnectionClosed):
        return None
    if not isinstance(event, h11.Request):
        raise h11.RemoteProtocolError(f"expected a request, got {type(event).__name__}")
    body = bytearray()
    while True:  # a body is read (bounded): a POST's is kept, a GET's dropped below
        part = await _next_event(stream, conn)
        if isinstance(part, h11.Data):
            body += part.data
            if len(body) > MAX_REQUEST_BODY:
                raise h11.RemoteProtocolError("request body too large")
        elif isinstance(part, h11.EndOfMessage):
            break
        elif isinstance(part, h11.ConnectionClosed):
            return None
    path, query = parse_target(event.target.decode("latin-1"))
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
    method = event.method.decode("latin-1").upper()
    return Request(method, path, query, headers, bytes(body) if method == "POST" else b"")


async def _send(stream: trio.abc.Stream, conn: h11.Connection, response: Response, *, head: bool = False) -> None:
    headers = [
        ("content-type", response.content_type),
        ("content-length", str(len(response.body))),
        ("server", SERVER.decode()),
        *SECURITY_HEADERS,
        *response.headers,
    ]
    data = conn.send(h11.Response(status_code=response.status,
                                  headers=[(k.encode(), v.encode("latin-1")) for k, v in headers]))
    if not head:
        data += conn.send(h11.Data(data=response.body))
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)


async def _connection(stream: trio.abc.Stream, handler: Handler, post_paths: frozenset[str]) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            try:
                request = await _read_request(stream, conn)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await _send(stream, conn, error_response(400, f"bad HTTP request: {exc}"))
                return
            if request is None:
                return
            if request.method not in ("GET", "HEAD") and not (request.method == "POST" and request.path in post_paths):
                response = error_response(405, f"{request.method} {request.path}: this server is read-only (GET only)")
                response = attrs.evolve(response, headers=(("allow", "GET, HEAD"),))
            else:
                try:
                    response = await handler(request)
                except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
                    log.exception("handler failed", path=request.path)
                    response = error_response(500, f"internal error: {type(exc).__name__}: {exc}")
            await _send(stream, conn, response, head=request.method == "HEAD")
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


async def serve(handler: Handler, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                post_paths: frozenset[str] = frozenset(),
                task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``handler`` on ``host:port`` until cancelled; ``task_status.started(bound_port)``.

    ``ssl_context``: serve HTTPS (a client failing the handshake only ends its own
    connection); ``post_paths``: the paths a POST may reach the handler on (every other
    POST gets 405). Cancellation closes the listeners and every open connection (a long
    poll in flight ends with its connection)."""
    listeners: list[Any]
    if ssl_context is not None:
        listeners = await trio.open_ssl_over_tcp_listeners(port, ssl_context, host=host, https_compatible=True)
        bound = listeners[0].transport_listener.socket.getsockname()[1]
    else:
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
    log.info("listening", host=host, port=bound, tls=ssl_context is not None)

    async def _handle(stream: trio.abc.Stream) -> None:
        await _connection(stream, handler, post_paths)

    async with trio.open_nursery() as nursery:
        task_status.started(bound)
        await trio.serve_listeners(_handle, listeners, handler_nursery=nursery)
