"""The constraint a request carries, built by outlines exactly as outlines sends it.

outlines stays the source of truth for how an output type becomes request fields: for
``openai`` servers its ``OpenAITypeAdapter`` gives ``response_format: {"type":
"json_schema", "json_schema": {"name": "default", "strict": true, "schema": ...}}``
(``additionalProperties: false`` set on every object), for vLLM >= 0.12 its
``VLLMTypeAdapter`` gives ``structured_outputs: {"json": ...}``. Nothing here re-derives
them: the adapters are called once per (flavor, schema) and their output is kept
pre-encoded (``msgspec.Raw``), so a request splices the bytes in instead of building
and encoding the schema again. ``tests/llm/test_request_bodies.py`` compares whole
request bodies with what outlines + the openai SDK send.

Messages of a constrained request are sent as outlines' ``Chat`` input sends them:
each reduced to its ``role`` and ``content``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

Flavor = Literal["openai", "vllm"]

_CACHE: dict[tuple[str, int], tuple[dict[str, Any], dict[str, msgspec.Raw]]] = {}
_CACHE_MAX = 1024
_TOOLS: dict[int, tuple[Any, msgspec.Raw]] = {}
_TOOLS_MAX = 512


def _adapter(flavor: Flavor) -> Any:
    # outlines is imported on first use (~0.5 s): a run on the sim never pays for it.
    if flavor == "vllm":
        from outlines.models.vllm import VLLMTypeAdapter

        return VLLMTypeAdapter()
    from outlines.models.openai import OpenAITypeAdapter

    return OpenAITypeAdapter()


def constraint_fields(flavor: Flavor, schema: dict[str, Any]) -> dict[str, Any]:
    """The request fields outlines sends to constrain output to ``schema`` (built fresh)."""
    from outlines.types import JsonSchema

    return _adapter(flavor).format_output_type(JsonSchema(schema))


def encoded_constraint(flavor: Flavor, schema: dict[str, Any]) -> dict[str, msgspec.Raw]:
    """:func:`constraint_fields` with each value pre-encoded, cached by the schema object's
    identity (the port's schemas are shared, read-only objects: ``port.schema_for``)."""
    key = (flavor, id(schema))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is schema:
        return hit[1]
    fields = {k: msgspec.Raw(msgspec.json.encode(v)) for k, v in constraint_fields(flavor, schema).items()}
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = (schema, fields)
    return fields


def encoded_tools(tools: Sequence[dict[str, Any]]) -> Any:
    """``tools`` as JSON to splice into a request: pre-encoded once for a tuple (a domain's
    tool list is one tuple shared by its episodes), as is otherwise."""
    if type(tools) is not tuple:
        return list(tools)
    hit = _TOOLS.get(id(tools))
    if hit is not None and hit[0] is tools:
        return hit[1]
    raw = msgspec.Raw(msgspec.json.encode(list(tools)))
    if len(_TOOLS) >= _TOOLS_MAX:
        _TOOLS.clear()
    _TOOLS[id(tools)] = (tools, raw)
    return raw


def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as outlines' ``Chat`` input sends them: ``{"role", "content"}`` each."""
    for m in messages:
        if len(m) != 2 or "content" not in m or "role" not in m:
            return [{"role": m["role"], "content": m["content"]} for m in messages]
    return messages
