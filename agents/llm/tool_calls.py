"""Tool calls between the OpenAI chat shape and a JSON output type.

The rollout policy's output type is an object such as
``{"content": str, "tool_calls": [{"id", "name", "arguments"}]}``. OpenAI-compatible
servers return tool calls out of band (``message.tool_calls``), so:

- :func:`message_to_text` (client side) folds an OpenAI assistant message into the JSON
  text of any output type whose schema has a ``tool_calls`` array property, shaping each
  call after that array's item schema;
- :func:`text_to_message` (server side, the sim server) unfolds such a JSON answer into
  ``content`` plus OpenAI ``tool_calls``.

Both keep JSON objects with ``sort_keys=True`` so a sim answer that went over HTTP comes
back as the same text the in-process sim returns.
"""

from __future__ import annotations

import json
from typing import Any


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref``s (``#/$defs/Name``) to the schema they name."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 32:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {}).get(name, {})
        seen += 1
    return schema


def _allows(schema: dict[str, Any], root: dict[str, Any], kind: str) -> bool:
    schema = resolve(schema, root)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return any(_allows(o, root, kind) for o in options)
    t = schema.get("type")
    return t == kind or (isinstance(t, list) and kind in t)


def has_tool_calls(schema: dict[str, Any]) -> bool:
    """Whether the output type's object has a ``tool_calls`` property."""
    return "tool_calls" in resolve(schema, schema).get("properties", {})


def _shape_call(call: dict[str, Any], item_schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """One OpenAI tool call ``{id, type, function: {name, arguments}}`` shaped after the item schema."""
    fn = call.get("function") or {}
    name, arguments = fn.get("name", ""), fn.get("arguments", "") or ""
    props = resolve(item_schema, root).get("properties", {})
    if "function" in props and "name" not in props:
        return {k: v for k, v in call.items() if k in props}  # the schema is OpenAI-shaped itself
    out: dict[str, Any] = {}
    if "id" in props or not props:
        out["id"] = call.get("id", "")
    if "type" in props:
        out["type"] = call.get("type", "function")
    if "name" in props or not props:
        out["name"] = name
    if "arguments" in props or not props:
        if props and _allows(props["arguments"], root, "object") and not _allows(props["arguments"], root, "string"):
            try:
                out["arguments"] = json.loads(arguments) if arguments else {}
            except json.JSONDecodeError:
                out["arguments"] = arguments  # invalid JSON: let the port's validation reject it
        else:
            out["arguments"] = arguments
    return out


def message_to_text(content: str | None, tool_calls: list[dict[str, Any]] | None, schema: dict[str, Any]) -> str:
    """The JSON text of the output type for an assistant message (content and tool calls)."""
    root = schema
    obj_schema = resolve(schema, root)
    props = obj_schema.get("properties", {})
    item_schema = props.get("tool_calls", {})
    item_schema = resolve(item_schema, root).get("items", {})
    out: dict[str, Any] = {}
    if "content" in props:
        out["content"] = content if content is not None or _allows(props["content"], root, "null") else ""
    out["tool_calls"] = [_shape_call(c, item_schema, root) for c in (tool_calls or [])]
    return json.dumps(out, sort_keys=True)


def text_to_message(text: str) -> tuple[str | None, list[dict[str, Any]] | None]:
    """Split an answer's JSON text into OpenAI ``content`` and ``tool_calls``.

    An object whose keys are among ``content`` (a string or null) and ``tool_calls`` (a
    list of calls with a string ``name``), either one possibly absent, becomes that
    message; anything else (malformed text, another shape) goes back verbatim as
    content, as a model's text does when its tool calls cannot be parsed.
    """
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text, None
    if not isinstance(value, dict) or not set(value) <= {"content", "tool_calls"}:
        return text, None
    content = value.get("content")
    raw_calls = value.get("tool_calls", [])
    if (content is not None and not isinstance(content, str)) or not isinstance(raw_calls, list):
        return text, None
    calls = []
    for i, call in enumerate(raw_calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return text, None
        args = call.get("arguments", "")
        calls.append({
            "id": str(call.get("id", f"call_{i}")),
            "type": "function",
            "function": {"name": call["name"], "arguments": args if isinstance(args, str) else json.dumps(args, sort_keys=True)},
        })
    return content, calls or None


def as_chat_message(text: str, schema: dict[str, Any]) -> str:
    """The answer text a chat API with tools gives back for a model's ``text``: its message
    (:func:`text_to_message`) folded into the output type's JSON (:func:`message_to_text`).

    What an OpenAI-compatible server and this client make of an answer to a request with
    tools, in one step: the sim answers in-process exactly as through ``sim-server``."""
    content, calls = text_to_message(text)
    return message_to_text(content, calls, schema)
