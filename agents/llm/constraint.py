"""The constraint a request carries, built by outlines exactly as outlines sends it.

outlines stays the source of truth for how an output type becomes request fields: for
``openai`` servers its ``OpenAITypeAdapter`` gives ``response_format: {"type":
"json_schema", "json_schema": {"name": "default", "strict": true, "schema": ...}}``
(``additionalProperties: false`` set on every object), for vLLM >= 0.12 its
``VLLMTypeAdapter`` gives ``structured_outputs: {"json": ...}``. A real OpenAI endpoint
takes only a subset of JSON Schema in strict mode, so for ``openai`` the adapter is given
:func:`.strict.strict_schema` of the output type's schema (the answer comes back in that
shape and the port maps it back: :data:`.strict.STRICT_SHAPE`); vLLM takes full JSON
Schema and gets the schema as it is. Nothing here re-derives the adapters' output: they
are called once per (backend, schema) and their output is kept
pre-encoded (``msgspec.Raw``, :class:`EncodedParts`), so a request splices the bytes in
instead of building and encoding the schema again. ``tests/llm/test_request_bodies.py`` compares whole
request bodies with what outlines + the openai SDK send.

Messages of a constrained request are sent as outlines' ``Chat`` input sends them:
each reduced to its ``role`` and ``content``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from .strict import strict_schema

Flavor = Literal["openai", "vllm"]

def _adapter(flavor: Flavor) -> Any:
    # outlines is imported on first use (~0.5 s): a run on the sim never pays for it.
    if flavor == "vllm":
        from outlines.models.vllm import VLLMTypeAdapter

        return VLLMTypeAdapter()
    from outlines.models.openai import OpenAITypeAdapter

    return OpenAITypeAdapter()


def sent_schema(flavor: Flavor, schema: dict[str, Any]) -> dict[str, Any]:
    """The schema a ``flavor`` server is given for an output type's ``schema``: its strict
    form for ``openai``, itself for ``vllm``."""
    return strict_schema(schema) if flavor == "openai" else schema


def constraint_fields(flavor: Flavor, schema: dict[str, Any]) -> dict[str, Any]:
    """The request fields outlines sends to constrain output to an output type's ``schema``
    (built fresh; the schema given to outlines is :func:`sent_schema`'s)."""
    from outlines.types import JsonSchema

    return _adapter(flavor).format_output_type(JsonSchema(sent_schema(flavor, schema)))


class EncodedParts:
    """The parts of request bodies a backend sends again and again, encoded once (one per backend).

    Keyed by identity and holding the value, so an id is never reused while cached; only
    values that do not change under the cache: the port's schemas (``port.schema_for``
    shares them, read-only) and tool tuples (a domain's tools are one tuple shared by its
    episodes)."""

    def __init__(self, flavor: Flavor, max_items: int = 1024) -> None:
        self.flavor = flavor
        self.max_items = max_items
        self._constraints: dict[int, tuple[dict[str, Any], dict[str, msgspec.Raw]]] = {}
        self._tools: dict[int, tuple[Any, msgspec.Raw]] = {}

    def constraint(self, schema: dict[str, Any]) -> dict[str, msgspec.Raw]:
        """:func:`constraint_fields` for ``schema``, each value pre-encoded."""
        hit = self._constraints.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        fields = {k: msgspec.Raw(msgspec.json.encode(v)) for k, v in constraint_fields(self.flavor, schema).items()}
        if len(self._constraints) >= self.max_items:
            self._constraints.clear()
        self._constraints[id(schema)] = (schema, fields)
        return fields

    def tools(self, tools: Sequence[dict[str, Any]]) -> Any:
        """``tools`` as JSON to splice into a request (a tuple: encoded once)."""
        if type(tools) is not tuple:
            return list(tools)
        hit = self._tools.get(id(tools))
        if hit is not None and hit[0] is tools:
            return hit[1]
        raw = msgspec.Raw(msgspec.json.encode(list(tools)))
        if len(self._tools) >= self.max_items:
            self._tools.clear()
        self._tools[id(tools)] = (tools, raw)
        return raw


def chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as outlines' ``Chat`` input sends them: ``{"role", "content"}`` each."""
    for m in messages:
        if len(m) != 2 or "content" not in m or "role" not in m:
            return [{"role": m["role"], "content": m["content"]} for m in messages]
    return messages
