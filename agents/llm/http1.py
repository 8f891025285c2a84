"""An HTTP/1.1 client on trio sockets: requests on pooled keep-alive connections.

One job: send a request's bytes on a connection to one server and read the response
(``Content-Length``, chunked, or until the server closes), with the connection kept for
the next request when both sides allow it. It knows nothing of OpenAI; the caller
builds the request bytes and decides what a status means.

- **Pool.** Idle connections are reused last-in first-out (the most recently used is the
  likeliest still open). A connection that sat idle for a second or more is first
  checked for a close the server sent meanwhile (one ``select`` with no wait), so a
  server's keep-alive timeout (5 s for uvicorn, so vLLM) does not cost a failed request. At most ``max_connections`` are
  open at once; more callers wait for one.
- **Failures** are :class:`HttpFailure` subclasses that say how far the exchange got:
  ``sent`` is False when the server cannot have received the whole request (it cannot
  have acted on it), ``response_started`` when some of the response came.
- **Timeouts and cancellation.** ``timeout_s`` bounds one exchange (send and whole
  response); ``connect_timeout_s`` the connect. On a timeout, a cancellation or any
  failure the connection is closed at once, never pooled: a half-read response can
  never be mistaken for the next request's.

No HTTP/2: with one request per connection at a time and connections pooled, HTTP/1.1
costs the client less CPU per call, and every OpenAI-compatible server speaks it.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import NamedTuple

import attrs
import trio

RECEIVE_SIZE = 65536
MAX_HEAD = 64 << 10
MAX_BODY = 64 << 20
NO_BODY_STATUSES = frozenset({204, 304})
IDLE_CHECK_S = 1.0


class HttpFailure(Exception):
    """An exchange that did not end with a whole response.

    ``sent``: the whole request may have reached the server (it may have acted on it);
    ``response_started``: part of a response came before the failure.
    """

    kind = "http"

    def __init__(self, detail: str, *, sent: bool, response_started: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.sent = sent
        self.response_started = response_started


class ConnectFailed(HttpFailure):
    """No connection could be opened (refused, unreachable, TLS handshake failed, connect timeout)."""

    kind = "connect"


class ConnectionLost(HttpFailure):
    """The connection was reset or closed by the server before the response ended."""

    kind = "reset"


class ResponseTimeout(HttpFailure):
    """The exchange took longer than its timeout."""

    kind = "timeout"


class ProtocolViolation(HttpFailure):
    """The server's bytes are not a well-formed HTTP/1.1 response (or are over the size limits)."""

    kind = "protocol"


class Head(NamedTuple):
    """A response's status line and headers (names lower-cased)."""

    status: int
    reason: str
    headers: dict[str, str]
    keep_alive: bool


class _Progress:
    """How far an exchange got (for the failure a timeout becomes)."""

    __slots__ = ("sent", "started")

    def __init__(self) -> None:
        self.sent = False
        self.started = False


class _Parts:
    """A body's parts as they arrive; notes whether the body was read to its end."""

    __slots__ = ("_gen", "finished")

    def __init__(self, gen: AsyncIterator[bytes]) -> None:
        self._gen = gen
        self.finished = False

    def __aiter__(self) -> _Parts:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._gen.__anext__()
        except StopAsyncIteration:
            self.finished = True
            raise

    async def aclose(self) -> None:
        await self._gen.aclose()  # type: ignore[attr-defined]


class Response(NamedTuple):
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


class Connection:
    """One open connection to the pool's server, with what it has read but not consumed.

    A plain TCP connection is a non-blocking socket driven straight through trio's
    ``wait_readable``/``wait_writable`` (one system call per send and per receive, no
    stream layer); a TLS one goes through ``trio.SSLStream``."""

    __slots__ = ("sock", "stream", "fd", "buf", "uses", "idle_since")

    def __init__(self, sock: socket.socket | None, stream: trio.abc.Stream | None = None) -> None:
        self.sock = sock
        self.stream = stream
        if sock is not None:
            self.fd = sock.fileno()
        else:
            transport = getattr(stream, "transport_stream", stream)
            self.fd = transport.socket.fileno()  # type: ignore[union-attr]
        self.buf = bytearray()
        self.uses = 0
        self.idle_since = 0.0

    def looks_open(self, idle_check_s: float) -> bool:
        """False if the server closed the idle connection (or sent bytes nobody asked for).
        Checked once idle for ``idle_check_s``: servers do not close connections sooner."""
        if self.buf:
            return False
        if time.monotonic() - self.idle_since < idle_check_s:
            return True
        try:
            readable, _, _ = select.select((self.fd,), (), (), 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        """Close now, without waiting (safe inside a cancelled scope)."""
        sock = self.sock
        if sock is None:
            transport = getattr(self.stream, "transport_stream", self.stream)
            sock = getattr(transport, "socket", None)
        if sock is not None and sock.fileno() != -1:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    async def _receive(self, response_started: bool) -> bytes:
        """The next bytes from the server (b"" when it closed the connection)."""
        sock = self.sock
        try:
            if sock is None:
                return await self.stream.receive_some(RECEIVE_SIZE)  # type: ignore[union-attr]
            while True:
                await trio.lowlevel.wait_readable(sock)
                try:
                    return sock.recv(RECEIVE_SIZE)
                except BlockingIOError:
                    continue
        except (OSError, trio.BrokenResourceError) as exc:
            raise ConnectionLost(f"connection reset while reading the response: {exc.__cause__ or exc}",
                                 sent=True, response_started=response_started or bool(self.buf)) from exc

    async def _more(self, response_started: bool) -> None:
        data = await self._receive(response_started)
        if not data:
            started = response_started or bool(self.buf)
            raise ConnectionLost("the server closed the connection " + (
                "in the middle of the response" if started else "before sending a response"),
                sent=True, response_started=started)
        self.buf += data

    async def send(self, data: bytes) -> None:
        sock = self.sock
        try:
            if sock is None:
                await self.stream.send_all(data)  # type: ignore[union-attr]
                return
            view = memoryview(data)
            while view:
                try:
                    sent = sock.send(view)
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
                    continue
                view = view[sent:]
        except (OSError, trio.BrokenResourceError) as exc:
            # Not all of the request reached the server: it cannot have acted on it.
            raise ConnectionLost(f"connection reset while sending the request: {exc.__cause__ or exc}",
                                 sent=False) from exc

    async def read_head(self) -> Head:
        while True:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolViolation(f"response head longer than {MAX_HEAD} bytes", sent=True,
                                            response_started=True)
                await self._more(False)
                end = buf.find(b"\r\n\r\n")
            head = bytes(buf[:end])
            del buf[:end + 4]
            parsed = parse_head(head)
            if 100 <= parsed.status < 200:
                continue  # an interim response (100 Continue): the real one follows
            return parsed

    async def read_body(self, head: Head, limit: int = MAX_BODY) -> tuple[bytes, bool]:
        """The whole body and whether the connection may carry another request."""
        length = head.headers.get("content-length")
        if length is not None and head.status not in NO_BODY_STATUSES and "transfer-encoding" not in head.headers:
            n = _length(length, limit)
            buf = self.buf
            while len(buf) < n:
                await self._more(True)
            body = bytes(buf) if len(buf) == n else bytes(buf[:n])
            del buf[:n]
            return body, head.keep_alive and not buf
        parts = []
        async with aclosing(self.body_parts(head, limit)) as chunks:
            async for part in chunks:
                parts.append(part)
        return b"".join(parts), head.keep_alive and not self.buf and framed(head)

    async def body_parts(self, head: Head, limit: int = MAX_BODY) -> AsyncIterator[bytes]:
        """The body as it arrives (de-chunked); ends at the body's end."""
        headers = head.headers
        if head.status in NO_BODY_STATUSES:
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            async with aclosing(self._chunked(limit)) as parts:
                async for part in parts:
                    yield part
            return
        length = headers.get("content-length")
        if length is not None:
            n = _length(length, limit)
            buf = self.buf
            while len(buf) < n:
                await self._more(True)
            body = bytes(buf[:n]) if len(buf) != n else bytes(buf)
            del buf[:n]
            yield body
            return
        # No length: the body ends when the server closes (the connection is not reusable).
        total = 0
        while True:
            if self.buf:
                part = bytes(self.buf)
                self.buf.clear()
                total += len(part)
                if total > limit:
                    raise ProtocolViolation(f"response body over {limit} bytes", sent=True, response_started=True)
                yield part
            data = await self._receive(True)
            if not data:
                return
            self.buf += data

    async def _line(self) -> bytes:
        buf = self.buf
        end = buf.find(b"\r\n")
        while end < 0:
            if len(buf) > MAX_HEAD:
                raise ProtocolViolation("chunk header too long", sent=True, response_started=True)
            await self._more(True)
            end = buf.find(b"\r\n")
        line = bytes(buf[:end])
        del buf[:end + 2]
        return line

    async def _chunked(self, limit: int) -> AsyncIterator[bytes]:
        total = 0
        while True:
            line = await self._line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolViolation(f"bad chunk size line {line[:40]!r}", sent=True, response_started=True) from None
            if size == 0:
                while await self._line():  # trailers, up to the empty line
                    pass
                return
            total += size
            if total > limit:
                raise ProtocolViolation(f"response body over {limit} bytes", sent=True, response_started=True)
            left = size
            buf = self.buf
            while left:
                if not buf:
                    await self._more(True)
                take = min(left, len(buf))
                part = bytes(buf[:take])
                del buf[:take]
                left -= take
                yield part
            while len(buf) < 2:
                await self._more(True)
            if buf[:2] != b"\r\n":
                raise ProtocolViolation("chunk not followed by CRLF", sent=True, response_started=True)
            del buf[:2]


async def open_socket(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket (TCP_NODELAY) to the first address of ``host`` that accepts."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(address)
            if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                await trio.lowlevel.wait_writable(sock)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            return sock
        except OSError as exc:
            sock.close()
            last = exc
        except BaseException:
            sock.close()
            raise
    raise last if last is not None else OSError(f"no address for {host}")


def framed(head: Head) -> bool:
    """Whether the body's end is marked (so the connection can carry another request)."""
    headers = head.headers
    return (head.status in NO_BODY_STATUSES or "chunked" in headers.get("transfer-encoding", "").lower()
            or "content-length" in headers)


def _length(value: str, limit: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ProtocolViolation(f"bad Content-Length {value!r}", sent=True, response_started=True) from None
    if n < 0 or n > limit:
        raise ProtocolViolation(f"response body of {n} bytes (limit {limit})", sent=True, response_started=True)
    return n


def parse_head(head: bytes) -> Head:
    """Parse a response's status line and header lines (the bytes before the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolViolation(f"not an HTTP/1.x status line: {status_line[:60]!r}", sent=True, response_started=True)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name[0] in " \t" or name[-1] in " \t":
            raise ProtocolViolation(f"bad header line {line[:60]!r}", sent=True, response_started=True)
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    return Head(int(code), reason, headers, keep_alive)


@attrs.define(eq=False)
class Pool:
    """Keep-alive connections to one server (``host``, ``port``; TLS when ``tls`` is a context)."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    max_connections: int = 1024
    connect_timeout_s: float = 10.0
    idle_check_s: float = IDLE_CHECK_S
    _idle: list[Connection] = attrs.field(init=False, factory=list)
    _open: int = attrs.field(init=False, default=0)
    _waiting: trio.lowlevel.ParkingLot = attrs.field(init=False, factory=trio.lowlevel.ParkingLot)
    _closed: bool = attrs.field(init=False, default=False)

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def _connect(self) -> Connection:
        with trio.move_on_after(self.connect_timeout_s):
            if self.tls is None:
                try:
                    return Connection(await open_socket(self.host, self.port))
                except OSError as exc:
                    raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}", sent=False) from exc
            try:
                tcp = await trio.open_tcp_stream(self.host, self.port)
            except OSError as exc:
                raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}", sent=False) from exc
            stream = trio.SSLStream(tcp, self.tls, server_hostname=self.host, https_compatible=True)
            try:
                await stream.do_handshake()
            except (trio.BrokenResourceError, ssl.SSLError) as exc:
                tcp.socket.close()
                raise ConnectFailed(f"TLS handshake with {self.host}:{self.port} failed: {exc.__cause__ or exc}",
                                    sent=False) from exc
            except BaseException:
                tcp.socket.close()
                raise
            return Connection(None, stream)
        raise ConnectFailed(f"connecting to {self.host}:{self.port} took over {self.connect_timeout_s} s", sent=False)

    async def _take(self) -> Connection:
        """An open connection: an idle one, or a new one when fewer than the limit are open."""
        if self._closed:
            raise trio.ClosedResourceError("the HTTP pool is closed")
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.looks_open(self.idle_check_s):
                return conn
            conn.close()
            self._open -= 1
        while self._open >= self.max_connections:
            await self._waiting.park()
            if idle:
                return await self._take()
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._waiting.unpark()
            raise

    def _done(self, conn: Connection, reusable: bool) -> None:
        """Give a connection back (reusable) or close it; wake one waiting caller either way."""
        if reusable and not self._closed:
            conn.uses += 1
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()
            self._open -= 1
        if self._waiting:
            self._waiting.unpark()

    async def request(self, data: bytes, timeout_s: float, limit: int = MAX_BODY) -> Response:
        """Send ``data`` (a whole HTTP/1.1 request) and return the whole response.

        Awaits a connection (pooled or new), the send and the response; raises an
        :class:`HttpFailure` subclass. On cancellation the connection is closed and the
        cancellation propagates."""
        progress = _Progress()
        with trio.move_on_after(timeout_s):
            conn = await self._take()
            reusable = False
            try:
                await conn.send(data)
                progress.sent = True
                head = await conn.read_head()
                progress.started = True
                body, reusable = await conn.read_body(head, limit)
                return Response(head.status, head.reason, head.headers, body)
            finally:
                progress.started = progress.started or bool(conn.buf)
                self._done(conn, reusable)
        raise ResponseTimeout(f"no whole response within {timeout_s} s", sent=progress.sent,
                              response_started=progress.started)

    @asynccontextmanager
    async def stream(self, data: bytes, timeout_s: float,
                     limit: int = MAX_BODY) -> AsyncIterator[tuple[Head, AsyncIterator[bytes]]]:
        """Send ``data``; yield ``(head, body parts as they arrive)``.

        ``timeout_s`` bounds the whole exchange, the body included. Leaving the block
        before the body's end (by an exception, a cancellation or a break) closes the
        connection; it is pooled only when the body was read to its end."""
        progress = _Progress()
        with trio.move_on_after(timeout_s):
            conn = await self._take()
            reusable = False
            try:
                await conn.send(data)
                progress.sent = True
                head = await conn.read_head()
                progress.started = True
                async with aclosing(_Parts(conn.body_parts(head, limit))) as parts:
                    yield head, parts
                reusable = parts.finished and head.keep_alive and not conn.buf and framed(head)
            finally:
                self._done(conn, reusable)
            return
        raise ResponseTimeout(f"no whole response within {timeout_s} s", sent=progress.sent,
                              response_started=progress.started)

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when their exchange ends."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
            self._open -= 1
        await trio.lowlevel.checkpoint()
