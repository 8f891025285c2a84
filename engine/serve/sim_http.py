"""The sim over the OpenAI chat-completions API (``scaleenv sim-server``).

Routes: ``POST /v1/chat/completions`` and ``GET /v1/models``. Every answer comes from
:meth:`SimBackend.answer` with the request's messages, schema, seed and tools, so it is
the same text the in-process sim gives for the same request. Honoured request fields:

- ``response_format: {"type": "json_schema", "json_schema": {"name", "schema"}}``
  (what outlines' ``from_openai``/``from_sglang`` send), vLLM's
  ``structured_outputs: {"json": schema}`` (``from_vllm``, sent as ``extra_body``) and
  the older ``guided_json``; with none of them the sim answers for an empty schema;
- ``seed`` (default 0), ``tools`` (an answer with ``tool_calls`` becomes OpenAI
  ``message.tool_calls`` when tools were offered), ``model`` (echoed);
- ``temperature``/``max_tokens`` are accepted and ignored (the sim is seeded).

The schema name outlines sends is always ``"default"``; the sim then takes the name of
the top-level ``$ref`` (``#/$defs/Name``), which for a msgspec Struct is the Struct's
name, i.e. what the in-process port passes.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import attrs
import trio

from scaleenv.agents.llm.openai_backend import ROLE_HEADER

from .http_json import HttpError, serve_json
from scaleenv.serve.auth import Auth
from scaleenv.serve.limits import SIM_SERVER_LIMITS, Limits
from scaleenv.agents.sim.backend import SimBackend
from scaleenv.agents.llm.tool_calls import text_to_message


def schema_from_body(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The JSON schema and schema name a chat-completions request constrains output to."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise HttpError(400, "response_format.json_schema.schema must be an object")
        return spec["schema"], _name(spec["schema"], spec.get("name"))
    for key, inner in (("structured_outputs", "json"), ("guided_json", None)):
        value = body.get(key)
        schema = value.get(inner) if inner and isinstance(value, dict) else value
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise HttpError(400, f"{key}: schema is not valid JSON: {exc}") from exc
        if isinstance(schema, dict):
            return schema, _name(schema, None)
    return {}, "output"


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


@attrs.define
class SimServer:
    """The request handler: the sim backend plus optional injected HTTP faults (for tests)."""

    sim: SimBackend = attrs.field(factory=SimBackend)
    fail_first: int = 0  # answer the first N completions with 503 (exercises client retries)
    fail_status: int = 503
    served: int = 0
    _ids: Any = attrs.field(factory=lambda: itertools.count(1))

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

    async def chat(self, raw: bytes, role: str | None = None) -> dict[str, Any]:
        """One chat completion. ``role``: the ``x-scaleenv-role`` header of scaleenv's own
        client (out of band, never in the text); other clients' requests say nothing, and
        the role is read from the request (offered tools: the policy; else the schema)."""
        try:
            body = json.loads(raw or b"null")
        except json.JSONDecodeError as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        if self.fail_first > 0:
            self.fail_first -= 1
            raise HttpError(self.fail_status, "injected fault (sim-server --fail-first)", "server_error")
        messages = _check_messages(body.get("messages"))
        schema, schema_name = schema_from_body(body)
        seed = body.get("seed", 0)
        if not isinstance(seed, int):
            raise HttpError(400, f"seed must be an integer, got {seed!r}")
        tools = body.get("tools") or None
        text, prompt_tokens, completion_tokens, latency = self.sim.answer(messages, schema, schema_name, seed, tools,
                                                                         role=role or None)
        if latency > 0:
            await trio.sleep(latency)
        content, tool_calls = text_to_message(text) if tools else (text, None)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        self.served += 1
        return {
            "id": f"chatcmpl-sim-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.sim.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


async def serve_sim(host: str = "127.0.0.1", port: int = 0, *, server: SimServer | None = None,
                    auth: Auth | None = None, limits: Limits | None = None, ssl_context: Any = None,
                    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the sim until cancelled. ``await nursery.start(serve_sim, host, 0)`` returns the bound port.
    ``auth``, ``limits``, ``ssl_context``: as for :func:`~scaleenv.serve.http_json.serve_json`."""
    app = server or SimServer()
    await serve_json(app.handle, host, port, auth=auth, limits=limits or SIM_SERVER_LIMITS, ssl_context=ssl_context,
                     task_status=task_status)
