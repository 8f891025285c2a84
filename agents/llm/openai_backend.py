"""outlines over any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, Ollama, OpenAI).

Runs under trio: ``openai.AsyncOpenAI`` does its I/O through an httpx-style client whose
async transport is built on anyio, and anyio detects the running event loop (sniffio)
and uses its trio backend, so awaiting the client (or outlines' async model wrapping it)
inside a trio task needs no asyncio loop and no thread. ``tests/llm`` runs it under
pytest-trio against the sim server over a real loopback socket.

Two paths:

- no tools: ``outlines.from_openai(client, model)`` (or ``from_vllm`` for ``flavor="vllm"``)
  awaited with ``outlines.types.JsonSchema(schema)``; outlines turns it into
  ``response_format: json_schema`` (vLLM: ``structured_outputs``) and returns the raw
  text, which the port validates;
- tools offered (the rollout policy): outlines does not do tool calls, so the chat
  completions API is called directly with ``tools`` and the returned message is folded
  into the output type's JSON (:mod:`scaleenv.agents.llm.tool_calls`).

Token usage: outlines returns only the text, so each request carries an
``x-scaleenv-call`` header and an httpx response hook keeps the ``usage`` of the
response with that id. The openai client's own retries are off (``max_retries=0``);
transient failures (connection refused/reset, timeouts, 429, 5xx) are retried here a
bounded number of times with exponential backoff, then raised as :class:`BackendError`.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any, Literal

import attrs
import trio

from .errors import BackendError
from .port import Completion, LlmRequest
from .tool_calls import message_to_text
from scaleenv.logs import get_logger

log = get_logger("scaleenv.llm.openai")

CALL_HEADER = "x-scaleenv-call"
ROLE_HEADER = "x-scaleenv-role"
"""The role a request is for, out of band (``scaleenv sim-server`` reads it; real servers ignore it)."""
Flavor = Literal["openai", "vllm"]
_RETRY_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))


def _usage_of(body: bytes) -> tuple[int, int]:
    try:
        usage = json.loads(body).get("usage") or {}
    except (ValueError, AttributeError):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _sdk() -> Any:
    """The openai and outlines modules, imported on first use (together ~1.3 s: a run on the
    sim, and ``scaleenv --help``, never pay for them)."""
    import openai
    import outlines
    import outlines.exceptions
    import outlines.inputs
    import outlines.types

    return openai, outlines


def classify(exc: BaseException) -> tuple[bool, int | None, str] | None:
    """(retryable, HTTP status, detail) for a transport/HTTP failure, or None if it is not one."""
    openai, outlines = _sdk()
    if isinstance(exc, outlines.exceptions.APIError):
        inner = exc.original_exception
        if inner is not None and classify(inner) is not None:
            return classify(inner)
        return exc.retryable, exc.status_code, str(exc)
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRY_STATUSES, exc.status_code, _status_detail(exc)
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        cause = exc.__cause__ or exc.__context__
        return True, None, f"{exc}" + (f" ({type(cause).__name__}: {cause})" if cause else "")
    return None


def _status_detail(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(exc)


@attrs.define
class OpenAIBackend:
    """outlines over an OpenAI-compatible server at ``base_url`` (which ends in ``/v1``)."""

    base_url: str
    model: str
    api_key: str = "EMPTY"
    flavor: Flavor = "openai"
    timeout_s: float = 600.0
    retries: int = 4  # extra attempts for transient failures
    backoff_s: float = 0.5  # first backoff; doubles each time, capped at backoff_max_s
    backoff_max_s: float = 8.0
    name: str = "openai"
    _client: Any = attrs.field(init=False)
    _outlines: Any = attrs.field(init=False)
    _usage: dict[str, tuple[int, int]] = attrs.field(init=False, factory=dict)
    _ids: Any = attrs.field(init=False, factory=lambda: itertools.count(1))

    def __attrs_post_init__(self) -> None:
        openai, outlines = _sdk()
        http_client = openai.DefaultAsyncHttpxClient(event_hooks={"response": [self._on_response]})
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key or "EMPTY", max_retries=0,
            timeout=self.timeout_s, http_client=http_client,
        )
        loader = outlines.from_vllm if self.flavor == "vllm" else outlines.from_openai
        self._outlines = loader(self._client, self.model)
        if self.flavor == "vllm":
            self.name = "vllm"

    async def _on_response(self, response: Any) -> None:
        call_id = response.request.headers.get(CALL_HEADER)
        if call_id is not None and response.status_code == 200:
            await response.aread()
            self._usage[call_id] = _usage_of(response.content)

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        call_id = str(next(self._ids))
        start = time.perf_counter()
        try:
            text = await self._with_retries(request, json_schema, call_id)
            prompt_tokens, completion_tokens = self._usage.get(call_id, (0, 0))
        finally:
            self._usage.pop(call_id, None)
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          latency_s=time.perf_counter() - start)

    async def _with_retries(self, request: LlmRequest, json_schema: dict[str, Any], call_id: str) -> str:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return await self._once(request, json_schema, call_id)
            except Exception as exc:
                kind = classify(exc)
                if kind is None:
                    raise
                retryable, status, detail = kind
                if not retryable or attempt == self.retries:
                    raise BackendError(self.name, self.base_url, detail, status=status,
                                       retryable=retryable, attempts=attempt + 1) from exc
                log.warning("transient backend failure; retrying", url=self.base_url, status=status,
                            detail=detail, attempt=attempt + 1, backoff_s=delay)
                await trio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
        raise AssertionError("unreachable")

    async def _once(self, request: LlmRequest, json_schema: dict[str, Any], call_id: str) -> str:
        kwargs: dict[str, Any] = {
            "seed": request.seed, "temperature": request.temperature, "max_tokens": request.max_tokens,
            "extra_headers": {CALL_HEADER: call_id, ROLE_HEADER: request.role},
        }
        if request.tools:
            result = await self._client.chat.completions.create(
                model=self.model, messages=request.messages, tools=request.tools, **kwargs  # type: ignore[arg-type]
            )
            message = result.choices[0].message
            calls = [c.model_dump(mode="json") for c in (message.tool_calls or [])]
            return message_to_text(message.content, calls, json_schema)
        _, outlines = _sdk()
        text = await self._outlines(outlines.inputs.Chat(list(request.messages)), outlines.types.JsonSchema(json_schema), **kwargs)
        return text if isinstance(text, str) else ""

    async def aclose(self) -> None:
        await self._client.close()
