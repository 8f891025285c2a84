"""Raw model text as an assistant turn: the content and the tool calls written in it.

Trainers that step environments with a model's raw output (SkyRL-gym, GEM-style text
environments, :class:`scaleenv._serve.gym.ScaleEnvTextGym`) hand over text, not an
OpenAI message. :func:`parse_turn` reads the common ways models write tool calls:

- Hermes / Qwen: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, one block
  per call, anywhere in the text (the last block may be left unclosed, as when
  generation stops at the closing tag); the text outside the blocks is the content;
- JSON: the whole text is one JSON value: an OpenAI assistant message
  ``{"content": ..., "tool_calls": [{"id", "type": "function", "function": {"name",
  "arguments"}}]}``, one call ``{"name", "arguments"}`` (Llama's ``"parameters"`` too),
  or a list of calls, optionally after Mistral's ``[TOOL_CALLS]`` marker or inside a
  fenced ```json block;
- anything else is a message to the user.

Reasoning in ``<think>...</think>`` is dropped from the content (and a leading block
closed by ``</think>`` whose opening tag the chat template wrote). Arguments given as
an object are encoded as JSON text, as OpenAI sends them; arguments given as a string
are kept verbatim, so malformed ones reach the environment and come back as the tool
error they are. A ``<tool_call>`` block that is not a JSON call makes the whole text a
message to the user, as vLLM's Hermes parser does: a real server gives such text back
as content, and so does this.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import attrs

THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)
MISTRAL = "[TOOL_CALLS]"

Format = Literal["hermes", "json", "text"]


@attrs.frozen
class ParsedTurn:
    """An assistant turn read from text: ``tool_calls`` in OpenAI form (``id`` only where
    the text gave one: the environment numbers the others)."""

    content: str
    tool_calls: list[dict[str, Any]]
    format: Format

    def message(self) -> dict[str, Any]:
        """The turn as an OpenAI assistant message."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [dict(c) for c in self.tool_calls]
        return out


def strip_reasoning(text: str) -> str:
    """``text`` without ``<think>`` blocks (and without a leading one whose opening tag
    the chat template wrote, i.e. everything up to a ``</think>`` with no ``<think>``)."""
    text = THINK.sub("", text)
    if "</think>" in text and "<think>" not in text:
        text = text.split("</think>", 1)[1]
    return text


def _call(obj: Any) -> dict[str, Any] | None:
    """One tool call from a JSON value (OpenAI-nested or flat), or None if it is not one."""
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function") if isinstance(obj.get("function"), dict) else obj
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        return None
    arguments = fn.get("arguments", fn.get("parameters"))
    if arguments is None:
        arguments = "{}"
    elif not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if isinstance(obj.get("id"), str) and obj["id"]:
        call["id"] = obj["id"]
    return call


def _calls(value: Any) -> list[dict[str, Any]] | None:
    """Tool calls from a JSON value that is a call or a list of calls (None otherwise)."""
    items = value if isinstance(value, list) else [value]
    calls = [_call(v) for v in items]
    if not calls or any(c is None for c in calls):
        return None
    return calls  # type: ignore[return-value]


def _json_turn(text: str) -> ParsedTurn | None:
    body = text
    fenced = FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if body.startswith(MISTRAL):
        body = body[len(MISTRAL):].strip()
    if not body or body[0] not in "[{":
        return None
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and ("tool_calls" in value or set(value) <= {"role", "content"}) and "name" not in value:
        content = value.get("content")
        raw_calls = value.get("tool_calls") or []
        calls = _calls(raw_calls) if raw_calls else []
        if (content is not None and not isinstance(content, str)) or calls is None:
            return None
        return ParsedTurn(content=(content or "").strip(), tool_calls=calls, format="json")
    calls = _calls(value)
    if calls is None:
        return None
    return ParsedTurn(content="", tool_calls=calls, format="json")


def parse_turn(text: str) -> ParsedTurn:
    """The assistant turn ``text`` writes (see the module doc); never raises."""
    if not isinstance(text, str):
        raise TypeError(f"a text action is a string, not {type(text).__name__}")
    visible = strip_reasoning(text).strip()
    if "<tool_call>" in visible:
        calls = []
        for body in TOOL_CALL.findall(visible):
            try:
                call = _call(json.loads(body.strip()))
            except json.JSONDecodeError:
                call = None
            if call is None:
                return ParsedTurn(content=visible, tool_calls=[], format="text")
            calls.append(call)
        content = TOOL_CALL.sub("", visible).strip()
        return ParsedTurn(content=content, tool_calls=calls, format="hermes")
    parsed = _json_turn(visible)
    if parsed is not None:
        return parsed
    return ParsedTurn(content=visible, tool_calls=[], format="text")


def tools_block(tools: list[dict[str, Any]]) -> str:
    """The offered tools as text for a system prompt, asking for Hermes-style calls (for
    trainers whose chat template is not given the tools)."""
    lines = "\n".join(json.dumps(t, sort_keys=True) for t in tools)
    return ("You can call these functions. Write each call as a JSON object with the function's "
            "\"name\" and its \"arguments\" between <tool_call> and </tool_call>, one block per call, e.g.\n"
            "<tool_call>\n{\"name\": \"NAME\", \"arguments\": {\"PARAM\": \"VALUE\"}}\n</tool_call>\n"
            "The functions (JSON schemas, one per line):\n<tools>\n" + lines + "\n</tools>")


def with_tools_block(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with :func:`tools_block` appended to the system message (a copy)."""
    out = [dict(m) for m in messages]
    if out and out[0]["role"] == "system":
        out[0]["content"] = out[0]["content"] + "\n\n" + tools_block(tools)
    else:
        out.insert(0, {"role": "system", "content": tools_block(tools)})
    return out
