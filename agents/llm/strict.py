"""JSON Schemas every structured-output server accepts, and the way back to our answer types.

OpenAI's strict mode accepts a subset of JSON Schema: every object lists all its properties
in ``required`` and forbids others (``additionalProperties: false``), an optional property
is nullable instead, and there are no free-form values (``{}``) or maps
(``additionalProperties: <schema>``). msgspec's schemas for our answer types use all three.
:func:`strict_schema` rewrites a schema into that subset, and marks in each rewritten node's
``description`` what it did, so that :func:`from_strict` (the answer back to the original
shape) and :func:`to_strict` (an original-shaped answer into the strict shape: the sim
server answers so) need only the strict schema:

- an optional property becomes required and nullable (``[optional]``): ``null`` means left
  out, so the answer type's default applies;
- a map ``{name: X}`` becomes a list of ``{"name", "value": X}`` pairs (``[map]``);
- a free-form value becomes a string holding its JSON (``[json]``);
- ``default`` is dropped (strict mode has no defaults).

``$defs`` are rewritten the same way; ``$ref`` is kept. :func:`loose_schema` undoes the
rewrite (all but the dropped defaults and the closing of objects), so
a server that gets a marked strict schema can answer as it would for the original one (the
sim server does); a ``null`` option the rewrite added is told from one the schema had by
its description (:data:`LEFT_OUT`). Pure functions, no I/O.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import msgspec

STRICT_SHAPE = "openai-strict"
"""The name of this shape where an answer says it is in it (``Completion.shape``, ``LlmCalled.answer_shape``)."""
OPTIONAL = "[optional] "
MAP = "[map] "
JSON = "[json] "
LEFT_OUT = "left out"
"""The description of a ``null`` option the rewrite added to an optional property."""
_SCALARS = {"string", "number", "integer", "boolean", "null"}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` rewritten into the strict subset (see the module doc); a root that is a
    ``$ref`` (msgspec's) is replaced by the object it names, as strict mode wants an object
    at the root."""
    out = _node(_inline_root(copy.deepcopy(schema)))
    if "$defs" in out:
        out["$defs"] = {k: _node(v) for k, v in out["$defs"].items()}
    return out


def _inline_root(schema: dict[str, Any]) -> dict[str, Any]:
    ref, defs = schema.get("$ref"), schema.get("$defs")
    if set(schema) != {"$ref", "$defs"} or not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return schema
    name = ref.removeprefix("#/$defs/")
    if not isinstance(defs, dict) or not isinstance(defs.get(name), dict):
        return schema
    root = dict(defs[name])
    rest = dict(defs)
    if f'"{ref}"' not in json.dumps(defs):  # not recursive: the root needs no entry of its own
        del rest[name]
    if rest:
        root["$defs"] = rest
    return root


def _describe(node: dict[str, Any], mark: str) -> dict[str, Any]:
    node["description"] = mark + str(node.get("description", ""))
    return node


def _untyped(node: dict[str, Any]) -> bool:
    return not any(k in node for k in ("type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const", "properties"))


def _node(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node.pop("default", None)
    if _untyped(node):
        return _describe({"type": "string", "description": node.get("description", "a JSON value")}, JSON)
    for key in ("anyOf", "oneOf"):
        if key in node:
            node[key] = [_node(n) for n in node[key]]
    if node.get("type") == "array" and "items" in node:
        node["items"] = _node(node["items"])
    if node.get("type") == "object" or "properties" in node:
        props = node.get("properties")
        extra = node.get("additionalProperties", True)
        if not props and extra is not False:  # a map ({"type": "object"} alone: of any values)
            pair = {"type": "object", "additionalProperties": False, "required": ["name", "value"],
                    "properties": {"name": {"type": "string"}, "value": _node(extra if isinstance(extra, dict) else {})}}
            out = {"type": "array", "items": pair}
            if "description" in node:
                out["description"] = node["description"]
            return _describe(out, MAP)
        props = props or {}
        required = set(node.get("required", []))
        new_props = {}
        for name, sub in props.items():
            sub = _node(sub)
            if name not in required:
                sub = _describe(_nullable(sub), OPTIONAL)
            new_props[name] = sub
        node["properties"] = new_props
        node["required"] = list(new_props)
        node["additionalProperties"] = False
    return node


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    t = node.get("type")
    if isinstance(t, str) and t in _SCALARS and "enum" not in node:
        return {**node, "type": [t, "null"]}
    if isinstance(t, list):
        return {**node, "type": [*t, "null"] if "null" not in t else t}
    if "anyOf" in node:
        if any(o.get("type") == "null" for o in node["anyOf"]):
            return node
        return {**node, "anyOf": [*node["anyOf"], _left_out()]}
    return {"anyOf": [node, _left_out()]}


def _left_out() -> dict[str, Any]:
    return {"type": "null", "description": LEFT_OUT}


# ---------------------------------------------------------------------- the way back


def marked(schema: dict[str, Any]) -> bool:
    """Whether any node of ``schema`` carries a mark of :func:`strict_schema` (it was rewritten)."""

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            return bool(_marks(node)) or any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False
    return walk(schema)


def loose_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema :func:`strict_schema` made ``schema`` from, as far as its marks tell:
    optional properties, maps and free-form values restored. Not restored: ``default``
    values (dropped), and objects keep the ``additionalProperties: false`` and ``required``
    list the rewrite gave them (a hand-written ``type`` list that allowed ``null`` and was
    optional also loses its ``null``)."""
    out = _loose(copy.deepcopy(schema))
    if "$defs" in out:
        out["$defs"] = {k: _loose(v) for k, v in out["$defs"].items()}
    name = out.get("title")
    if "$ref" not in out and out.get("type") == "object" and isinstance(name, str) and name:
        defs = out.pop("$defs", {})  # msgspec's form: the root a $ref to its entry
        out = {"$ref": f"#/$defs/{name}", "$defs": defs if name in defs else {name: out, **defs}}
    return out


def _unmark(node: dict[str, Any], mark: str) -> dict[str, Any]:
    desc = str(node.get("description", "")).removeprefix(mark)
    node = {k: v for k, v in node.items() if k != "description"}
    if desc:
        node["description"] = desc
    return node


def _unnull(node: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`_nullable`."""
    t = node.get("type")
    if isinstance(t, list) and "null" in t:
        rest = [x for x in t if x != "null"]
        return {**node, "type": rest[0] if len(rest) == 1 else rest}
    options = node.get("anyOf")
    if isinstance(options, list) and options and options[-1] == _left_out():
        kept = options[:-1]
        if len(kept) == 1 and set(node) == {"anyOf"}:
            return kept[0]  # a wrap
        return {**node, "anyOf": kept}
    return node


def _loose(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    marks = _marks(node)
    if OPTIONAL in marks:
        return _loose(_unnull(_unmark(node, OPTIONAL)))
    if JSON in marks:
        plain = _unmark(node, JSON)
        desc = plain.get("description")
        return {"description": desc} if desc and desc != "a JSON value" else {}
    if MAP in marks:
        plain = _unmark(node, MAP)
        value = _resolve_local(plain.get("items", {})).get("properties", {}).get("value", {})
        out: dict[str, Any] = {"type": "object"}
        value = _loose(value)
        if value:  # a map of any values is the plain object
            out["additionalProperties"] = value
        if "description" in plain:
            out["description"] = plain["description"]
        return out
    for key in ("anyOf", "oneOf"):
        if key in node:
            node[key] = [_loose(n) for n in node[key]]
    if "items" in node:
        node["items"] = _loose(node["items"])
    if "properties" in node:
        props = node["properties"]
        node["required"] = [k for k in node.get("required", []) if OPTIONAL not in _marks(props.get(k, {}))]
        node["properties"] = {k: _loose(v) for k, v in props.items()}
    return node


def _resolve_local(node: Any) -> dict[str, Any]:
    return node if isinstance(node, dict) else {}


# ---------------------------------------------------------------------- values


def from_strict(value: Any, schema: dict[str, Any]) -> Any:
    """An answer in the strict shape of ``schema`` (a :func:`strict_schema`) back in the
    original shape: optional nulls left out, pairs as maps, JSON strings decoded."""
    return _back(value, schema, schema.get("$defs", {}))


Reader = Callable[[Any], Any]
_decode_json = msgspec.json.Decoder().decode


def strict_reader(schema: dict[str, Any]) -> Reader:
    """:func:`from_strict` for one ``schema``, worked out once: the returned function maps
    a value as ``from_strict(value, schema)`` does, visiting only the parts of the value
    under rewritten nodes (the port reads every answer of the ``openai`` flavor with one)."""
    defs = schema.get("$defs", {})
    done: dict[str, Reader | None] = {}

    def of_ref(name: str) -> Reader | None:
        if name not in done:
            done[name] = _deferred(done, name)  # a recursive type reads itself through this
            done[name] = build(defs.get(name, {}))
        return done[name]

    def build(node: Any) -> Reader | None:  # None: the value comes back as it is
        if not isinstance(node, dict):
            return None
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return of_ref(ref.removeprefix("#/$defs/"))
        marks = _marks(node)
        if JSON in marks:
            return _read_json
        if MAP in marks:
            return _map_reader(build(_resolve(node.get("items", {}), defs).get("properties", {}).get("value", {})))
        options = _options(node)
        if options:
            readers = [(o, build(o)) for o in options]
            return None if all(r is None for _, r in readers) else _union_reader(readers, defs)
        if "properties" in node:
            plan = {k: (OPTIONAL in _marks(sub), build(sub)) for k, sub in node["properties"].items()}
            return _object_reader(plan) if any(opt or r is not None for opt, r in plan.values()) else None
        if "items" in node:
            item = build(node["items"])
            return None if item is None else _list_reader(item)
        return None

    top = build(schema)
    return top if top is not None else _same


def _same(value: Any) -> Any:
    return value


def _deferred(done: dict[str, Reader | None], name: str) -> Reader:
    def read(value: Any) -> Any:
        r = done[name]
        return value if r is None else r(value)
    return read


def _read_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return _decode_json(value)
        except msgspec.DecodeError:
            return value  # not JSON: the answer's validation names it
    return value


def _map_reader(item: Reader | None) -> Reader:
    def read(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return {str(p.get("name")): (p.get("value") if item is None else item(p.get("value")))
                for p in value if isinstance(p, dict)}
    return read


def _union_reader(readers: list[tuple[dict[str, Any], Reader | None]], defs: dict[str, Any]) -> Reader:
    def read(value: Any) -> Any:
        if value is None:
            return None
        for option, r in readers:
            if _fits(value, option, defs):
                return value if r is None else r(value)
        return value
    return read


def _object_reader(plan: dict[str, tuple[bool, Reader | None]]) -> Reader:
    def read(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out = {}
        for k, v in value.items():
            p = plan.get(k)
            if p is None:
                out[k] = v
            elif v is None and p[0]:
                continue  # left out: the default applies
            else:
                out[k] = v if p[1] is None else p[1](v)
        return out
    return read


def _list_reader(item: Reader) -> Reader:
    def read(value: Any) -> Any:
        return [item(v) for v in value] if isinstance(value, list) else value
    return read


def to_strict(value: Any, schema: dict[str, Any]) -> Any:
    """An answer in the original shape put into the strict shape of ``schema``."""
    return _forth(value, schema, schema.get("$defs", {}))


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return defs.get(ref.removeprefix("#/$defs/"), {})
    return node


def _marks(node: dict[str, Any]) -> set[str]:
    """The rewrites marked at the start of a node's description (they may stack)."""
    desc = str(node.get("description", ""))
    found: set[str] = set()
    while True:
        mark = next((m for m in (OPTIONAL, MAP, JSON) if desc.startswith(m)), None)
        if mark is None:
            return found
        found.add(mark)
        desc = desc[len(mark):]


def _options(node: dict[str, Any]) -> list[dict[str, Any]]:
    return list(node.get("anyOf") or node.get("oneOf") or [])


def _fits(value: Any, node: dict[str, Any], defs: dict[str, Any]) -> bool:
    node = _resolve(node, defs)
    if _options(node):
        return any(_fits(value, o, defs) for o in _options(node))
    t = node.get("type")
    types = t if isinstance(t, list) else [t]
    checks = {"object": isinstance(value, dict), "array": isinstance(value, list),
              "string": isinstance(value, str), "null": value is None, "boolean": isinstance(value, bool),
              "integer": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, int | float) and not isinstance(value, bool)}
    return any(checks.get(x, x is None) for x in types)


def _fits_original(value: Any, node: dict[str, Any], defs: dict[str, Any]) -> bool:
    """Whether ``value``, in the original shape, belongs to the strict ``node``."""
    marks = _marks(_resolve(node, defs))
    if JSON in marks:
        return True
    if MAP in marks:
        return isinstance(value, dict)
    return _fits(value, node, defs)


def _pick(value: Any, node: dict[str, Any], defs: dict[str, Any], original: bool = False) -> dict[str, Any] | None:
    """The option of a union ``value`` belongs to (the first that fits; None: none does).
    ``original``: ``value`` is in the original shape (a map is a dict, a JSON value anything)."""
    fits = _fits_original if original else _fits
    for o in _options(node):
        if fits(value, o, defs):
            return _resolve(o, defs)
    return None


def _back(value: Any, node: dict[str, Any], defs: dict[str, Any]) -> Any:
    node = _resolve(node, defs)
    marks = _marks(node)
    if JSON in marks and isinstance(value, str):
        return _read_json(value)
    if MAP in marks and isinstance(value, list):
        item = node.get("items", {})
        vnode = _resolve(item, defs).get("properties", {}).get("value", {})
        return {str(p.get("name")): _back(p.get("value"), vnode, defs) for p in value if isinstance(p, dict)}
    if _options(node):
        option = None if value is None else _pick(value, node, defs)
        return value if option is None else _back(value, option, defs)
    if isinstance(value, dict) and "properties" in node:
        out = {}
        for k, v in value.items():
            sub = node["properties"].get(k)
            if sub is None:
                out[k] = v
                continue
            if v is None and OPTIONAL in _marks(sub):
                continue  # left out: the default applies
            out[k] = _back(v, sub, defs)
        return out
    if isinstance(value, list) and "items" in node:
        return [_back(v, node["items"], defs) for v in value]
    return value


def _forth(value: Any, node: dict[str, Any], defs: dict[str, Any]) -> Any:
    node = _resolve(node, defs)
    marks = _marks(node)
    if JSON in marks and not (value is None and OPTIONAL in marks):
        return json.dumps(value, sort_keys=True)
    if MAP in marks and isinstance(value, dict):
        item = node.get("items", {})
        vnode = _resolve(item, defs).get("properties", {}).get("value", {})
        return [{"name": k, "value": _forth(v, vnode, defs)} for k, v in value.items()]
    if _options(node):
        option = None if value is None else _pick(value, node, defs, original=True)
        return value if option is None else _forth(value, option, defs)
    if isinstance(value, dict) and "properties" in node:
        return {k: (_forth(value[k], sub, defs) if k in value else None) for k, sub in node["properties"].items()}
    if isinstance(value, list) and "items" in node:
        return [_forth(v, node["items"], defs) for v in value]
    return value


# OpenAI's strict mode accepts a subset of JSON Schema and bounds a schema's size. From
# "Structured Outputs: Supported schemas" (platform.openai.com/docs/guides/structured-outputs,
# as summarised with its February 2026 baseline at
# https://jsonschemaprofiles.unitvectorylabs.com/schemas/openai): supported are string,
# number, boolean, integer, object, array, enum and anyOf (not at the root); for strings
# `pattern` and `format`; for numbers `multipleOf`, `maximum`, `exclusiveMaximum`, `minimum`,
# `exclusiveMinimum`; for arrays `minItems`, `maxItems`; objects through `properties`,
# `required` and `additionalProperties`; definitions and recursion through `$defs`/`$ref`.
# Documented as unsupported: `allOf`, `not`, `dependentRequired`, `dependentSchemas`, `if`,
# `then`, `else` (anything else not listed is treated as unsupported here too, e.g. `oneOf`,
# `default`, `minLength`). Limits: at most 5,000 object properties in all, 10 levels of object
# nesting, 120,000 characters of property names, definition names, enum and const values
# together, 1,000 enum values in all, and for a string enum of more than 250 values at most
# 15,000 characters of values. (At launch, August 2024, the limits were 100 properties and 5
# levels: https://community.openai.com/t/measuring-maximum-depth-and-object-properties-in-structured-outputs/918388,
# and "6 levels of nesting exceeds limit of 5" in https://github.com/tidyverse/ellmer/issues/671;
# pass those to strict_problems for an older deployment.)
STRICT_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "anyOf", "enum", "const",
    "$ref", "$defs", "definitions", "description", "title",
    "pattern", "format", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "minItems", "maxItems",
})
"""The JSON Schema keywords OpenAI's strict mode accepts (see the comment above for the source)."""


class StrictLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The size limits of one strict schema (OpenAI's documented ones by default)."""

    max_properties: int = 5000
    max_depth: int = 10
    max_string_chars: int = 120_000
    max_enum_values: int = 1000
    big_enum: int = 250
    max_big_enum_chars: int = 15_000


def strict_problems(schema: dict[str, Any], limits: StrictLimits = StrictLimits()) -> list[str]:
    """Where ``schema`` breaks OpenAI's strict-mode rules (empty when it keeps them all):
    the root is an object, objects forbid extra properties and require every property,
    nothing is untyped, there are no maps and no defaults, only supported keywords
    (:data:`STRICT_KEYWORDS`) are used, and the size stays within ``limits`` (properties,
    object nesting, names and enum values). Paths are JSON-pointer-like."""
    problems: list[str] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        unsupported = sorted(k for k in node if k not in STRICT_KEYWORDS)
        if unsupported:
            problems.append(f"{path}: unsupported keywords {unsupported}")
        if "default" in node:
            problems.append(f"{path}: has a default")
        if _untyped(node) and "$ref" not in node:
            problems.append(f"{path}: untyped")
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for i, o in enumerate(node.get(key, [])):
                walk(o, f"{path}/{key}/{i}")
        if "items" in node:
            walk(node["items"], f"{path}/items")
        if node.get("type") == "object" or "properties" in node:
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties is not false")
            props = node.get("properties", {})
            missing = sorted(set(props) - set(node.get("required", [])))
            if missing:
                problems.append(f"{path}: properties not required: {missing}")
            for name, sub in props.items():
                walk(sub, f"{path}/properties/{name}")
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("#: the root is not an object")
    walk({k: v for k, v in schema.items() if k != "$defs"}, "#")
    for name, sub in schema.get("$defs", {}).items():
        walk(sub, f"#/$defs/{name}")
    problems += _size_problems(schema, limits)
    return problems


def _size_problems(schema: dict[str, Any], limits: StrictLimits) -> list[str]:
    """The limits ``schema`` exceeds: counted over the root and each definition once."""
    defs = schema.get("$defs", {}) if isinstance(schema.get("$defs"), dict) else {}
    props = chars = enum_values = 0
    problems: list[str] = []

    def count(node: Any, path: str) -> None:
        nonlocal props, chars, enum_values
        if isinstance(node, list):
            for i, x in enumerate(node):
                count(x, f"{path}/{i}")
            return
        if not isinstance(node, dict):
            return
        if isinstance(node.get("properties"), dict):
            props += len(node["properties"])
            chars += sum(len(k) for k in node["properties"])
        values = node.get("enum")
        if isinstance(values, list):
            enum_values += len(values)
            strings = [v for v in values if isinstance(v, str)]
            chars += sum(len(v) for v in strings)
            if len(strings) > limits.big_enum and sum(map(len, strings)) > limits.max_big_enum_chars:
                problems.append(f"{path}: an enum of {len(strings)} strings longer than "
                                f"{limits.max_big_enum_chars} characters in all")
        if isinstance(node.get("const"), str):
            chars += len(node["const"])
        for key, sub in node.items():
            if key in ("properties", "$defs") and isinstance(sub, dict):
                for name, x in sub.items():
                    if key == "$defs":
                        chars += len(name)
                    count(x, f"{path}/{key}/{name}")
            elif key not in ("enum", "const"):
                count(sub, f"{path}/{key}")

    count(schema, "#")
    depth, where = _object_depth(schema, defs)
    if props > limits.max_properties:
        problems.append(f"#: {props} object properties (limit {limits.max_properties})")
    if depth > limits.max_depth:
        problems.append(f"{where}: {depth} levels of object nesting (limit {limits.max_depth})")
    if chars > limits.max_string_chars:
        problems.append(f"#: {chars} characters of names and enum values (limit {limits.max_string_chars})")
    if enum_values > limits.max_enum_values:
        problems.append(f"#: {enum_values} enum values (limit {limits.max_enum_values})")
    return problems


def _object_depth(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[int, str]:
    """The deepest nesting of objects in ``schema`` (the root object is level 1) and where
    it is; arrays and unions add no level; a reference is followed unless it recurses
    (recursion is allowed and has no depth of its own)."""
    best = (0, "#")

    def walk(node: Any, depth: int, path: str, refs: tuple[str, ...]) -> None:
        nonlocal best
        if isinstance(node, list):
            for i, x in enumerate(node):
                walk(x, depth, f"{path}/{i}", refs)
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name not in refs:
                walk(defs.get(name), depth, f"#/$defs/{name}", (*refs, name))
            return
        if node.get("type") == "object" or "properties" in node:
            depth += 1
            if depth > best[0]:
                best = (depth, path)
        for key, sub in node.items():
            if key == "properties" and isinstance(sub, dict):
                for name, x in sub.items():
                    walk(x, depth, f"{path}/properties/{name}", refs)
            elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
                walk(sub, depth, f"{path}/{key}", refs)

    title = schema.get("title")
    root_refs = (title,) if isinstance(title, str) and title in defs else ()  # a recursive root inlined
    walk({k: v for k, v in schema.items() if k != "$defs"}, 0, "#", root_refs)
    return best
