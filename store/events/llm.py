"""Events of the LLM port: every model call, every attempt."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Event


class LlmCalled(Event, tag="llm.called"):
    """One attempt at one model call, with what was sent and what came back.

    ``parsed`` holds the validated output (as builtins) or ``error`` says why the raw
    text was rejected; a rejected attempt is followed by a retry in the same stream.
    """

    role: str
    backend: str
    model: str
    request_digest: str
    messages: list[dict[str, Any]]
    schema_name: str
    json_schema: dict[str, Any]
    seed: int
    attempt: int
    raw: str
    parsed: Any = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None

    digest_exclude: ClassVar[frozenset[str]] = frozenset({"latency_s"})


class LlmExhausted(Event, tag="llm.exhausted"):
    """Every attempt of a call failed validation; the caller decides what follows."""

    role: str
    attempts: int
    last_error: str


LLM_EVENTS = (LlmCalled, LlmExhausted)
