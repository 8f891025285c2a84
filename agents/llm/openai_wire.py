"""The OpenAI chat-completions protocol as msgspec types: responses, stream chunks, errors.

Decoding a response with these types validates it and builds typed objects in one pass
(fields the client does not read are skipped, unknown fields ignored); a body that is not
JSON or has a wrong type anywhere is a ``msgspec.DecodeError``/``ValidationError``, which
the client reports as a malformed response. Shapes follow OpenAI's API reference and
vLLM's extensions (``token_ids``, ``prompt_token_ids`` with ``return_token_ids``; tokens
spelt ``token_id:N`` with ``return_tokens_as_token_ids``).

:func:`fold_chunks` turns a server-sent-event stream's chunks into the
:class:`ChatCompletion` the same request would have returned unstreamed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec


class FunctionCall(msgspec.Struct, omit_defaults=True):
    name: str = ""
    arguments: str = ""


class ToolCall(msgspec.Struct, omit_defaults=True):
    function: FunctionCall
    id: str = ""
    type: str = "function"


class TokenLogprob(msgspec.Struct):
    token: str
    logprob: float


class ChoiceLogprobs(msgspec.Struct):
    content: list[TokenLogprob] | None = None


class Message(msgspec.Struct):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(msgspec.Struct):
    message: Message
    index: int = 0
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    token_ids: list[int] | None = None  # vLLM, with return_token_ids


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(msgspec.Struct):
    choices: list[Choice]
    id: str = ""
    model: str = ""
    usage: Usage | None = None
    prompt_token_ids: list[int] | None = None  # vLLM, with return_token_ids


class FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None


class Delta(msgspec.Struct):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(msgspec.Struct):
    delta: Delta = msgspec.field(default_factory=Delta)
    index: int = 0
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    token_ids: list[int] | None = None


class ErrorDetail(msgspec.Struct):
    message: str = ""
    type: str | None = None
    code: int | str | None = None


class ChatChunk(msgspec.Struct):
    """One ``data:`` event of a streamed completion (or an error a server streams instead)."""

    choices: list[ChunkChoice] = []
    id: str = ""
    model: str = ""
    usage: Usage | None = None
    prompt_token_ids: list[int] | None = None
    error: ErrorDetail | None = None
    # vLLM's older error shape: {"object": "error", "message": ..., "code": ...}
    object: str = ""
    message: str | None = None


class ErrorBody(msgspec.Struct):
    """An error response: OpenAI's ``{"error": {...}}``, vLLM's older flat shape, FastAPI's ``detail``."""

    error: ErrorDetail | str | None = None
    message: str | None = None
    detail: Any = None

    def text(self) -> str:
        if isinstance(self.error, ErrorDetail) and self.error.message:
            return self.error.message
        if isinstance(self.error, str) and self.error:
            return self.error
        if self.message:
            return self.message
        if self.detail is not None:
            return str(self.detail)
        return ""


completion_decoder = msgspec.json.Decoder(ChatCompletion)
chunk_decoder = msgspec.json.Decoder(ChatChunk)
error_decoder = msgspec.json.Decoder(ErrorBody)


def error_text(body: bytes, limit: int = 500) -> str:
    """The message of an error response body, or the start of the body if it has none."""
    try:
        text = error_decoder.decode(body).text()
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = ""
    if not text:
        text = body[:limit].decode("utf-8", "replace").strip() or "(empty body)"
    return text[:limit]


def chunk_error(chunk: ChatChunk) -> str | None:
    """The error message a streamed chunk carries instead of choices, if it is one."""
    if chunk.error is not None:
        return chunk.error.message or "error"
    if chunk.object == "error":
        return chunk.message or "error"
    return None


class _ChoiceFold:
    __slots__ = ("content", "refusal", "calls", "finish", "logprobs", "token_ids", "role")

    def __init__(self) -> None:
        self.content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.calls: dict[int, list[Any]] = {}
        self.finish: str | None = None
        self.logprobs: list[TokenLogprob] | None = None
        self.token_ids: list[int] | None = None
        self.role = "assistant"


def fold_chunks(chunks: Iterable[ChatChunk]) -> ChatCompletion:
    """The completion a stream of chunks adds up to: contents concatenated per choice, tool
    calls assembled by index (id, name and argument fragments), logprobs and token ids
    appended, the last usage kept. Pure."""
    folds: dict[int, _ChoiceFold] = {}
    usage: Usage | None = None
    cid = model = ""
    prompt_ids: list[int] | None = None
    for chunk in chunks:
        cid = cid or chunk.id
        model = model or chunk.model
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.prompt_token_ids is not None:
            prompt_ids = chunk.prompt_token_ids
        for c in chunk.choices:
            f = folds.get(c.index)
            if f is None:
                f = folds[c.index] = _ChoiceFold()
            d = c.delta
            if d.role:
                f.role = d.role
            if d.content is not None:
                (f.content if f.content is not None else _set(f, "content")).append(d.content)
            if d.refusal is not None:
                (f.refusal if f.refusal is not None else _set(f, "refusal")).append(d.refusal)
            for t in d.tool_calls or ():
                call = f.calls.get(t.index)
                if call is None:
                    call = f.calls[t.index] = ["", "function", "", []]
                if t.id:
                    call[0] = t.id
                if t.type:
                    call[1] = t.type
                if t.function is not None:
                    if t.function.name:
                        call[2] += t.function.name
                    if t.function.arguments:
                        call[3].append(t.function.arguments)
            if c.finish_reason is not None:
                f.finish = c.finish_reason
            if c.logprobs is not None and c.logprobs.content:
                f.logprobs = (f.logprobs or []) + c.logprobs.content
            if c.token_ids:
                f.token_ids = (f.token_ids or []) + c.token_ids
    choices = []
    for index in sorted(folds):
        f = folds[index]
        calls = [ToolCall(id=c[0], type=c[1], function=FunctionCall(name=c[2], arguments="".join(c[3])))
                 for _, c in sorted(f.calls.items())] or None
        message = Message(role=f.role, content="".join(f.content) if f.content is not None else None,
                          refusal="".join(f.refusal) if f.refusal is not None else None, tool_calls=calls)
        choices.append(Choice(message=message, index=index, finish_reason=f.finish,
                              logprobs=ChoiceLogprobs(content=f.logprobs) if f.logprobs is not None else None,
                              token_ids=f.token_ids))
    return ChatCompletion(choices=choices, id=cid, model=model, usage=usage, prompt_token_ids=prompt_ids)


def _set(f: _ChoiceFold, field: str) -> list[str]:
    value: list[str] = []
    setattr(f, field, value)
    return value
