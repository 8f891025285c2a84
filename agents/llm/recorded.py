"""The recorded backend: serves the model outputs of an earlier log (deterministic re-runs).

Every ``LlmCalled`` event of the earlier log is indexed by its request digest
(:func:`port.request_digest`, which covers role, messages, schema, seed, temperature,
max_tokens and tools). A request is answered with the raw text recorded for the same
digest; when several recorded calls share a digest they are served in recorded order.
A request no recorded call answers raises :class:`RecordedDivergence`, naming the first
field that differs from the closest recorded request of the same role.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs
import trio

from scaleenv._store.events.llm import CallResolver, LlmCalled
from scaleenv._store.record import Record, decode_envelope, peek_tag
from scaleenv._store.log import Log
from scaleenv._logs import get_logger

from .errors import RecordedDivergence
from .port import Completion, LlmRequest, recorded_rejection, request_digest

log = get_logger("scaleenv.llm.recorded")

SNIPPET = 40
LLM_CALLED = "llm.called"


def whole_calls(records: Iterable[Record]) -> list[LlmCalled]:
    """Every ``LlmCalled`` among ``records`` (a log's, in log order), each whole: with its
    full conversation and schema (stored calls may refer to earlier ones)."""
    resolver = CallResolver()
    return [resolver.resolve(r.stream, r.n, r.event) for r in records if isinstance(r.event, LlmCalled)]


def log_calls(source: Log) -> list[LlmCalled]:
    """:func:`whole_calls` of every record of ``source``, decoding only its model calls:
    each record's frame is checked and its tag read (:func:`decode_envelope`,
    :func:`peek_tag`), and only ``llm.called`` events are decoded (the others, a task's
    database states among them, are not). Raises :class:`RecordDamaged` for a damaged
    record, as reading the log does."""
    resolver = CallResolver()
    decode = source.codec.decode
    out = []
    for chunk in source.read_raw():
        for seq, raw in chunk:
            envelope = decode_envelope(raw, seq)
            if peek_tag(envelope.event, seq) == LLM_CALLED:
                r = decode(raw, seq)
                out.append(resolver.resolve(r.stream, r.n, r.event))
    return out


def read_calls(log_path: str | os.PathLike[str]) -> list[LlmCalled]:
    """Every ``LlmCalled`` event of the log at ``log_path``, whole, in log order."""
    with Log.open(log_path, readonly=True) as source:
        return log_calls(source)


def _snippet(text: str, at: int) -> str:
    lo = max(0, at - 10)
    return repr(text[lo:at + SNIPPET - 10])


def _first_text_difference(expected: str, got: str) -> tuple[int, str]:
    at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    if at == len(expected) == len(got):
        return at, ""
    return at, f"differs at char {at}: expected {_snippet(expected, at)} got {_snippet(got, at)}"


def first_difference(recorded: LlmCalled, request: LlmRequest, schema: dict[str, Any], schema_name: str) -> tuple[str, str]:
    """(field, detail) of the first difference between a recorded call and a request."""
    if recorded.schema_name != schema_name or recorded.json_schema != schema:
        return "schema", f"differs: expected {recorded.schema_name!r}, got {schema_name!r}" + (
            " (same name, different JSON schema)" if recorded.schema_name == schema_name else "")
    exp, got = recorded.messages, request.messages
    for i, (a, b) in enumerate(zip(exp, got)):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                va, vb = a.get(key), b.get(key)
                if isinstance(va, str) and isinstance(vb, str):
                    return f"messages[{i}].{key}", _first_text_difference(va, vb)[1]
                return f"messages[{i}].{key}", f"differs: expected {va!r:.80} got {vb!r:.80}"
    if len(exp) != len(got):
        return "messages", f"count differs: expected {len(exp)} got {len(got)}"
    if recorded.seed != request.seed:
        return "seed", f"differs: expected {recorded.seed} got {request.seed}"
    if recorded.tools is not None and recorded.tools != list(request.tools or ()):
        return "tools", f"differ: expected {len(recorded.tools)} tools, got {len(request.tools or ())} (or other ones)"
    return "temperature/max_tokens/tools", "differ (the digest covers them; the event does not record them)"


def _closeness(recorded: LlmCalled, request: LlmRequest, schema: dict[str, Any]) -> tuple[int, int, int, int]:
    """Bigger is closer: same schema, equal leading messages, shared prefix of the next one, same seed."""
    same = 0
    prefix = 0
    for a, b in zip(recorded.messages, request.messages):
        if a == b:
            same += 1
            continue
        ca, cb = str(a.get("content", "")), str(b.get("content", ""))
        prefix = next((i for i, (x, y) in enumerate(zip(ca, cb)) if x != y), min(len(ca), len(cb)))
        break
    return int(recorded.json_schema == schema), same, prefix, int(recorded.seed == request.seed)


@attrs.define
class RecordedBackend:
    """Answers requests from the ``LlmCalled`` events of an earlier log (whole ones:
    :func:`whole_calls`, :func:`read_calls`)."""

    calls: list[LlmCalled]
    source: str = ""
    name: str = "recorded"
    model: str = ""
    _by_digest: dict[str, deque[LlmCalled]] = attrs.field(init=False, factory=dict)
    _served: dict[str, int] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        partial = next((c for c in self.calls if not c.whole), None)
        if partial is not None:
            raise ValueError(f"RecordedBackend needs whole calls, got one that refers to earlier calls "
                             f"(role {partial.role!r}): read them with whole_calls() or read_calls()")
        for call in self.calls:
            self._by_digest.setdefault(call.request_digest, deque()).append(call)
        if not self.model:
            self.model = self.calls[0].model if self.calls else "recorded"
        log.info("recorded calls loaded", source=self.source, calls=len(self.calls), digests=len(self._by_digest))

    @classmethod
    def from_log(cls, log_path: str | os.PathLike[str]) -> RecordedBackend:
        return cls(read_calls(log_path), source=str(log_path))

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        await trio.lowlevel.checkpoint()  # as any model call would: other tasks run meanwhile
        return self.answer(request, json_schema, schema_name)

    def answer(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        """The recorded answer to ``request`` (``complete`` without its scheduling point)."""
        digest = request.digest or request_digest(request, json_schema)
        queue = self._by_digest.get(digest)
        if queue:
            call = queue.popleft()
            self._served[digest] = self._served.get(digest, 0) + 1
            return Completion(
                text=call.raw, prompt_tokens=call.prompt_tokens, completion_tokens=call.completion_tokens,
                latency_s=call.latency_s, token_ids=call.token_ids, logprobs=call.logprobs,
                backend=call.backend, model=call.model, rejected=recorded_rejection(call), shape=call.answer_shape,
            )
        raise self._divergence(request, json_schema, schema_name, digest)

    def _divergence(self, request: LlmRequest, schema: dict[str, Any], schema_name: str, digest: str) -> RecordedDivergence:
        if digest in self._served:
            return RecordedDivergence(request.role, "call count",
                                      f"exceeded: the recorded run made this exact request {self._served[digest]} time(s)")
        same_role = [c for c in self.calls if c.role == request.role]
        if not same_role:
            roles = sorted({c.role for c in self.calls})
            return RecordedDivergence(request.role, "role", f"never called in the recorded run (recorded roles: {roles})")
        closest = max(same_role, key=lambda c: _closeness(c, request, schema))
        field, detail = first_difference(closest, request, schema, schema_name)
        return RecordedDivergence(request.role, field, detail)

    async def aclose(self) -> None:
        return None
