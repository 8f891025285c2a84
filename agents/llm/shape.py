"""The shape of an answer as text a model reads: a compact, TypeScript-like rendering of a JSON schema.

A model behind vLLM's structured outputs or outlines' local decoding is constrained to the
output type's schema but never sees it, and a model without constrained decoding has only
the prompt: every request that asks for one JSON object therefore carries this rendering
in its system message (:func:`scaleenv._agents.llm.port.with_shape` puts it there).

    type ParamSpec = {
      name: string;
      type: "bool" | "float" | "int" | "list[str]" | "str";
      required?: boolean;  // optional (default true)
      ref?: string | null;  // optional (default null)
    };

Named types (msgspec's ``$defs``) are written once each, the answer's own type first and
the others in the order they are first used, so recursive types need nothing special.
Descriptions (a Struct's docstring, ``msgspec.Meta(description=...)``) become ``//``
comments; enums become unions of literals; bounds (lengths, ranges, patterns) are said in
the comment. The rendering is of the schema as given (not of OpenAI's strict subset: a
strict server enforces its own shape whatever the text says, and the port maps it back).

Size is bounded: a description is cut at :data:`DESCRIPTION_CHARS`; a rendering over
``max_chars`` is made again with first sentences only, then without descriptions, and
only then cut, saying so. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

SHAPE_MAX_CHARS = 8000
"""The default bound of one rendering (the architect's tool design, the largest, is ~3.8k)."""
DESCRIPTION_CHARS = 1200
"""A description longer than this is cut (a Struct docstring may teach a small grammar)."""
ANSWER_LINE = "Answer with one JSON object of type {name}, written as below (TypeScript notation: `?` marks an optional field, which may be left out):"
_REF = "#/$defs/"
_TYPED = ("type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const", "properties", "items")
_BOUNDS = (("minLength", "length >= {}"), ("maxLength", "length <= {}"),
           ("minimum", ">= {}"), ("maximum", "<= {}"), ("exclusiveMinimum", "> {}"), ("exclusiveMaximum", "< {}"),
           ("minItems", "items >= {}"), ("maxItems", "items <= {}"), ("pattern", "matching /{}/"),
           ("format", "format {}"), ("multipleOf", "a multiple of {}"))


def render_shape(schema: dict[str, Any], *, max_chars: int = SHAPE_MAX_CHARS) -> str:
    """``schema`` (msgspec's: a ``$ref`` root and ``$defs``, or any object schema) as
    readable type declarations, at most ``max_chars`` long (see the module doc)."""
    for detail in ("full", "brief", "none"):
        text = _Renderer(schema, detail).render()
        if len(text) <= max_chars:
            return text
    note = f"\n// (the rest is cut: the shape is longer than {max_chars} characters)"
    return text[:max(0, max_chars - len(note))] + note


def root_name(schema: dict[str, Any]) -> str:
    """The name of the answer's type: the ``$ref`` root's, the title, or ``Answer``."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        return ref.removeprefix(_REF)
    title = schema.get("title")
    return title if isinstance(title, str) and title.isidentifier() else "Answer"


def shape_text(schema: dict[str, Any], *, max_chars: int = SHAPE_MAX_CHARS) -> str:
    """The block a request's system message ends with: how to answer, then the shape."""
    return ANSWER_LINE.format(name=root_name(schema)) + "\n\n" + render_shape(schema, max_chars=max_chars)


def _plain(value: Any) -> Any:
    """A bound as a reader writes it: ``1`` for ``1.0``."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _clean(text: str) -> str:
    return text.replace("``", "`").strip()


def _first_sentence(text: str) -> str:
    line = text.strip().split("\n\n", 1)[0].replace("\n", " ")
    m = re.search(r"(?<=[.!?])\s", line)
    return line[:m.start()] if m else line


class _Renderer:
    def __init__(self, schema: dict[str, Any], detail: str) -> None:
        self.schema = schema
        self.defs: dict[str, Any] = schema.get("$defs", {}) if isinstance(schema.get("$defs"), dict) else {}
        self.detail = detail
        self.queue: list[str] = []
        self.seen: set[str] = set()

    def describe(self, node: dict[str, Any]) -> str:
        desc = node.get("description")
        if self.detail == "none" or not isinstance(desc, str) or not desc.strip():
            return ""
        text = _clean(desc) if self.detail == "full" else _first_sentence(_clean(desc))
        return text if len(text) <= DESCRIPTION_CHARS else text[:DESCRIPTION_CHARS - 3].rstrip() + "..."

    def use(self, name: str) -> str:
        if name not in self.seen:
            self.seen.add(name)
            self.queue.append(name)
        return name

    def render(self) -> str:
        name = root_name(self.schema)
        root = self.schema
        ref = self.schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            root = self.defs.get(name, {})
        self.seen.add(name)
        blocks = [self.declare(name, root)]
        while self.queue:
            other = self.queue.pop(0)
            blocks.append(self.declare(other, self.defs.get(other, {})))
        return "\n\n".join(blocks)

    def declare(self, name: str, node: dict[str, Any]) -> str:
        lines = [f"// {line}".rstrip() for line in self.describe(node).splitlines()]
        lines.append(f"type {name} = {self.type_of(node, 0)};")
        return "\n".join(lines)

    def type_of(self, node: Any, depth: int) -> str:
        """``node`` as a type expression (objects over several lines, indented ``depth``)."""
        if not isinstance(node, dict):
            return "any"
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            return self.use(ref.removeprefix(_REF))
        if "const" in node:
            return json.dumps(node["const"], ensure_ascii=False)
        if "enum" in node:
            return " | ".join(json.dumps(v, ensure_ascii=False) for v in node["enum"])
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                return " | ".join(self.type_of(o, depth) for o in node[key])
        if isinstance(node.get("allOf"), list):
            return " & ".join(self.type_of(o, depth) for o in node["allOf"])
        t = node.get("type")
        if isinstance(t, list):
            return " | ".join(self.type_of({**node, "type": x}, depth) for x in t)
        if t == "array":
            prefix = node.get("prefixItems")
            if isinstance(prefix, list):
                return "[" + ", ".join(self.type_of(o, depth) for o in prefix) + "]"
            item = self.type_of(node.get("items", {}), depth)
            return f"({item})[]" if " " in item and not item.startswith("{") else f"{item}[]"
        if t == "object" or "properties" in node:
            return self.object_of(node, depth)
        if t in ("string", "number", "integer", "boolean", "null"):
            return {"integer": "integer", "number": "number"}.get(t, t)
        return "any"

    def object_of(self, node: dict[str, Any], depth: int) -> str:
        props = node.get("properties") or {}
        extra = node.get("additionalProperties", True)
        if not props:
            value = "any" if extra is True or extra == {} else self.type_of(extra, depth)
            return "{ [name: string]: " + value + " }" if extra is not False else "{}"
        required = set(node.get("required", []))
        pad = "  " * (depth + 1)
        lines = ["{"]
        for key, sub in props.items():
            optional = key not in required
            field = key if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", key) else json.dumps(key)
            typ = self.type_of(sub, depth + 1)
            notes = self.notes(sub if isinstance(sub, dict) else {}, optional)
            lines.append(f"{pad}{field}{'?' if optional else ''}: {typ};" + (f"  // {notes}" if notes else ""))
        if isinstance(extra, dict) and extra:
            lines.append(f"{pad}[other: string]: {self.type_of(extra, depth + 1)};")
        lines.append("  " * depth + "}")
        return "\n".join(lines)

    def notes(self, node: dict[str, Any], optional: bool) -> str:
        parts = []
        if optional:
            parts.append("optional" + (f" (default {json.dumps(node['default'], ensure_ascii=False)})" if "default" in node else ""))
        for part in (node, *node.get("anyOf", ()), *node.get("oneOf", ())):  # Optional[bounded]: on its option
            if isinstance(part, dict):
                parts += [text.format(_plain(part[key])) for key, text in _BOUNDS if key in part]
        if not any(k in node for k in _TYPED):
            parts.append("any JSON value")
        desc = self.describe(node)
        if desc:
            parts.append(desc.replace("\n", " "))
        return "; ".join(parts)
