"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, Ollama, OpenAI) behind the port.

The backend of ``--llm openai:URL`` and ``--llm vllm:URL``. Each attempt is one chat
completion through :class:`~.openai_client.OpenAIClient` (pooled keep-alive HTTP/1.1 on
trio, msgspec in and out, retries and timeouts as that module says):

- no tools offered: the request carries the constraint outlines builds for the output
  type's JSON schema (:mod:`.constraint`: ``response_format`` json_schema, strict, for
  ``openai``, of the schema rewritten into the subset OpenAI's strict mode accepts;
  ``structured_outputs`` of the schema itself for ``vllm``) and the messages as outlines
  sends them; the answer's ``content`` is the raw text the port validates (for
  ``openai`` it is in the strict shape: ``Completion.shape`` says so, and the port maps
  it back with :func:`.strict.from_strict` first);
- tools offered (the rollout policy): ``tools`` go as the chat API takes them, with the
  conversation as it is, and the returned message (content and tool calls) is folded
  into the output type's JSON (:mod:`.tool_calls`).

``stream=True`` asks for server-sent events and folds them into the same completion
(``on_chunk`` sees each chunk as it comes; ``client.chat_stream`` hands them out raw);
``logprobs=True`` asks for per-token log-probabilities (and, from vLLM, token ids), which
the port keeps on valid answers. Usage comes from the response's ``usage``. Each request
also carries an ``x-scaleenv-role`` header naming the role it is for (``scaleenv
sim-server`` reads it; real servers ignore it). A refusal (``message.refusal`` with no
content) is returned as the answer's text: the port rejects it and asks again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import attrs
import msgspec

from .constraint import EncodedParts, chat_messages
from .errors import BackendError
from .openai_client import OpenAIClient
from .openai_wire import ChatChunk, ChatCompletion, Choice
from .port import Completion, LlmRequest
from .retry import RetryPolicy
from .strict import STRICT_SHAPE
from .tool_calls import message_to_text

ROLE_HEADER = "x-scaleenv-role"
"""The role a request is for, out of band (``scaleenv sim-server`` reads it; real servers ignore it)."""
Flavor = Literal["openai", "vllm"]

_encode = msgspec.json.Encoder().encode
_STREAM_OPTIONS = msgspec.Raw(b'{"include_usage":true}')


def role_header(role: str) -> bytes:
    """The ``x-scaleenv-role`` header line for ``role`` (printable ASCII only: no header injection)."""
    safe = "".join(ch for ch in role if " " <= ch <= "~")
    return f"{ROLE_HEADER}: {safe}\r\n".encode("ascii")


def token_data(choice: Choice) -> tuple[list[int] | None, list[float] | None]:
    """(token ids, logprobs) of a choice, where the server returned them.

    Token ids come from vLLM's ``token_ids`` (``return_token_ids``) or from logprob
    tokens spelt ``token_id:N`` (``return_tokens_as_token_ids``)."""
    entries = choice.logprobs.content if choice.logprobs is not None else None
    logprobs = [e.logprob for e in entries] if entries else None
    ids = choice.token_ids
    if ids is None and entries and all(e.token.startswith("token_id:") for e in entries):
        try:
            ids = [int(e.token[9:]) for e in entries]
        except ValueError:
            ids = None
    return ids, logprobs


@attrs.define(eq=False)
class OpenAIBackend:
    """Chat completions from the OpenAI-compatible server at ``base_url`` (ending in ``/v1``)."""

    base_url: str
    model: str
    api_key: str = "EMPTY"
    flavor: Flavor = "openai"
    timeout_s: float = 600.0  # one attempt: connect, send, whole response
    connect_timeout_s: float = 10.0
    retries: int = 4  # extra attempts for failures the server cannot have acted on
    unsafe_retries: int = 1  # of which, for failures it may have acted on (each logged)
    backoff_s: float = 0.5  # first backoff; doubles each time, capped at backoff_max_s, jittered
    backoff_max_s: float = 8.0
    retry_after_max_s: float = 60.0
    max_connections: int = 1024
    stream: bool = False
    on_chunk: Callable[[ChatChunk], None] | None = None  # with stream=True: sees each chunk as it comes
    logprobs: bool = False
    name: str = "openai"
    client: OpenAIClient = attrs.field(init=False)
    _parts: EncodedParts = attrs.field(init=False)
    _role_headers: dict[str, bytes] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self._parts = EncodedParts(self.flavor)
        if self.flavor == "vllm" and self.name == "openai":
            self.name = "vllm"
        policy = RetryPolicy(retries=self.retries, unsafe_retries=self.unsafe_retries, base_s=self.backoff_s,
                             max_s=self.backoff_max_s, retry_after_max_s=self.retry_after_max_s)
        self.client = OpenAIClient(self.base_url, api_key=self.api_key, name=self.name, timeout_s=self.timeout_s,
                                   connect_timeout_s=self.connect_timeout_s, policy=policy,
                                   max_connections=self.max_connections)

    def body(self, request: LlmRequest, json_schema: dict[str, Any]) -> bytes:
        """The encoded chat-completions request for one attempt (what goes on the wire)."""
        body: dict[str, Any]
        if request.tools:
            body = {"model": self.model, "messages": request.messages, "max_tokens": request.max_tokens,
                    "seed": request.seed, "temperature": request.temperature, "tools": self._parts.tools(request.tools)}
        else:
            body = {"model": self.model, "messages": chat_messages(request.messages),
                    "max_tokens": request.max_tokens, **self._parts.constraint(json_schema),
                    "seed": request.seed, "temperature": request.temperature}
        if self.logprobs:
            body["logprobs"] = True
            if self.flavor == "vllm":
                body["return_token_ids"] = True
        if self.stream:
            body["stream"] = True
            body["stream_options"] = _STREAM_OPTIONS
        return _encode(body)

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        """One attempt's answer. Awaits the server (retries included); raises
        :class:`BackendError`. On cancellation the connection in use is closed."""
        start = time.perf_counter()
        data = self.body(request, json_schema)
        headers = self._role_headers.get(request.role)
        if headers is None:
            headers = self._role_headers[request.role] = role_header(request.role)
        if self.stream:
            result = await self.client.chat_folded(data, headers, self.on_chunk)
        else:
            result = await self.client.chat(data, headers)
        return self.completion(result, request, json_schema, time.perf_counter() - start)

    def completion(self, result: ChatCompletion, request: LlmRequest, json_schema: dict[str, Any],
                   latency_s: float) -> Completion:
        """The port's view of a chat completion: the text to validate, tokens and timing."""
        if not result.choices:
            raise BackendError(self.name, self.base_url, "the completion has no choices", kind="malformed")
        choice = result.choices[0]
        message = choice.message
        content = message.content if message.content is not None else message.refusal
        shape = ""
        if request.tools:
            calls = [{"id": c.id, "type": c.type, "function": {"name": c.function.name, "arguments": c.function.arguments}}
                     for c in message.tool_calls or ()]
            text = message_to_text(content, calls, json_schema)
        else:
            text = content or ""
            shape = STRICT_SHAPE if self.flavor == "openai" else ""
        token_ids, logprobs = token_data(choice)
        usage = result.usage
        return Completion(text=text, prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0, latency_s=latency_s,
                          token_ids=token_ids, logprobs=logprobs, shape=shape)

    async def aclose(self) -> None:
        await self.client.aclose()


__all__ = ["ROLE_HEADER", "ChatChunk", "Flavor", "OpenAIBackend", "token_data"]
