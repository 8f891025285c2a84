"""Every JSON answer's shape is in its request's text (agents/llm/shape.py), complete and bounded.

A model behind vLLM's structured outputs or outlines is constrained to the schema but
never sees it; the rendering in the system message is what it reads. Checked per output
type a role answers with: the rendering names every field of every Struct the type
reaches, stays under a bound, and an answer written from the rendering alone (parsed
back by a small reader of the notation, values chosen as its comments say) validates.
"""

from __future__ import annotations

import json
import random
import re
from typing import Annotated, Any, Literal

import msgspec
import pytest

from scaleenv._agents.llm.port import Llm, LlmRequest, render_messages, shape_for, validation_error, with_shape
from scaleenv._agents.llm.shape import ANSWER_LINE, SHAPE_MAX_CHARS, render_shape, shape_text
from scaleenv._store import Stream
from scaleenv._store.events.llm import CallResolver, LlmCalled
from scaleenv._store.log import Log
from tests.replay.goldens import CURRENT, expected_path, golden_log, load_prefix

from .test_port import ScriptedBackend
from .test_request_bodies import OUTPUT_TYPES, ROLES

JSON_ANSWERS = sorted(name for name, role in ROLES.items() if role != "policy")
"""Output types answered as one JSON object (the policy answers in the API's tool calls)."""
SHAPE_BOUNDS = {"ToolGroupDesign": 3600, "SchemaDesign": 1800, "DomainOutline": 1200, "DebugAnswer": 900,
                "TestPlan": 900}
"""The most characters each output type's shape may take in a prompt (others: 600)."""


def structs_reached(t: Any) -> dict[str, msgspec.inspect.StructType]:
    """Every Struct type ``t`` reaches, by name (walking msgspec's type info)."""
    found: dict[str, msgspec.inspect.StructType] = {}

    def walk(info: Any) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls.__name__ in found:
                return
            found[info.cls.__name__] = info
            for f in info.fields:
                walk(f.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            for x in info.types:
                walk(x)
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType,
                               msgspec.inspect.VarTupleType)):
            walk(info.item_type)
        elif isinstance(info, msgspec.inspect.TupleType):
            for x in info.item_types:
                walk(x)
        elif isinstance(info, msgspec.inspect.DictType):
            walk(info.key_type)
            walk(info.value_type)
        elif isinstance(info, msgspec.inspect.Metadata):
            walk(info.type)
    walk(msgspec.inspect.type_info(t))
    return found


def blocks(rendered: str) -> dict[str, str]:
    """The rendered declarations by type name (``type X = ...;``, comments before it dropped)."""
    out: dict[str, str] = {}
    lines = rendered.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"type (\w+) = ", lines[i])
        if m:
            j = i
            while not (lines[j].endswith(";") and (j == i or lines[j] == "};")):
                j += 1
            out[m[1]] = "\n".join(lines[i:j + 1])
            i = j
        i += 1
    return out


@pytest.mark.parametrize("output", JSON_ANSWERS)
def test_the_shape_names_every_field_of_every_struct_it_reaches(output: str) -> None:
    t = OUTPUT_TYPES[output]
    text = shape_for(t)
    assert text.startswith(ANSWER_LINE.format(name=output))
    declared = blocks(text)
    for name, info in structs_reached(t).items():
        assert name in declared, f"{output}: no declaration of {name}"
        for f in info.fields:
            mark = "?" if not f.required else ""
            assert re.search(rf"^  {re.escape(f.encode_name)}{re.escape(mark)}: ", declared[name], re.M), \
                f"{output}: {name}.{f.encode_name} is not shown as {'optional' if mark else 'required'}"
            if not f.required:
                assert re.search(rf"^  {re.escape(f.encode_name)}\?: .*// optional", declared[name], re.M)
    assert "[optional]" not in text and "[map]" not in text and "[json]" not in text  # no strict-rewrite markers


@pytest.mark.parametrize("output", JSON_ANSWERS)
def test_each_shape_stays_under_its_bound(output: str) -> None:
    text = shape_for(OUTPUT_TYPES[output])
    bound = SHAPE_BOUNDS.get(output, 600)
    assert len(text) <= bound, f"{output}: {len(text)} characters (bound {bound})"
    assert "the rest is cut" not in text


# ------------------------------------------------- an answer written from the text alone


class _Reader:
    """Reads the notation render_shape writes back into (kind, ...) tuples."""

    def __init__(self, text: str) -> None:
        self.types: dict[str, Any] = {}
        for name, block in blocks(text).items():
            body = block.split(" = ", 1)[1].rstrip(";")
            self.types[name] = self.parse(body)

    def parse(self, expr: str) -> Any:
        expr = expr.strip()
        if expr.startswith("{\n"):
            fields = []
            for line in expr.splitlines()[1:-1]:
                m = re.fullmatch(r"  (\w+)(\??): (.*?);(?:  // (.*))?", line)
                assert m, f"unreadable field line {line!r}"
                fields.append((m[1], m[2] == "?", self.parse(m[3]), m[4] or ""))
            return ("object", fields)
        m = re.fullmatch(r"\{ \[name: string\]: (.*) \}", expr)
        if m:
            return ("map", self.parse(m[1]))
        parts = _split_union(expr)
        if len(parts) > 1:
            return ("union", [self.parse(p) for p in parts])
        if expr.endswith("[]"):
            inner = expr[:-2]
            return ("array", self.parse(inner[1:-1] if inner.startswith("(") else inner))
        if expr in ("string", "number", "integer", "boolean", "null", "any"):
            return (expr,)
        if expr in self.types or re.fullmatch(r"\w+", expr):
            return ("ref", expr)
        return ("literal", msgspec.json.decode(expr))


def _split_union(expr: str) -> list[str]:
    """``expr`` split at its top-level `` | `` (not inside brackets or string literals)."""
    parts, depth, start, quoted, i = [], 0, 0, False, 0
    while i < len(expr):
        ch = expr[i]
        if ch == '"' and (i == 0 or expr[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "([{":
            depth += 1
        elif not quoted and ch in ")]}":
            depth -= 1
        elif not quoted and depth == 0 and expr.startswith(" | ", i):
            parts.append(expr[start:i])
            start = i = i + 3
            continue
        i += 1
    parts.append(expr[start:])
    return parts


def _write(reader: _Reader, node: Any, notes: str, rng: random.Random, depth: int = 0) -> Any:
    kind = node[0]
    if kind == "ref":
        return _write(reader, reader.types[node[1]], "", rng, depth)
    if kind == "object":
        out = {}
        for name, optional, sub, sub_notes in node[1]:
            if optional and rng.random() < 0.5:
                continue
            out[name] = _write(reader, sub, sub_notes, rng, depth + 1)
        return out
    if kind == "union":
        options = [o for o in node[1] if o != ("null",)] or node[1]
        return _write(reader, rng.choice(options), notes, rng, depth)
    if kind == "array":
        return [_write(reader, node[1], "", rng, depth + 1) for _ in range(rng.randint(1 if depth < 4 else 0, 2))]
    if kind == "map":
        return {"k": _write(reader, node[1], "", rng, depth + 1)}
    if kind == "literal":
        return node[1]
    if kind == "string":
        pattern = re.search(r"matching /(.*?)/(?:;|$)", notes)
        for candidate in ("item_a", "x", "a1"):
            if pattern is None or re.search(pattern[1], candidate):
                return candidate
        raise AssertionError(f"no candidate string matches {pattern[1]}")
    if kind in ("number", "integer"):
        low = float(m[1]) if (m := re.search(r">= ([-\d.]+)", notes)) else 0
        high = float(m[1]) if (m := re.search(r"<= ([-\d.]+)", notes)) else low + 10
        value = rng.uniform(low, high)
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "any":
        return rng.choice([1, "x", {"a": 1}, [True]])
    raise AssertionError(f"unknown node {node!r}")


@pytest.mark.parametrize("output", JSON_ANSWERS)
def test_an_answer_written_from_the_shape_alone_validates(output: str) -> None:
    t = OUTPUT_TYPES[output]
    text = shape_for(t)
    reader = _Reader(text)
    rng = random.Random(11)
    valid, errors = 0, []
    for _ in range(40):
        answer = _write(reader, ("ref", output), "", rng)
        value, error = validation_error(msgspec.json.encode(answer).decode(), t)
        if error is None:
            valid += 1
        else:
            errors.append(error)
    # a type's own cross-field rules may refuse some answers (none of ours refuses most)
    assert valid >= 30, (output, errors[:3])
    # and the reader is not blind: an answer without a required field of the root is refused
    root = reader.types[output][1]
    required = [name for name, optional, _, _ in root if not optional]
    assert required
    answer = _write(reader, ("ref", output), "", random.Random(1))
    answer.pop(required[0], None)
    assert validation_error(msgspec.json.encode(answer).decode(), t)[1] is not None


# ------------------------------------------------- the renderer on shapes the roles do not use yet


class Node(msgspec.Struct, kw_only=True):
    """A node of a tree.

    The tree may be as deep as needed."""

    label: Annotated[str, msgspec.Meta(min_length=1, max_length=20, description="what the node is called")]
    kind: Literal["leaf", "branch"] = "leaf"
    children: list["Node"] = []
    attrs: dict[str, int] = {}
    payload: Any = None
    score: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None


def test_recursion_enums_maps_bounds_and_descriptions() -> None:
    text = render_shape(msgspec.json.schema(Node))
    assert text.count("type Node = ") == 1  # recursive: declared once, referred to by name
    assert "children?: Node[];  // optional (default [])" in text
    assert 'kind?: "branch" | "leaf";  // optional (default "leaf")' in text or \
        'kind?: "leaf" | "branch";  // optional (default "leaf")' in text
    assert "attrs?: { [name: string]: integer };" in text
    assert "payload?: any;  // optional (default null); any JSON value" in text
    assert "label: string;  // length >= 1; length <= 20; what the node is called" in text
    assert "score?: number | null;  // optional (default null); >= 0; <= 1" in text
    assert text.startswith("// A node of a tree.\n//\n// The tree may be as deep as needed.\ntype Node = {")


def test_a_long_shape_is_shortened_then_cut_to_its_bound() -> None:
    schema = msgspec.json.schema(Node)
    full = render_shape(schema)
    brief = render_shape(schema, max_chars=len(full) - 1)
    assert "The tree may be as deep" not in brief and "A node of a tree." in brief  # first sentences only
    bare = render_shape(schema, max_chars=len(brief) - 1)
    assert "A node of a tree" not in bare and "what the node is called" not in bare and "// optional" in bare
    cut = render_shape(schema, max_chars=120)
    assert len(cut) <= 120 and "the rest is cut" in cut
    assert len(shape_text(msgspec.json.schema(OUTPUT_TYPES["ToolGroupDesign"]))) <= SHAPE_MAX_CHARS


# ------------------------------------------------- what the port sends


class Counted(msgspec.Struct, forbid_unknown_fields=True):
    label: str
    count: int = 0


async def test_the_port_sends_the_shape_once_and_records_what_it_sent(writer, log) -> None:
    backend = ScriptedBackend(['{"label": 1}', '{"label": "a"}', '{"label": "b"}'])
    llm = Llm(backend, run_seed=1)
    s = Stream(writer, "tool/d00/x")
    request = LlmRequest(role="coder", messages=render_messages("Write it.", {"k": 1}, "Go."), context={"k": 1})
    await llm.generate(s, request, Counted)  # the first answer is rejected: the retry keeps the one shape
    tools = ({"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}},)
    await llm.generate(s, LlmRequest(role="policy", messages=[{"role": "user", "content": "hi"}], context={},
                                     tools=tools), Counted)
    await writer.aclose()
    shape = shape_for(Counted)
    first, retry, policy = backend.requests
    assert first.messages[0]["content"] == f"Write it.\n\n{shape}"
    assert retry.messages[0] == first.messages[0] and sum(shape in str(m["content"]) for m in retry.messages) == 1
    assert "type Counted = {\n  label: string;\n  count?: integer;  // optional (default 0)\n};" in shape
    assert policy.messages == [{"role": "user", "content": "hi"}]  # tools: answered in tool calls, no shape
    stored = [r.event for r in log.read() if isinstance(r.event, LlmCalled)]
    assert stored[0].messages[0]["content"] == first.messages[0]["content"]
    # without a system message the shape gets one of its own; a request that has it already keeps it as is
    assert with_shape([{"role": "user", "content": "u"}], shape) == [{"role": "system", "content": shape},
                                                                    {"role": "user", "content": "u"}]
    assert with_shape(first.messages, shape) is first.messages
    parts = [{"role": "system", "content": [{"type": "text", "text": "Write it."}]}, {"role": "user", "content": "u"}]
    shaped = with_shape(parts, shape)
    assert shaped == [parts[0], {"role": "system", "content": shape}, parts[1]] and with_shape(shaped, shape) is shaped


def test_every_json_request_of_a_run_carries_its_answers_shape(tmp_path: Any) -> None:
    """In the current golden run (every role, the sim behind the port), each call that asks
    for one JSON object ends its system message with its output type's shape; the policy's and
    the gate oracle's (offered tools) carry none."""
    lines = json.loads(expected_path(CURRENT).read_text())["rollout"]["lines"]
    load_prefix(golden_log(CURRENT), lines, tmp_path / "log.lmdb")
    resolver, roles = CallResolver(), set()
    with Log.open(tmp_path / "log.lmdb", readonly=True) as lg:
        for r in lg.read():
            if not isinstance(r.event, LlmCalled):
                continue
            call = resolver.resolve(r.stream, r.n, r.event)
            system = str(call.messages[0]["content"])
            shape = shape_for(OUTPUT_TYPES[call.schema_name])
            if call.role in ("policy", "oracle"):
                assert shape not in system and call.tools
            else:
                assert call.messages[0]["role"] == "system" and system.endswith(shape), (r.stream, r.n)
                assert sum(shape in str(m.get("content")) for m in call.messages) == 1
            roles.add(call.role)
    assert {"architect", "database", "coder", "tester", "task_writer", "user", "policy", "oracle"} <= roles
