"""The port every agent uses to talk to a model.

``await llm.generate(stream, request, OutputType)`` returns a validated ``OutputType``
instance. ``OutputType`` is a msgspec Struct: its JSON schema (``msgspec.json.schema``)
is what the model is constrained to, and ``msgspec.json.decode`` with that type is the
validator, so one type is the single source of truth. A request without tools gets that
schema as readable text too (:mod:`.shape`), at the end of its system message: the
messages recorded in ``LlmCalled`` are the ones sent, shape included.

Every attempt is an ``LlmCalled`` event in the caller's stream. An answer that fails
validation is retried with the error fed back, up to ``max_attempts``; exhaustion emits
``LlmExhausted`` and raises :class:`LlmExhaustedError`, which callers handle (a tool is
rejected, an episode ends with fault "policy"): it never crashes a run.

When the stream already holds a recorded call at this position with the same request
digest (resuming an interrupted agent, or re-running a log), the recorded output is
used instead of calling the backend: replay never regenerates.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs
import msgspec
import trio

from scaleenv._seeding import derive_seed
from scaleenv._store.events import Ref
from scaleenv._store.events.llm import LlmCalled, LlmExhausted

from .call_memory import Delta, calls_of
from .errors import RecordedDivergence
from .shape import shape_text
from .strict import STRICT_SHAPE, Reader, strict_reader, strict_schema

T = TypeVar("T")

CONTEXT_OPEN = "<context>"
CONTEXT_CLOSE = "</context>"


class LlmRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent asks a model: rendered messages plus the context they came from."""

    role: str
    messages: list[dict[str, Any]]
    context: dict[str, Any]
    temperature: float = 0.7
    max_tokens: int = 4096
    seed: int = 0
    # What the call's seed derives from with the stream position, instead of the stream
    # id (an episode opened with a client seed: see EpisodeStarted.client_seed).
    seed_name: str = ""
    # OpenAI function-tool schemas offered to the model (the rollout policy); recorded with
    # the call (LlmCalled.tools, once per stream: later calls refer to it). A request with
    # tools is answered in the API's tool calls, so its text gets no answer shape.
    tools: Sequence[dict[str, Any]] | None = None
    # Set by the port: request_digest of this request (never part of the digest itself);
    # a backend that looks answers up by digest (recorded) need not compute it again.
    digest: str = ""


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """What a backend returns for one attempt: raw text and accounting."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    # Set when the text is a replay of an earlier call: who really produced it.
    backend: str | None = None
    model: str | None = None
    # Set when replaying an answer the port stored only in part (it was too long): the
    # recorded rejection, so the replayed attempt is rejected exactly as the original was.
    rejected: str | None = None
    # The shape the text is in: "" the schema's own, STRICT_SHAPE OpenAI's strict mode's
    # (the backend sent strict_schema_for(output type); the port maps the answer back).
    shape: str = ""


class Backend(Protocol):
    """A model behind the port. ``complete`` returns raw text; the port validates it.

    ``complete`` is a scheduling point (it yields to other tasks at least once, as any
    I/O does): the port takes its concurrency token without one."""

    name: str
    model: str

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion: ...

    async def aclose(self) -> None: ...


class StreamLike(Protocol):
    """The members of ``scaleenv._store.stream.Stream`` the port uses (its id may be ``stream_id``)."""

    id: str
    memo: dict[str, Any]

    @property
    def next_n(self) -> int: ...

    def peek(self) -> Any: ...

    async def emit(self, event: Any, *, actor: str, cause: Ref | None = None) -> Ref: ...


@attrs.frozen
class Generated(Generic[T]):
    value: T
    ref: Ref
    attempts: int


class LlmExhaustedError(Exception):
    """Every attempt at a call failed validation."""

    def __init__(self, role: str, attempts: int, last_error: str, ref: Ref) -> None:
        super().__init__(f"{role}: no valid answer after {attempts} attempts; last error: {last_error}")
        self.role = role
        self.attempts = attempts
        self.last_error = last_error
        self.ref = ref


def render_messages(instructions: str, context: dict[str, Any], task: str) -> list[dict[str, Any]]:
    """Render a request as chat messages a real model can read.

    The structured context is embedded verbatim as JSON between ``<context>`` tags:
    real models need the facts, and it lets a simulated model behind an HTTP API
    (``scaleenv sim-server``) answer exactly as the in-process sim does. The shape of
    the answer is not here: the port ends the system message with it (:func:`with_shape`),
    as it knows the output type.
    """
    system = instructions
    user = f"{task}\n\n{CONTEXT_OPEN}\n{json.dumps(context, sort_keys=True)}\n{CONTEXT_CLOSE}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


OUTPUT_TOKENS: dict[str, int] = {
    # Answers that grow with the domain: a group of up to ~15 tool designs with their
    # contracts, every table of a domain of up to 22 (the paper's largest).
    "architect": 16384,
    "database": 16384,
    # One tool's code (with docstring and helpers), its test cases, a task's requests.
    "coder": 8192,
    "repairer": 8192,
    "tester": 8192,
    "task_writer": 8192,
}
"""Each role's ``max_tokens`` (4096 for the roles not listed). tests/llm/test_output_limits.py
keeps every limit at least twice the longest answer of its role in a real run, and
bench/synth.py prints the longest per role beside its limit."""
DEFAULT_OUTPUT_TOKENS = 4096


def output_tokens(role: str) -> int:
    """The ``max_tokens`` a request of ``role`` is sent with."""
    return OUTPUT_TOKENS.get(role, DEFAULT_OUTPUT_TOKENS)


def rendered_request(role: str, instructions: str, context: dict[str, Any], task: str) -> LlmRequest:
    """A request whose messages are rendered from its structured context (every synthesizer
    role and the simulated user; the rollout policy sends its conversation instead)."""
    return LlmRequest(role=role, messages=render_messages(instructions, context, task), context=context,
                      max_tokens=output_tokens(role))


@functools.lru_cache(maxsize=1024)
def shape_for(output_type: Any) -> str:
    """How to answer with ``output_type``, as text (:func:`.shape.shape_text` of its schema); cached."""
    return shape_text(schema_for(output_type)[0])


def with_shape(messages: list[dict[str, Any]], shape: str) -> list[dict[str, Any]]:
    """``messages`` with ``shape`` ending the first system message (or, with none, in a
    system message put first). Messages that already end with it are returned as they are."""
    for i, m in enumerate(messages):
        if m.get("role") == "system":
            content = m.get("content") or ""
            if not isinstance(content, str):  # content parts: the shape goes in a message of its own
                if messages[i + 1:i + 2] == [{"role": "system", "content": shape}]:
                    return messages
                return [*messages[:i + 1], {"role": "system", "content": shape}, *messages[i + 1:]]
            if content.endswith(shape):
                return messages
            return [*messages[:i], {**m, "content": f"{content}\n\n{shape}" if content else shape}, *messages[i + 1:]]
    return [{"role": "system", "content": shape}, *messages]


def parse_rendered(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The context a rendered request was made from (the inverse of render_messages).

    Only the first user message can carry the context, and only as render_messages writes
    it (a block that ends the message); anything else — a conversation in which a user
    happens to type ``<context>`` — has no context ({}). The request's role is never in
    its text: it travels beside it (``LlmRequest.role``, the ``LlmCalled`` event).
    """
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    content = str((first_user or {}).get("content") or "")
    opener, closer = f"\n{CONTEXT_OPEN}\n", f"\n{CONTEXT_CLOSE}"
    if content.endswith(closer) and opener in content:
        body = content[content.index(opener) + len(opener):-len(closer)]
        try:
            decoded = json.loads(body)
        except json.JSONDecodeError:
            return {}
        if isinstance(decoded, dict):
            return decoded
    return {}


def feedback_count(messages: list[dict[str, Any]]) -> int:
    """How many rejected answers were fed back already (the attempt number, from 0)."""
    return sum(1 for m in messages if m.get("role") == "user" and str(m.get("content", "")).startswith(REJECTED_PREFIX))


REJECTED_PREFIX = "Your previous answer was rejected:"

MAX_ANSWER_CHARS = 1 << 20
"""Longer answers are rejected (no schema here needs a megabyte) and stored only in part."""
STORED_PREFIX_CHARS = 16 << 10
"""How much of a too-long answer ``LlmCalled.raw`` keeps (its length and digest go in ``error``)."""
TOO_LONG = "answer too long:"
FEEDBACK_CHARS = 4000
"""How much of a rejected answer is fed back to the model on the retry."""


def clean_text(text: str) -> str:
    """``text`` as valid Unicode: lone surrogates (a JSON ``\\ud800`` a client decoded) become '?'.

    A str holding them cannot be encoded as UTF-8, so it could be neither validated nor stored.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode()
    return text


def bound_answer(completion: Completion) -> tuple[str, str | None]:
    """(text to validate and store, rejection or None) for one backend answer.

    An answer over :data:`MAX_ANSWER_CHARS` is rejected and only its first
    :data:`STORED_PREFIX_CHARS` are kept; the rejection names its full length and digest.
    A replayed partial answer carries its recorded rejection (``Completion.rejected``).
    """
    if completion.rejected is not None:
        return completion.text, completion.rejected
    text = clean_text(completion.text)
    if len(text) <= MAX_ANSWER_CHARS:
        return text, None
    digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return text[:STORED_PREFIX_CHARS], (
        f"{TOO_LONG} {len(text)} characters (limit {MAX_ANSWER_CHARS}; blake2b-128 {digest}); "
        f"only the first {STORED_PREFIX_CHARS} were kept")


def recorded_rejection(event: LlmCalled) -> str | None:
    """The rejection a replay of ``event`` must repeat without re-validating (a partial answer)."""
    return event.error if event.error is not None and event.error.startswith(TOO_LONG) else None


@functools.lru_cache(maxsize=1024)
def schema_for(output_type: Any) -> tuple[dict[str, Any], str]:
    """The JSON schema and name of an output type; cached (building it cost ~0.5 ms per call).

    The returned schema is shared between calls: treat it as read-only.
    """
    return msgspec.json.schema(output_type), getattr(output_type, "__name__", "output")


class EncodingCache:
    """Pre-encoded values a port passes again and again, for request digests (one per port).

    The schema of an output type and a domain's tool list are the same objects in every
    call (``schema_for`` and the rollout's offered tools share them), and were re-encoded
    for every request's digest. ``msgspec.Raw`` splices the cached bytes in verbatim, so
    the digest is byte-for-byte what encoding the value would give. Keyed by identity,
    holding the value itself so an id is never reused while cached. Only values that
    cannot change under the cache are cached: tuples (a tool list is passed as one) and
    schemas the port got from ``schema_for`` (shared and read-only) and :meth:`pin` ned.
    """

    def __init__(self, max_items: int = 512) -> None:
        self.max_items = max_items
        self._items: dict[int, tuple[Any, msgspec.Raw]] = {}

    def _store(self, value: Any) -> msgspec.Raw:
        if len(self._items) >= self.max_items:
            self._items.clear()
        raw = msgspec.Raw(msgspec.msgpack.encode(value, order="deterministic"))
        self._items[id(value)] = (value, raw)
        return raw

    def pin(self, schema: dict[str, Any]) -> None:
        """Cache a schema that will not change (one ``schema_for`` returned)."""
        hit = self._items.get(id(schema))
        if hit is None or hit[0] is not schema:
            self._store(schema)

    def encoded(self, value: Any) -> Any:
        """``value``, or its cached encoding when it is a pinned schema or a tuple."""
        hit = self._items.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        if type(value) is tuple:
            return self._store(value)
        return value


def request_digest(request: LlmRequest, json_schema: dict[str, Any], cache: EncodingCache | None = None,
                   messages: msgspec.Raw | None = None) -> str:
    """The digest of what a request asks (role, messages, schema, seed, sampling, tools).

    ``cache`` (a port's) reuses the encoding of schemas and tool tuples sent before;
    ``messages``: ``request.messages`` already encoded (:meth:`MessageEncodings.encode`).
    The digest is the same with or without either.
    """
    encoded = cache.encoded if cache is not None else (lambda v: v)
    payload = msgspec.msgpack.encode(
        {
            "role": request.role,
            "messages": request.messages if messages is None else messages,
            "schema": encoded(json_schema),
            "seed": request.seed,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "tools": encoded(request.tools),
        },
        order="deterministic",
    )
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


class MessageEncodings:
    """The canonical encoding of the messages the last call of each role sent, kept per stream.

    A conversation's requests grow one message at a time, and each request's digest
    encoded every message again (the square of the conversation's length: the largest
    share of the port's CPU in long episodes). The messages a call shares with the
    previous call of its role are the same dict objects (the episode fold appends, the
    port's retries extend), so :meth:`encode` finds that shared prefix by identity and
    encodes only the rest; the messages array goes into the digest as ``msgspec.Raw``,
    spliced in verbatim, so the digest is byte for byte what encoding the list gives. A
    message sent through the port is never changed afterwards (its ``LlmCalled`` event
    holds the very same dict and is encoded by the log writer later). Only the last call
    per role is kept (its message objects, so an id is never reused while cached).
    """

    __slots__ = ("_by_role",)

    def __init__(self) -> None:
        # role -> (the messages, the end offset of each one's encoding in body, body)
        self._by_role: dict[str, tuple[list[Any], list[int], bytes]] = {}

    def encode(self, role: str, messages: Sequence[Any]) -> msgspec.Raw:
        """``messages`` encoded as a msgpack array (what ``msgspec.msgpack.encode(messages,
        order="deterministic")`` gives); remembered as the role's last call."""
        messages = list(messages)
        prev = self._by_role.get(role)
        shared = 0
        if prev is not None:
            for x, y in zip(prev[0], messages):
                if x is not y:
                    break
                shared += 1
        if shared:
            ends = prev[1][:shared]  # type: ignore[index]
            body = prev[2][:ends[-1]] if shared < len(prev[1]) else prev[2]  # type: ignore[index]
        else:
            ends, body = [], b""
        if shared < len(messages):
            parts = [body]
            size = len(body)
            for m in messages[shared:]:
                b = msgspec.msgpack.encode(m, order="deterministic")
                parts.append(b)
                size += len(b)
                ends.append(size)
            body = b"".join(parts)
        self._by_role[role] = (messages, ends, body)
        return msgspec.Raw(_array_header(len(messages)) + body)


def _array_header(n: int) -> bytes:
    """The msgpack header of an array of ``n`` items."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


ENCODED_MESSAGES = "llm.encoded_messages"
"""Where a stream keeps its :class:`MessageEncodings` (``stream.memo``)."""
SHAPED = "llm.shaped"
"""Where a stream keeps the system message :func:`with_shape` made last, per role (``stream.memo``)."""


def shaped_messages(memo: dict[str, tuple[Any, str, dict[str, Any]]], role: str,
                    messages: list[dict[str, Any]], shape: str) -> list[dict[str, Any]]:
    """:func:`with_shape` of ``messages``, reusing the shaped system message the role's
    previous call got when its system message is the same object (so that the request's
    messages keep their identities from call to call: see :class:`MessageEncodings`)."""
    i = next((k for k, m in enumerate(messages) if m.get("role") == "system"), None)
    if i is not None:
        hit = memo.get(role)
        if hit is not None and hit[0] is messages[i] and hit[1] == shape:
            return [*messages[:i], hit[2], *messages[i + 1:]]
    out = with_shape(messages, shape)
    if i is not None and len(out) == len(messages) and out[i] is not messages[i]:
        memo[role] = (messages[i], shape, out[i])
    return out


@functools.lru_cache(maxsize=1024)
def strict_schema_for(output_type: Any) -> dict[str, Any]:
    """The schema of ``output_type`` in OpenAI's strict-mode subset (:func:`.strict.strict_schema`
    of :func:`schema_for`'s); cached and shared: treat it as read-only."""
    return strict_schema(schema_for(output_type)[0])


@functools.lru_cache(maxsize=1024)
def strict_reader_for(output_type: Any) -> Reader:
    """:func:`.strict.from_strict` for answers of ``output_type`` (:func:`.strict.strict_reader`); cached."""
    return strict_reader(strict_schema_for(output_type))


def validation_error(raw: str, output_type: type[T], shape: str = "") -> tuple[T | None, str | None]:
    """Decode and validate raw model text; (value, None) or (None, error message).

    ``shape``: the shape ``raw`` was asked in (``Completion.shape``); an answer in
    :data:`~.strict.STRICT_SHAPE` is decoded, mapped back as :func:`~.strict.from_strict`
    does and then validated."""
    data = raw.encode() if isinstance(raw, str) else raw
    try:
        if not shape:
            return msgspec.json.decode(data, type=output_type), None
        if shape != STRICT_SHAPE:
            return None, f"unknown answer shape {shape!r} (known: '', {STRICT_SHAPE!r})"
        value = strict_reader_for(output_type)(msgspec.json.decode(data))
        return msgspec.convert(value, output_type), None
    except msgspec.ValidationError as exc:
        return None, f"schema violation: {exc}"
    except msgspec.DecodeError as exc:
        return None, f"not valid JSON: {exc}"
    except RecursionError:
        return None, "not valid JSON: nested too deeply"


class _Held:
    """Hold a token of ``limiter``; with one free, take it without a trip through the
    scheduler (``async with limiter`` always yields once, and under load one trip costs
    milliseconds per call: the backend's own wait is the call's scheduling point).
    A class, not an ``asynccontextmanager``: this runs on every model call, and the
    generator machinery cost several times the work inside it."""

    __slots__ = ("limiter",)

    def __init__(self, limiter: trio.CapacityLimiter) -> None:
        self.limiter = limiter

    async def __aenter__(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.limiter.acquire_nowait()
        except trio.WouldBlock:
            await self.limiter.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.limiter.release()


@attrs.define
class Llm:
    """The port: a backend, a concurrency bound, the retry rule and the run seed."""

    backend: Backend
    run_seed: int
    limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(64))
    max_attempts: int = 3
    encodings: EncodingCache = attrs.field(factory=EncodingCache)

    async def generate(
        self,
        stream: StreamLike,
        request: LlmRequest,
        output_type: type[T],
        *,
        cause: Ref | None = None,
    ) -> Generated[T]:
        json_schema, schema_name = schema_for(output_type)
        self.encodings.pin(json_schema)
        # An answer that is one JSON object is asked for with its shape in the text (a model
        # behind vLLM or outlines is constrained to the schema but never sees it); a policy
        # offered tools answers in the API's own tool calls.
        memo = stream.memo
        messages = (list(request.messages) if request.tools else
                    shaped_messages(memo.setdefault(SHAPED, {}), request.role, list(request.messages),
                                    shape_for(output_type)))
        encodings: MessageEncodings = memo.get(ENCODED_MESSAGES) or memo.setdefault(ENCODED_MESSAGES, MessageEncodings())
        last_error = ""
        ref = cause
        for attempt in range(self.max_attempts):
            seed = derive_seed(self.run_seed, request.seed_name or stream.id, stream.next_n)
            req = msgspec.structs.replace(request, messages=messages, seed=seed, digest="")
            digest = request_digest(req, json_schema, self.encodings, encodings.encode(request.role, messages))
            req = msgspec.structs.replace(req, digest=digest)
            completion = self._recorded(stream, digest)
            if completion is None:
                async with _Held(self.limiter):
                    start = time.perf_counter()
                    try:
                        completion = await self.backend.complete(req, json_schema, schema_name)
                    except RecordedDivergence as exc:
                        # Record what was asked: against a recorded stream this emit raises the
                        # stream's Divergence (first differing field, both sides); otherwise the
                        # request is kept in the log before the error stops this agent.
                        stored = self._stored(stream, request.role, messages, schema_name, json_schema,
                                              request.tools)
                        await stream.emit(
                            LlmCalled(role=request.role, backend=self.backend.name, model=self.backend.model,
                                      request_digest=digest, messages=stored.messages, schema_name=schema_name,
                                      json_schema=stored.json_schema, seed=seed, attempt=attempt, raw="",
                                      error=str(exc), base_n=stored.base_n, base_len=stored.base_len,
                                      schema_n=stored.schema_n, tools=stored.tools, tools_n=stored.tools_n),
                            actor=request.role, cause=cause,
                        )
                        raise
                    if not completion.latency_s:
                        completion = msgspec.structs.replace(completion, latency_s=time.perf_counter() - start)
            text, error = bound_answer(completion)
            value = None
            if error is None:
                value, error = validation_error(text, output_type, completion.shape)
            if error is not None:
                completion = msgspec.structs.replace(completion, token_ids=None, logprobs=None)
            stored = self._stored(stream, request.role, messages, schema_name, json_schema, request.tools)
            ref = await stream.emit(
                LlmCalled(
                    role=request.role,
                    backend=completion.backend or self.backend.name,
                    model=completion.model or self.backend.model,
                    request_digest=digest,
                    messages=stored.messages,
                    schema_name=schema_name,
                    json_schema=stored.json_schema,
                    base_n=stored.base_n,
                    base_len=stored.base_len,
                    schema_n=stored.schema_n,
                    seed=seed,
                    attempt=attempt,
                    raw=text,
                    parsed=msgspec.to_builtins(value) if error is None else None,
                    error=error,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    latency_s=completion.latency_s,
                    token_ids=completion.token_ids,
                    logprobs=completion.logprobs,
                    answer_shape=completion.shape,
                    tools=stored.tools,
                    tools_n=stored.tools_n,
                ),
                actor=request.role,
                cause=cause,
            )
            calls_of(stream).note(ref.n, request.role, messages, schema_name, json_schema,
                                  carried_schema=stored.json_schema is not None,
                                  carried_tools=request.tools if stored.tools is not None else None)
            if error is None:
                return Generated(value, ref, attempt + 1)  # type: ignore[arg-type]
            last_error = error
            messages = [
                *messages,
                {"role": "assistant", "content": text[:FEEDBACK_CHARS]},
                {"role": "user", "content": f"{REJECTED_PREFIX} {error}\nAnswer again with one JSON object that matches the schema."},
            ]
        ref = await stream.emit(
            LlmExhausted(role=request.role, attempts=self.max_attempts, last_error=last_error),
            actor=request.role,
            cause=ref,
        )
        raise LlmExhaustedError(request.role, self.max_attempts, last_error, ref)

    @staticmethod
    def _stored(stream: StreamLike, role: str, messages: list[dict[str, Any]], schema_name: str,
                json_schema: dict[str, Any], tools: Sequence[dict[str, Any]] | None) -> Delta:
        """How this call's request is stored: relative to the stream's earlier calls, or as
        the stream's recorded call at this position was, which a re-run must reproduce:
        whole where it is stored whole (a log of format 1), without the offered tools
        where it records none (a log older than format 3)."""
        record = stream.peek()
        old = record.event if record is not None and isinstance(record.event, LlmCalled) else None
        if old is not None and tools and old.tools is None and old.tools_n is None:
            tools = None  # recorded before calls recorded their tools
        if old is not None and old.whole:
            return Delta(messages, None, 0, json_schema, None, list(tools) if tools else None, None)
        return calls_of(stream).delta(role, messages, schema_name, json_schema, tools)

    @staticmethod
    def _recorded(stream: StreamLike, digest: str) -> Completion | None:
        record = stream.peek()
        if record is None:
            return None
        event = record.event
        if isinstance(event, LlmCalled) and event.request_digest == digest:
            return Completion(
                text=event.raw,
                prompt_tokens=event.prompt_tokens,
                completion_tokens=event.completion_tokens,
                latency_s=event.latency_s,
                token_ids=event.token_ids,
                logprobs=event.logprobs,
                backend=event.backend,
                model=event.model,
                rejected=recorded_rejection(event),
                shape=event.answer_shape,
            )
        return None

    async def aclose(self) -> None:
        await self.backend.aclose()
