"""Events of the LLM port: every model call, every attempt.

A call's conversation grows turn by turn, and each attempt used to store all of it
again, with the whole JSON schema: a log's size grew with the square of a conversation's
length. Since log format 2 an ``LlmCalled`` may instead *refer* to an earlier call of
the same stream:

- ``base_n``/``base_len``: the conversation is the first ``base_len`` messages of the
  call at stream position ``base_n``, followed by ``messages``;
- ``schema_n``: the JSON schema is the one the call at ``schema_n`` carries
  (``json_schema`` is then None).

Since log format 3 a call that offered the model tools (the rollout policy) records them:
the first call of a stream offering a tool list carries it (``tools``), later calls
offering the same list refer to it (``tools_n``), as schemas are. A call of an older log
that offered tools records neither (None: not recorded; the tools a task's episodes offer
can still be derived from the task, ``scaleenv._model.tool_schemas.environment_tools``).

A call without references (every call of a format-1 log) carries everything itself.
:class:`CallResolver` turns stored calls back into whole ones; everything that shows or
compares a call's request (audits, the recorded backend) reads it through one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from .base import Event


class LlmCalled(Event, tag="llm.called"):
    """One attempt at one model call, with what was sent and what came back.

    ``parsed`` holds the validated output (as builtins) or ``error`` says why the raw
    text was rejected; a rejected attempt is followed by a retry in the same stream.
    ``raw`` is the answer as the model gave it; ``answer_shape`` says how it was asked
    for: ``""`` in ``json_schema``'s own shape, ``"openai-strict"`` in the shape of
    OpenAI's strict mode (the request carried ``agents.llm.strict.strict_schema`` of
    ``json_schema``, and ``raw`` is mapped back with ``from_strict`` before validation).
    ``tools`` are the OpenAI function tools the call offered (None: none offered, or
    a log older than format 3). ``messages``/``json_schema``/``tools`` may be relative
    to earlier calls of the stream (see the module doc and :meth:`whole`).
    """

    role: str
    backend: str
    model: str
    request_digest: str
    messages: list[dict[str, Any]]
    schema_name: str
    seed: int
    attempt: int
    raw: str
    json_schema: dict[str, Any] | None = None
    parsed: Any = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    base_n: int | None = None
    base_len: int = 0
    schema_n: int | None = None
    answer_shape: str = ""
    tools: list[dict[str, Any]] | None = None
    tools_n: int | None = None

    digest_exclude: ClassVar[frozenset[str]] = frozenset({"latency_s"})
    digest_added: ClassVar[tuple[tuple[str, object], ...]] = (("base_n", None), ("base_len", 0), ("schema_n", None),
                                                               ("answer_shape", ""), ("tools", None), ("tools_n", None))

    @property
    def whole(self) -> bool:
        """True when the event carries its whole request (no reference to an earlier call)."""
        return self.base_n is None and self.schema_n is None and self.tools_n is None


class LlmExhausted(Event, tag="llm.exhausted"):
    """Every attempt of a call failed validation; the caller decides what follows."""

    role: str
    attempts: int
    last_error: str


class UnresolvableCall(ValueError):
    """A stored ``LlmCalled`` refers to a call its stream does not hold (a damaged or foreign log)."""

    def __init__(self, stream: str, n: int, detail: str) -> None:
        super().__init__(f"llm.called at {stream}#{n} cannot be resolved: {detail}")
        self.stream = stream
        self.n = n


class CallResolver:
    """Folds stored ``LlmCalled`` events, in stream order, into whole calls.

    Feed it every ``LlmCalled`` of a stream in order (records of several streams may be
    interleaved, as in a log's global order); :meth:`resolve` returns the call with its
    whole conversation, schema and offered tools and no references, or raises
    :class:`UnresolvableCall`. It keeps each call's conversation, schema and tools
    (shared, not copied) until :meth:`forget` drops a stream.
    """

    def __init__(self) -> None:
        self._refs = CallRefs()
        self._calls: dict[str, dict[int, tuple[list[dict[str, Any]], dict[str, Any],
                                              list[dict[str, Any]] | None]]] = {}

    def resolve(self, stream: str, n: int, event: LlmCalled) -> LlmCalled:
        problem = self._refs.problem(stream, n, event)
        if problem is not None:
            raise UnresolvableCall(stream, n, problem)
        seen = self._calls.setdefault(stream, {})
        messages, schema, tools = event.messages, event.json_schema, event.tools
        if event.base_n is not None:
            messages = [*seen[event.base_n][0][:event.base_len], *messages]
        if event.schema_n is not None:
            schema = seen[event.schema_n][1]
        if event.tools_n is not None:
            tools = seen[event.tools_n][2]
        assert schema is not None  # CallRefs.problem: a call without schema_n carries one
        seen[n] = (messages, schema, tools)
        if event.whole:
            return event
        return msgspec.structs.replace(event, messages=messages, json_schema=schema, tools=tools,
                                       base_n=None, base_len=0, schema_n=None, tools_n=None)

    def forget(self, stream: str) -> None:
        self._calls.pop(stream, None)
        self._refs.forget(stream)


class CallRefs:
    """Checks the references of stored calls without keeping their messages (``log check``).

    Keeps, per stream, each call's resolved message count and whether it offered tools;
    :meth:`problem` says what is wrong with a call's references, or None.
    """

    def __init__(self) -> None:
        self._calls: dict[str, dict[int, int]] = {}
        self._tooled: dict[str, set[int]] = {}

    def problem(self, stream: str, n: int, event: LlmCalled) -> str | None:
        seen = self._calls.setdefault(stream, {})
        count = len(event.messages)
        if event.base_n is not None:
            base = seen.get(event.base_n) if event.base_n < n else None
            if base is None:
                return f"base_n={event.base_n} is not an earlier llm.called of the stream"
            if not 0 < event.base_len <= base:
                return f"base_len={event.base_len} but the call at {event.base_n} has {base} messages"
            count += event.base_len
        if event.schema_n is not None:
            if event.schema_n >= n or event.schema_n not in seen:
                return f"schema_n={event.schema_n} is not an earlier llm.called of the stream"
        elif event.json_schema is None:
            return "it carries no json_schema and names no schema_n"
        tooled = self._tooled.setdefault(stream, set())
        if event.tools_n is not None:
            if event.tools is not None:
                return f"it carries tools and names tools_n={event.tools_n}"
            if event.tools_n >= n or event.tools_n not in tooled:
                return f"tools_n={event.tools_n} is not an earlier llm.called of the stream that offered tools"
        seen[n] = count
        if event.tools is not None or event.tools_n is not None:
            tooled.add(n)
        return None

    def forget(self, stream: str) -> None:
        self._calls.pop(stream, None)
        self._tooled.pop(stream, None)


LLM_EVENTS = (LlmCalled, LlmExhausted)
