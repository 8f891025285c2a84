"""Recorded answers over the OpenAI chat-completions API (``scaleenv sim-server --replay LOG``).

A stand-in model server that costs almost nothing per call, so that a benchmark of the
engine against an HTTP model measures the engine and its client, not the stand-in. It
answers each request with what a log recorded: every ``LlmCalled`` of the log (a run on
the in-process sim, or one over HTTP) becomes the exact HTTP response the sim server
would send for that request, encoded once at start.

- **Which answer**: a request is identified by its ``seed``, which the port derives from
  the run seed, the stream and the stream position (``derive_seed``), so it names one
  attempt of one call of one run. The body is never decoded: the seed is found with a
  byte search for the ``"seed":<integer>`` member, from the end of the body (inside JSON
  strings a quote is escaped, so only a real member matches; a schema property named
  ``seed`` is an object, not an integer; an integer ``seed`` nested in a schema's default
  is passed over unless it equals a recorded 64-bit seed). A request whose seed the log
  has no answer for, or has two different answers for, gets ``404`` with a message
  saying so (the client raises a BackendError with that status; it is not retried).
- **The shape of the answer**, as the sim server gives it (:mod:`.sim_http`): for a
  request offering tools the answer is an OpenAI message with ``tool_calls``; for a
  request whose schema carries the marks of ``strict_schema`` (what ``--llm openai:``
  sends) a constrained answer is in OpenAI's strict shape, otherwise in the schema's own
  shape (``--llm vllm:``). Whether a schema is marked is again a byte search (for the
  ``"description":"[optional] `` etc. members the rewrite adds).
- **Latency**: ``latency`` (the sim's log-normal model) is drawn once per answer, seeded
  by its seed (as bench/rollout.py's in-process replay draws it), and slept by the
  event loop's timer before the response is written: no task per request.
- Not served: ``stream: true`` and ``n`` > 1 (400); GET ``/v1/models`` names the model;
  GET ``/replay/stats`` says how many requests were answered and missed, and the mean
  latency slept (what a benchmark's ideal rate needs).

The server runs on asyncio's protocol API (a callback per read, a timer per response),
not on trio as scaleenv's other servers do: no task, stream or cancel scope per request,
the leanest a Python server gets (~100 us of CPU per call with 32 keep-alive clients,
~200 us with 800 clients and a 1 s latency; ``bench/llm_port.py`` reports it as
``server_cpu_us_per_call``). Requests are HTTP/1.1 with ``Content-Length`` (keep-alive;
a pipelined request waits for the previous response); ``Authorization: Bearer`` is
checked against ``auth``; the header and body size limits of ``limits`` hold (431, 413);
its time limits do not apply.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import msgspec

from scaleenv._agents.llm.strict import STRICT_SHAPE, OPTIONAL, MAP, JSON, from_strict, marked, strict_schema
from scaleenv._agents.llm.tool_calls import text_to_message
from scaleenv._agents.sim import LatencyModel
from scaleenv._store.events.llm import LlmCalled

from .auth import Auth
from .limits import SIM_SERVER_LIMITS, Limits
from .sim_http import completion_body, strict_answer

_MARK_START = b'"description":"['
_MARKS = tuple(b'"description":"' + m.encode() for m in (OPTIONAL, MAP, JSON))
_encode = msgspec.json.Encoder().encode
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Content Too Large", 431: "Request Header Fields Too Large"}


def http_response(status: int, body: bytes, *, close: bool = False) -> bytes:
    """A whole HTTP/1.1 response with a JSON ``body``."""
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
            % (status, _REASONS.get(status, "Error").encode(), len(body), b"connection: close\r\n" if close else b"",
               body))


def error_response(status: int, message: str, kind: str = "invalid_request_error", *, close: bool = False) -> bytes:
    """An error in OpenAI's shape, ``{"error": {"message", "type", "code"}}``, as a response."""
    return http_response(status, _encode({"error": {"message": message, "type": kind, "code": status}}), close=close)


class Answer(msgspec.Struct, frozen=True):
    """One recorded answer, ready to send: the response in the schema's own shape, the
    one in the strict shape (None: the same), and the seconds to sleep before either."""

    plain: bytes
    strict: bytes | None
    latency_s: float


def _text_shapes(call: LlmCalled, strict_cache: dict[bytes, dict[str, Any] | None]) -> tuple[str, str | None]:
    """(the answer in the schema's own shape, in the strict shape or None: the same)."""
    if call.tools is not None or call.json_schema is None:
        return call.raw, None
    key = _encode(call.json_schema)
    if key not in strict_cache:
        sent = strict_schema(call.json_schema)
        strict_cache[key] = sent if marked(sent) else None
    sent = strict_cache[key]
    if sent is None:
        return call.raw, None
    if call.answer_shape == STRICT_SHAPE:  # recorded over --llm openai: the raw text is the strict one
        try:
            plain = json.dumps(from_strict(json.loads(call.raw), sent), sort_keys=True)
        except json.JSONDecodeError:
            plain = call.raw
        return plain, None if plain == call.raw else call.raw
    strict = strict_answer(call.raw, sent)
    return call.raw, None if strict == call.raw else strict


def _response(call: LlmCalled, text: str, model: str) -> bytes:
    content, tool_calls = text_to_message(text) if call.tools is not None else (text, None)
    usage = {"prompt_tokens": call.prompt_tokens, "completion_tokens": call.completion_tokens,
             "total_tokens": call.prompt_tokens + call.completion_tokens}
    body = completion_body(f"chatcmpl-replay-{call.seed & 0xFFFFFFFFFFFF:x}", model, [(content, tool_calls)], usage,
                           int(time.time()))
    return http_response(200, _encode(body))


@attrs.define
class ReplayAnswers:
    """The recorded answers by request seed (see the module doc), encoded once."""

    answers: dict[int, Answer]
    ambiguous: dict[int, int]  # seed -> how many different answers the log holds for it
    model: str
    source: str = ""

    @classmethod
    def of(cls, calls: Iterable[LlmCalled], *, latency: LatencyModel | None = None, model: str = "",
           source: str = "") -> ReplayAnswers:
        """Encode the answers of ``calls`` (whole ones: ``agents.llm.recorded.read_calls``)."""
        latency = latency or LatencyModel()
        answers: dict[int, Answer] = {}
        ambiguous: dict[int, int] = {}
        strict_cache: dict[bytes, dict[str, Any] | None] = {}
        first_model = ""
        for call in calls:
            first_model = first_model or call.model
            name = model or call.model or "scaleenv-sim-1"
            plain, strict = _text_shapes(call, strict_cache)
            answer = Answer(_response(call, plain, name), None if strict is None else _response(call, strict, name),
                            latency.sample(random.Random(call.seed ^ 0x5EED), call.completion_tokens))
            if call.seed in ambiguous:
                ambiguous[call.seed] += 1
            elif call.seed in answers and answers[call.seed] != answer:
                del answers[call.seed]
                ambiguous[call.seed] = 2
            else:
                answers[call.seed] = answer
        return cls(answers, ambiguous, model or first_model or "scaleenv-sim-1", source)


@attrs.define(eq=False)
class ReplayServer:
    """The request handler: which response a request gets, and the counts ``/replay/stats`` shows."""

    table: ReplayAnswers
    auth: Auth = attrs.field(factory=Auth)
    limits: Limits = SIM_SERVER_LIMITS
    served: int = 0
    missed: int = 0
    slept_s: float = 0.0
    _models: bytes = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._models = http_response(200, _encode({"object": "list", "data": [
            {"id": self.table.model, "object": "model", "owned_by": "scaleenv"}]}))

    def respond(self, head: bytes, lower: bytes, body: bytes) -> tuple[bytes, float]:
        """(the response to one request, seconds to wait before sending it). ``head``: the
        request line and headers; ``lower``: the same, lower-cased."""
        line = head[:head.find(b"\r\n")] if b"\r\n" in head else head
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return error_response(400, f"bad HTTP request line {line[:80]!r}", close=True), 0.0
        method, path = parts[0], parts[1]
        if self.auth.required and self.auth.authenticate(_header(head, lower, b"authorization")) is None:
            return error_response(401, "missing or unknown bearer token (Authorization: Bearer TOKEN)",
                                  "authentication_error"), 0.0
        if path == b"/v1/chat/completions":
            if method != b"POST":
                return error_response(405, f"{method.decode('latin-1')} {path.decode('latin-1')}: use POST"), 0.0
            return self.chat(body)
        if path == b"/v1/models" and method == b"GET":
            return self._models, 0.0
        if path == b"/replay/stats" and method == b"GET":
            return http_response(200, _encode(self.stats())), 0.0
        return error_response(404, f"no route {method.decode('latin-1')} {path.decode('latin-1')[:200]}; this "
                                   "server has POST /v1/chat/completions, GET /v1/models and GET /replay/stats",
                              "not_found_error"), 0.0

    def chat(self, body: bytes) -> tuple[bytes, float]:
        """The recorded response to a chat-completions request body, and its latency.

        Only byte searches (``bytes.find``/``rfind``: no regular expression, whose scan
        stops at every quote of a JSON text, and no JSON decode)."""
        if b'"stream":true' in body:
            return error_response(400, "sim-server --replay does not stream: send stream=false"), 0.0
        n = _integer_member(body, b'"n":', body.find)
        if n is not None and n != 1:
            return error_response(400, f"sim-server --replay answers n=1 only, got n={n}"), 0.0
        # scaleenv's client puts the seed near the end (before temperature, and before the
        # tools when it offers some): search from there
        answers = self.table.answers
        answer = None
        seed = None
        end = len(body)
        while True:
            at = body.rfind(b'"seed":', 0, end)
            if at < 0:
                break
            found = _integer_at(body, at + 7)
            if found is not None:
                seed = found
                answer = answers.get(seed)
                if answer is not None:
                    break
            end = at
        if answer is None:
            self.missed += 1
            return error_response(404, self._no_answer(seed), "not_found_error"), 0.0
        self.served += 1
        self.slept_s += answer.latency_s
        if answer.strict is not None and _marked(body):
            return answer.strict, answer.latency_s
        return answer.plain, answer.latency_s

    def _no_answer(self, seed: int | None) -> str:
        source = f" ({self.table.source})" if self.table.source else ""
        if seed is None:
            return "the request has no integer seed: sim-server --replay finds each recorded answer by its seed"
        if seed in self.table.ambiguous:
            return (f"the replayed log{source} holds {self.table.ambiguous[seed]} different answers for seed {seed}: "
                    "cannot tell which to give")
        return (f"no recorded answer for seed {seed}: the replayed log{source} never made this request "
                "(a different run seed, config or code than the recorded run?)")

    def stats(self) -> dict[str, Any]:
        return {"answers": len(self.table.answers), "served": self.served, "missed": self.missed,
                "mean_latency_s": self.slept_s / self.served if self.served else None}


def _integer_at(body: bytes, at: int) -> int | None:
    """The JSON integer starting at ``body[at]``, or None (another kind of value)."""
    stop = at + 1 if body[at:at + 1] == b"-" else at
    size = len(body)
    while stop < size and 48 <= body[stop] <= 57:
        stop += 1
    return int(body[at:stop]) if stop > at and body[stop - 1] != 45 else None


def _integer_member(body: bytes, key: bytes, find: Callable[[bytes, int], int]) -> int | None:
    """The first integer value of member ``key`` (``b'"name":'``) in a JSON text, or None."""
    at = find(key, 0)
    while at >= 0:
        value = _integer_at(body, at + len(key))
        if value is not None:
            return value
        at = find(key, at + 1)
    return None


def _marked(body: bytes) -> bool:
    """Whether the request's schema carries a mark of ``strict_schema`` (one ``find`` per
    description that starts with a bracket)."""
    at = body.find(_MARK_START)
    while at >= 0:
        if body.startswith(_MARKS, at):
            return True
        at = body.find(_MARK_START, at + 1)
    return False


def _header(head: bytes, lower: bytes, name: bytes) -> str | None:
    at = lower.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    end = lower.find(b"\r\n", start)
    return head[start:end if end >= 0 else len(head)].decode("latin-1").strip()


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed as their bytes arrive, one answered at a time."""

    __slots__ = ("_buf", "_busy", "_continued", "_loop", "_server", "_transport")

    def __init__(self, server: ReplayServer, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._loop = loop
        self._buf = bytearray()
        self._busy = False
        self._continued = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._next()

    def _refuse(self, response: bytes) -> None:
        if self._transport is not None:
            self._transport.write(response)
            self._transport.close()
        self._buf.clear()
        self._busy = True  # nothing more is read from this connection

    def _next(self) -> None:
        buf = self._buf
        limits = self._server.limits
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > limits.max_header_bytes:
                self._refuse(error_response(431, f"request headers over {limits.max_header_bytes} bytes "
                                                 "(--max-header-bytes)", close=True))
            return
        if end > limits.max_header_bytes:
            self._refuse(error_response(431, f"request headers over {limits.max_header_bytes} bytes "
                                             "(--max-header-bytes)", close=True))
            return
        head = bytes(buf[:end])
        lower = head.lower()
        if b"\r\ntransfer-encoding:" in lower:
            self._refuse(error_response(411, "sim-server --replay needs a Content-Length (no chunked bodies)",
                                        close=True))
            return
        length = _header(head, lower, b"content-length")
        try:
            size = int(length) if length is not None else 0
        except ValueError:
            size = -1
        if size < 0:
            self._refuse(error_response(400, f"bad Content-Length {length!r}", close=True))
            return
        if size > limits.max_body_bytes:
            self._refuse(error_response(413, f"request body of {size} bytes is over {limits.max_body_bytes} "
                                             "(--max-body-bytes)", close=True))
            return
        stop = end + 4 + size
        if len(buf) < stop:
            if not self._continued and b"\r\nexpect: 100-continue" in lower and self._transport is not None:
                self._continued = True  # curl waits for this before sending a body over 1 kB
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self._continued = False
        body = bytes(buf[end + 4:stop])
        del buf[:stop]
        response, delay = self._server.respond(head, lower, body)
        close = b"\r\nconnection: close" in lower or (
            response[9:12] != b"200" and b"\r\nconnection: close\r\n" in response[:200])
        self._busy = True
        if delay > 0:
            self._loop.call_later(delay, self._send, response, close)
        else:
            self._send(response, close)

    def _send(self, response: bytes, close: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(response)
        if close:
            transport.close()
            return
        self._busy = False
        if self._buf:
            self._next()


async def serve_replay(server: ReplayServer, host: str = "127.0.0.1", port: int = 0, *,
                       ssl_context: ssl.SSLContext | None = None,
                       on_listening: Callable[[int], None] | None = None) -> None:
    """Serve ``server`` on ``host:port`` until cancelled (an asyncio coroutine: run it with
    ``asyncio.run``). ``on_listening`` gets the bound port once the socket listens. Raises
    OSError when the address cannot be bound."""
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: _Connection(server, loop), host, port, ssl=ssl_context,
                                        backlog=4096, reuse_address=True)
    async with listener:
        if on_listening is not None:
            on_listening(listener.sockets[0].getsockname()[1])
        await listener.serve_forever()


__all__ = ["Answer", "ReplayAnswers", "ReplayServer", "error_response", "http_response", "serve_replay"]
