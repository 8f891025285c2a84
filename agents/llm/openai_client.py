"""A lean client for OpenAI-compatible chat completions on trio.

``await client.chat(body)`` posts an encoded request body to ``{base_url}/chat/completions``
on a pooled keep-alive HTTP/1.1 connection (:mod:`.http1`) and returns the response
decoded into typed structs (:mod:`.openai_wire`); ``client.chat_stream(body)`` does the
same with ``"stream": true`` in the body and yields the server-sent chunks as they come.

Failures are retried by :class:`~.retry.RetryPolicy` (safe ones freely, ones the server
may have acted on at most once and with a warning; ``Retry-After`` honoured) and end as
:class:`~.errors.BackendError` naming the URL, the HTTP status if any, the cause
(``kind``) and the number of attempts. Cancellation closes the connection in use (it is
never pooled half-read) and propagates.
"""

from __future__ import annotations

import random
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from typing import TypeVar

import attrs
import msgspec
import trio

from scaleenv._logs import get_logger

from .errors import BackendError
from .http1 import MAX_BODY, HttpFailure, Pool, Response
from .openai_wire import ChatChunk, ChatCompletion, chunk_decoder, chunk_error, completion_decoder, error_text, fold_chunks
from .retry import RetryPolicy, Safety, retry_after_s, status_safety
from .sse import SseParser

log = get_logger("scaleenv.llm.http")

T = TypeVar("T")


class _Failed(Exception):
    """One attempt's failure, classified (internal: becomes a retry or a BackendError)."""

    def __init__(self, detail: str, safety: Safety, kind: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.safety = safety
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


class _Tries:
    __slots__ = ("attempts", "unsafe")

    def __init__(self) -> None:
        self.attempts = 0
        self.unsafe = 0


def _from_http(exc: HttpFailure) -> _Failed:
    return _Failed(exc.detail, "unsafe" if exc.sent else "safe", exc.kind)


def _from_status(response: Response) -> _Failed:
    status = response.status
    return _Failed(error_text(response.body), status_safety(status), "status", status,
                   retry_after_s(response.headers.get("retry-after")))


@attrs.define(eq=False)
class OpenAIClient:
    """Chat completions from the server at ``base_url`` (which ends in ``/v1``, as for the SDK)."""

    base_url: str
    api_key: str = "EMPTY"
    name: str = "openai"
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    max_connections: int = 1024
    max_body: int = MAX_BODY
    sleep: Callable[[float], Awaitable[None]] = attrs.field(default=trio.sleep, repr=False)  # how retries wait
    _pool: Pool = attrs.field(init=False)
    _head: bytes = attrs.field(init=False)
    _rng: random.Random = attrs.field(init=False, factory=random.Random)

    def __attrs_post_init__(self) -> None:
        url = urllib.parse.urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base URL {self.base_url!r} is not an http(s) URL")
        tls = ssl.create_default_context() if url.scheme == "https" else None
        port = url.port or (443 if tls else 80)
        self._pool = Pool(url.hostname, port, tls=tls, max_connections=self.max_connections,
                          connect_timeout_s=self.connect_timeout_s)
        name = f"[{url.hostname}]" if ":" in url.hostname else url.hostname  # an IPv6 address is bracketed
        host = name if port == (443 if tls else 80) else f"{name}:{port}"
        key = self.api_key or "EMPTY"
        if not all(" " < ch <= "~" for ch in key):
            raise ValueError("the API key has characters an HTTP header cannot carry (spaces, control or non-ASCII)")
        path = url.path.rstrip("/") + "/chat/completions"
        self._head = (f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
                      f"accept: application/json\r\nauthorization: Bearer {key}\r\n").encode("ascii")

    @property
    def pool(self) -> Pool:
        return self._pool

    def _request(self, body: bytes, headers: bytes) -> bytes:
        return b"%scontent-length: %d\r\n%s\r\n%s" % (self._head, len(body), headers, body)

    async def chat(self, body: bytes, headers: bytes = b"") -> ChatCompletion:
        """POST ``body`` (an encoded chat-completions request) and return the decoded completion.

        ``headers``: extra header lines, each ending in CRLF. Awaits the response,
        retries included; raises :class:`BackendError`."""
        data = self._request(body, headers)

        async def once() -> ChatCompletion:
            try:
                response = await self._pool.request(data, self.timeout_s, self.max_body)
            except HttpFailure as exc:
                raise _from_http(exc) from exc
            if response.status != 200:
                raise _from_status(response)
            try:
                return completion_decoder.decode(response.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise _Failed(f"the response is not a chat completion: {exc}", "unsafe", "malformed") from exc

        return await self.with_retries(once)

    @asynccontextmanager
    async def chat_stream(self, body: bytes, headers: bytes = b"") -> AsyncIterator[AsyncIterator[ChatChunk]]:
        """POST ``body`` (with ``"stream": true``) and yield its chunks as they arrive.

        Failures before the stream starts are retried as for :meth:`chat`; a failure
        after it (a reset, a stream that ends without ``data: [DONE]``, an error event, a
        chunk that does not decode, the timeout) raises :class:`BackendError` from the
        iteration: chunks already handed out cannot be taken back. Leaving the block
        early closes the connection."""
        data = self._request(body, headers)
        tries = _Tries()
        while True:
            tries.attempts += 1
            handed_out = False
            try:
                async with self._pool.stream(data, self.timeout_s, self.max_body) as (head, parts):
                    if head.status != 200:
                        raise _from_status(Response(head.status, head.reason, head.headers,
                                                    b"".join([p async for p in parts])))
                    async with aclosing(self._raising(self._events(parts), tries.attempts)) as chunks:
                        handed_out = True
                        yield chunks
            except HttpFailure as exc:
                if handed_out:  # the timeout, while the caller read the stream: too late to retry
                    raise self._error(_from_http(exc), tries.attempts) from exc
                await self._before_retry(_from_http(exc), tries)
                continue
            except _Failed as failure:
                await self._before_retry(failure, tries)
                continue
            return

    async def chat_folded(self, body: bytes, headers: bytes = b"",
                          on_chunk: Callable[[ChatChunk], None] | None = None) -> ChatCompletion:
        """POST ``body`` (with ``"stream": true``) and return the completion its chunks add up to.

        ``on_chunk`` sees each chunk as it arrives. The whole exchange is retried per the
        policy (a stream cut short counts as a failure the server may have acted on;
        ``on_chunk`` then sees the retry's chunks from the start)."""
        data = self._request(body, headers)

        async def once() -> ChatCompletion:
            got: list[ChatChunk] = []
            async with self._pool.stream(data, self.timeout_s, self.max_body) as (head, parts):
                if head.status != 200:
                    raise _from_status(Response(head.status, head.reason, head.headers,
                                                b"".join([p async for p in parts])))
                async with aclosing(self._events(parts)) as events:
                    async for chunk in events:
                        got.append(chunk)
                        if on_chunk is not None:
                            on_chunk(chunk)
            return fold_chunks(got)

        return await self.with_retries(once)

    async def _events(self, parts: AsyncIterator[bytes]) -> AsyncIterator[ChatChunk]:
        """The chunks of an event stream, up to ``data: [DONE]``; raises ``_Failed``."""
        parser = SseParser()
        done = False
        try:
            async for part in parts:
                if done:
                    continue  # the body's end follows [DONE]; read it so the connection is reused
                for event in parser.feed(part):
                    if event.data == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = chunk_decoder.decode(event.data)
                    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                        raise _Failed(f"a stream event is not a chunk: {exc}", "unsafe", "malformed") from exc
                    error = chunk_error(chunk)
                    if error is not None:
                        raise _Failed(f"the server streamed an error: {error}", "unsafe", "stream")
                    yield chunk
        except HttpFailure as exc:
            raise _Failed(f"the stream was cut short: {exc.detail}", "unsafe", "truncated") from exc
        if not done:
            raise _Failed("the stream ended without data: [DONE]", "unsafe", "truncated")

    async def _raising(self, events: AsyncIterator[ChatChunk], attempts: int) -> AsyncIterator[ChatChunk]:
        async with aclosing(events):  # type: ignore[type-var]
            try:
                async for chunk in events:
                    yield chunk
            except _Failed as failure:
                raise self._error(failure, attempts) from failure
            except HttpFailure as exc:
                raise self._error(_from_http(exc), attempts) from exc

    async def with_retries(self, once: Callable[[], Awaitable[T]]) -> T:
        """``await once()`` until it succeeds or the policy gives up (then a BackendError)."""
        tries = _Tries()
        while True:
            tries.attempts += 1
            try:
                return await once()
            except _Failed as failure:
                await self._before_retry(failure, tries)
            except HttpFailure as exc:
                await self._before_retry(_from_http(exc), tries)

    def _error(self, failure: _Failed, attempts: int) -> BackendError:
        return BackendError(self.name, self.base_url, failure.detail, status=failure.status,
                            retryable=failure.safety != "fatal", attempts=attempts, kind=failure.kind)

    async def _before_retry(self, failure: _Failed, tries: _Tries) -> None:
        """Sleep before the next attempt, or raise the failure as a BackendError."""
        policy = self.policy
        retried = tries.attempts - 1
        if not policy.allows(failure.safety, retried, tries.unsafe):
            raise self._error(failure, tries.attempts) from failure
        if failure.retry_after is not None and failure.retry_after > policy.retry_after_max_s:
            raise self._error(_Failed(f"{failure.detail} (the server asks to retry after {failure.retry_after:.0f} s, "
                                      f"more than the {policy.retry_after_max_s:.0f} s this client waits)",
                                      failure.safety, failure.kind, failure.status), tries.attempts) from failure
        if failure.safety == "unsafe":
            tries.unsafe += 1
        delay = policy.delay(retried, failure.retry_after, self._rng)
        log.warning("model request failed; retrying", url=self.base_url, kind=failure.kind, status=failure.status,
                    detail=failure.detail[:200], attempt=tries.attempts, wait_s=round(delay, 3),
                    may_have_been_processed=failure.safety == "unsafe")
        await self.sleep(delay)

    async def aclose(self) -> None:
        await self._pool.aclose()
