"""The sim over the OpenAI chat-completions API (``scaleenv sim-server``).

Routes: ``POST /v1/chat/completions`` and ``GET /v1/models``. Every answer comes from
:meth:`SimBackend.answer` with the request's messages, schema, seed and tools, so it is
the same text the in-process sim gives for the same request. Honoured request fields:

- ``response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``
  (what outlines' ``from_openai``/``from_sglang`` send), vLLM's
  ``structured_outputs: {"json": schema}`` (``from_vllm``, sent as ``extra_body``) and
  the older ``guided_json``; with none of them the sim answers for an empty schema.
  A strict json_schema, structured_outputs and guided_json are constraints, as for a
  server with constrained decoding: the answer is always schema-valid JSON (the noise
  can still make it a wrong answer); only without one can it be malformed text or break
  the schema, as a real model's can (``SimServer.constrain=False``, ``sim-server
  --unconstrained``: a server that ignores constraints);
- ``tools``: any request offering tools is answered by the sim's policy, and its answer
  becomes an OpenAI message (``content`` and ``message.tool_calls``; text that is no
  such message stays content, as from a model whose tool calls do not parse);
- ``seed`` (default 0), ``model`` (echoed), ``n`` (choices; the first is the answer
  for ``seed``, the others for seeds derived from it), ``stream`` (server-sent events
  as OpenAI sends them, ``data: [DONE]`` last; ``stream_options.include_usage`` adds a
  usage chunk);
- ``temperature``/``max_tokens`` are accepted and ignored (the sim is seeded).

A schema rewritten by ``agents.llm.strict.strict_schema`` (what ``--llm openai:`` sends,
for OpenAI's strict mode; its rewritten nodes carry marks) is answered as OpenAI would:
the sim answers for the schema it was made from (``loose_schema``) and the answer is put
into the strict shape (``to_strict``), so that the client, mapping it back, gets what the
in-process sim says.

The role of a request is the ``x-scaleenv-role`` header scaleenv's own client sends;
for other clients it is read from the request (tools: the policy; else the schema).

The schema name outlines sends is always ``"default"``; the sim then takes the name of
the top-level ``$ref`` (``#/$defs/Name``), which for a msgspec Struct is the Struct's
name, i.e. what the in-process port passes (a strict schema has the object itself at the
root: then its ``title``, the same name).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import msgspec
import trio

from scaleenv._agents.llm.openai_backend import ROLE_HEADER

from scaleenv._seeding import derive_seed

from .http_json import EventStream, HttpError, serve_json
from scaleenv._serve.auth import Auth
from scaleenv._serve.limits import SIM_SERVER_LIMITS, Limits
from scaleenv._agents.sim.backend import SimBackend
from scaleenv._agents.llm.tool_calls import text_to_message
from scaleenv._agents.llm.strict import loose_schema, marked, to_strict


def constraint_of(body: dict[str, Any]) -> tuple[dict[str, Any], str, bool]:
    """(JSON schema, schema name, whether decoding must hold it) of a chat-completions request.

    A strict ``response_format`` json_schema, ``structured_outputs.json`` and
    ``guided_json`` must be held; a json_schema without ``strict`` is a hint, as OpenAI
    documents it."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise HttpError(400, "response_format.json_schema.schema must be an object")
        return spec["schema"], _name(spec["schema"], spec.get("name")), spec.get("strict") is True
    for key, inner in (("structured_outputs", "json"), ("guided_json", None)):
        value = body.get(key)
        schema = value.get(inner) if inner and isinstance(value, dict) else value
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise HttpError(400, f"{key}: schema is not valid JSON: {exc}") from exc
        if isinstance(schema, dict):
            return schema, _name(schema, None), True
    return {}, "output", False


def _name(schema: dict[str, Any], given: Any) -> str:
    if isinstance(given, str) and given and given != "default":
        return given
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    return str(schema.get("title") or "output")


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise HttpError(400, "messages must be a non-empty list of {role, content} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise HttpError(400, f"messages[{i}] must be an object with a 'role'")
    return messages


_decode = msgspec.json.Decoder().decode


def strict_answer(text: str, strict: dict[str, Any]) -> str:
    """The sim's answer ``text`` put into the shape of the ``strict`` schema (text that is
    not JSON, from a server that ignores constraints, stays as it is)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return json.dumps(to_strict(value, strict), sort_keys=True)


def _positive_int(body: dict[str, Any], key: str, default: int, most: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise HttpError(400, f"{key} must be an integer from 1 to {most}, got {value!r}")
    return value


@attrs.define
class SimServer:
    """The request handler: the sim backend plus optional injected HTTP faults (for tests)."""

    sim: SimBackend = attrs.field(factory=SimBackend)
    constrain: bool = True  # hold strict json_schema / structured_outputs (False: a server that ignores them)
    fail_first: int = 0  # answer the first N completions with 503 (exercises client retries)
    fail_status: int = 503
    served: int = 0
    _ids: Any = attrs.field(factory=lambda: itertools.count(1))
    _originals: dict[bytes, dict[str, Any] | None] = attrs.field(factory=dict)

    def original_schema(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        """The schema a marked strict ``schema`` was made from (None: it is not one); cached."""
        key = msgspec.json.encode(schema)
        if key not in self._originals:
            if len(self._originals) >= 256:
                self._originals.clear()
            self._originals[key] = loose_schema(schema) if marked(schema) else None
        return self._originals[key]

    async def handle(self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        if path == "/v1/models":
            if method != "GET":
                raise HttpError(405, f"{method} {path}: use GET")
            return 200, {"object": "list", "data": [{"id": self.sim.model, "object": "model", "owned_by": "scaleenv"}]}
        if path == "/v1/chat/completions":
            if method != "POST":
                raise HttpError(405, f"{method} {path}: use POST")
            return 200, await self.chat(body, (headers or {}).get(ROLE_HEADER))
        raise HttpError(404, f"no route {method} {path}; this server has POST /v1/chat/completions and GET /v1/models", "not_found_error")

    async def chat(self, raw: bytes, role: str | None = None) -> dict[str, Any] | EventStream:
        """One chat completion (a JSON object, or an event stream for ``stream: true``).

        ``role``: the ``x-scaleenv-role`` header of scaleenv's own client (out of band,
        never in the text); other clients' requests say nothing, and the role is read
        from the request (offered tools: the policy; else the schema)."""
        try:
            body = _decode(raw or b"null")
        except msgspec.DecodeError as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        if self.fail_first > 0:
            self.fail_first -= 1
            raise HttpError(self.fail_status, "injected fault (sim-server --fail-first)", "server_error")
        messages = _check_messages(body.get("messages"))
        schema, schema_name, constrained = constraint_of(body)
        seed = body.get("seed", 0)
        if not isinstance(seed, int):
            raise HttpError(400, f"seed must be an integer, got {seed!r}")
        n = _positive_int(body, "n", 1, 16)
        tools = body.get("tools") or None
        original = None if tools else self.original_schema(schema)
        choices, prompt_tokens, completion_tokens, latency = [], 0, 0, 0.0
        for index in range(n):
            text, prompt_tokens, tokens, took = self.sim.answer(
                messages, original or schema, schema_name, seed if index == 0 else derive_seed(seed, "choice", index),
                tools, role=role or None, constrained=constrained and self.constrain)
            if original is not None:
                text = strict_answer(text, schema)
            completion_tokens += tokens
            latency = max(latency, took)
            content, tool_calls = text_to_message(text) if tools else (text, None)
            choices.append((content, tool_calls))
        self.served += 1
        cid = f"chatcmpl-sim-{next(self._ids)}"
        model = body.get("model") or self.sim.model
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        if body.get("stream") is True:
            options = body.get("stream_options")
            with_usage = isinstance(options, dict) and options.get("include_usage") is True
            return EventStream(_stream_events(cid, model, choices, usage if with_usage else None, latency))
        if latency > 0:
            await trio.sleep(latency)
        return completion_body(cid, model, choices, usage, int(time.time()))


def completion_body(cid: str, model: str, choices: list[tuple[str | None, list[dict[str, Any]] | None]],
                    usage: dict[str, int], created: int) -> dict[str, Any]:
    """The ``chat.completion`` object for these choices (content, tool calls). Pure."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": i, "message": _message(content, calls), "logprobs": None,
                     "finish_reason": "tool_calls" if calls else "stop"} for i, (content, calls) in enumerate(choices)],
        "usage": usage,
    }


def _message(content: str | None, tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


STREAM_PIECE = 16
"""Characters of content (or of tool-call arguments) per streamed chunk."""


def _pieces(text: str) -> list[str]:
    return [text[i:i + STREAM_PIECE] for i in range(0, len(text), STREAM_PIECE)]


def stream_chunks(cid: str, model: str, choices: list[tuple[str | None, list[dict[str, Any]] | None]],
                  usage: dict[str, int] | None) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects OpenAI streams for these choices, in order:
    the role, content in pieces, each tool call (id and name, then its arguments in
    pieces), the finish reason, and the usage when asked for. Pure."""
    created = int(time.time())

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    out = []
    for index, (content, calls) in enumerate(choices):
        out.append(chunk(index, {"role": "assistant", "content": "" if content is not None else None}))
        out.extend(chunk(index, {"content": piece}) for piece in _pieces(content or ""))
        for k, call in enumerate(calls or ()):
            fn = call["function"]
            out.append(chunk(index, {"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                                      "function": {"name": fn["name"], "arguments": ""}}]}))
            out.extend(chunk(index, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
                       for piece in _pieces(fn["arguments"]))
        out.append(chunk(index, {}, "tool_calls" if calls else "stop"))
    if usage is not None:
        out.append({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [], "usage": usage})
    return out


async def _stream_events(cid: str, model: str, choices: list[tuple[str | None, list[dict[str, Any]] | None]],
                         usage: dict[str, int] | None, latency: float) -> AsyncIterator[bytes]:
    """The stream's events; the latency is spent half before the first chunk, half midway."""
    chunks = stream_chunks(cid, model, choices, usage)
    half = len(chunks) // 2
    for i, c in enumerate(chunks):
        if latency > 0 and i in (0, half):
            await trio.sleep(latency / 2)
        yield b"data: " + msgspec.json.encode(c) + b"\n\n"
    yield b"data: [DONE]\n\n"


async def serve_sim(host: str = "127.0.0.1", port: int = 0, *, server: SimServer | None = None,
                    auth: Auth | None = None, limits: Limits | None = None, ssl_context: Any = None,
                    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the sim until cancelled. ``await nursery.start(serve_sim, host, 0)`` returns the bound port.
    ``auth``, ``limits``, ``ssl_context``: as for :func:`~scaleenv._serve.http_json.serve_json`."""
    app = server or SimServer()
    await serve_json(app.handle, host, port, auth=auth, limits=limits or SIM_SERVER_LIMITS, ssl_context=ssl_context,
                     task_status=task_status)
