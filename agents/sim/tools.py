"""What the sim policy reads: OpenAI function schemas and an OpenAI chat conversation.

Conventions relied on (the engine renders tools this way):

- each tool is ``{"type": "function", "function": {"name", "description", "parameters":
  {"type": "object", "properties": {p: {"type", "description"}}, "required": [...]}}}``;
- the ``description`` says what the tool returns after ``Returns``: ``"... Returns:
  order_id, status, total."`` for one record, ``"... Returns a list of: order_id, status."``
  (or ``"Returns a list of orders: ..."``) for a list of records.
- tool messages hold the JSON of the result, or ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from scaleenv._agents.sim.text import content_words, name_words

IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RETURNS_RE = re.compile(r"\bReturns?\b([^\n]*)", re.IGNORECASE)

READ_VERBS = frozenset(
    "get find list search lookup look show view fetch retrieve read count query check_status describe browse "
    "see inspect".split()
)


def parse_returns(description: str) -> tuple[list[str], bool]:
    """The returned field names and whether the tool returns a list, from a description's ``Returns`` clause."""
    m = RETURNS_RE.search(description or "")
    if m is None:
        return [], False
    rest = m.group(1)
    head, sep, tail = rest.partition(":")
    is_list = bool(re.search(r"\blist\b|\barray\b", head if sep else rest, re.IGNORECASE))
    if not sep:
        tail = re.sub(r"^\s*(?:an?\s+)?(?:list|array)\s+of\s+", "", rest, flags=re.IGNORECASE)
    # Stop at the end of the sentence ("Returns: a, b. Fails when ...").
    tail = re.split(r"\.(?:\s|$)", tail, maxsplit=1)[0]
    fields: list[str] = []
    for piece in re.split(r",|;|\band\b", tail):
        ident = IDENT_RE.search(piece)
        if ident and ident.group(0) not in fields:
            fields.append(ident.group(0))
    return fields, is_list


@attrs.define
class Tool:
    name: str
    description: str
    types: dict[str, str]
    required: list[str]
    returns: list[str]
    returns_list: bool
    verb: str
    mutating: bool
    order: int

    @property
    def name_words(self) -> list[str]:
        return name_words(self.name)

    @property
    def desc_words(self) -> list[str]:
        text = RETURNS_RE.split(self.description or "")[0]
        return content_words(text)


def parse_tools(schemas: list[dict[str, Any]] | None) -> dict[str, Tool]:
    tools: dict[str, Tool] = {}
    for i, schema in enumerate(schemas or []):
        if not isinstance(schema, dict):
            continue
        fn = schema.get("function", schema)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        params = fn.get("parameters") or {}
        props = params.get("properties") or {}
        types = {p: str((spec or {}).get("type", "string")) for p, spec in props.items()}
        required = [p for p in params.get("required") or [] if isinstance(p, str)]
        desc = str(fn.get("description") or "")
        returns, returns_list = parse_returns(desc)
        if not returns and isinstance(fn.get("returns"), list):  # a non-standard but handy hint
            returns = [str(r.get("name") if isinstance(r, dict) else r) for r in fn["returns"]]
        nw = name_words(fn["name"])
        verb = nw[0] if nw else ""
        mutating = verb not in READ_VERBS and not fn["name"].startswith(("check_status", "get_", "list_"))
        tools[fn["name"]] = Tool(
            name=fn["name"], description=desc, types=types, required=required, returns=returns,
            returns_list=returns_list, verb=verb, mutating=mutating, order=i,
        )
    return tools


@attrs.define
class Call:
    """One tool call the assistant made, and what came back."""

    id: str
    name: str
    raw_args: str
    args: dict[str, Any] | None  # None: the arguments were not a JSON object
    pos: int
    answered: bool = False
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.answered and self.error is None


@attrs.define
class Conversation:
    users: list[tuple[int, str]]
    assistants: list[tuple[int, str]]
    calls: list[Call]
    last_role: str

    @property
    def user_text(self) -> str:
        return "\n".join(t for _, t in self.users)


def _calls_of(message: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for c in message.get("tool_calls") or []:
        if not isinstance(c, dict):
            continue
        fn = c.get("function") if isinstance(c.get("function"), dict) else c
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            args = json.dumps(args, sort_keys=True)
        out.append((str(c.get("id", "")), str(fn.get("name", "")), args))
    return out


def parse_conversation(messages: list[dict[str, Any]]) -> Conversation:
    users: list[tuple[int, str]] = []
    assistants: list[tuple[int, str]] = []
    calls: list[Call] = []
    by_id: dict[str, Call] = {}
    last_role = ""
    for pos, m in enumerate(messages or []):
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        content = m.get("content")
        text = content if isinstance(content, str) else ("" if content is None else json.dumps(content))
        if role == "user":
            users.append((pos, text))
        elif role == "assistant":
            if text:
                assistants.append((pos, text))
            for cid, name, raw in _calls_of(m):
                try:
                    args = json.loads(raw) if raw.strip() else {}
                except json.JSONDecodeError:
                    args = None
                call = Call(id=cid, name=name, raw_args=raw, args=args if isinstance(args, dict) else None, pos=pos)
                calls.append(call)
                by_id[cid] = call
        elif role == "tool":
            call = by_id.get(str(m.get("tool_call_id", "")))
            if call is None:
                continue
            call.answered = True
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            if isinstance(value, dict) and set(value) == {"error"}:
                call.error = str(value["error"])
            else:
                call.result = value
        if role in ("user", "assistant", "tool"):
            last_role = str(role)
    return Conversation(users=users, assistants=assistants, calls=calls, last_role=last_role)
