"""Every answer type's schema in the subset OpenAI's strict mode accepts, and back.

The rules checked (strict_problems) are OpenAI's published ones for strict structured
outputs: every object forbids extra properties and requires all of them, no untyped values,
no maps, no defaults, only the supported keywords, and the documented size limits (properties,
nesting, names and enum values; the source is cited in agents/llm/strict.py). Values cross in both directions: an answer in the original shape put
into the strict shape validates against the strict schema (jsonschema), and comes back equal.
"""

from __future__ import annotations

import random
from typing import Any

import jsonschema
import msgspec
import pytest

from scaleenv._agents.llm.strict import (LEFT_OUT, StrictLimits, from_strict, loose_schema, marked, strict_problems, strict_reader,
                                        strict_schema, to_strict)
from scaleenv._agents.rollout import answers as rollout_answers
from scaleenv._agents.sim.schema_instance import instance
from scaleenv._agents.synth import answers as synth_answers
from scaleenv._store.specs import DomainOutline


def answer_types() -> list[type]:
    out = []
    for module in (synth_answers, rollout_answers):
        for name in dir(module):
            t = getattr(module, name)
            if isinstance(t, type) and issubclass(t, msgspec.Struct) and t.__module__ == module.__name__:
                out.append(t)
    return out


TYPES = [*answer_types(), DomainOutline]  # the architect's outline is a spec type


def test_the_answer_types_are_all_here() -> None:
    names = {t.__name__ for t in TYPES}
    assert {"CodeAnswer", "TestPlan", "ToolGroupDesign", "SchemaDesign", "ChainAnswer", "GateAnswer",
            "InstructionAnswer", "PolicyTurn", "UserTurn"} <= names
    # msgspec's own schemas break the rules somewhere (the reason this module exists)
    assert any(strict_problems(msgspec.json.schema(t)) for t in TYPES)


@pytest.mark.parametrize("t", TYPES, ids=lambda t: t.__name__)
def test_every_strict_schema_keeps_the_rules(t: type) -> None:
    schema = strict_schema(msgspec.json.schema(t))
    assert strict_problems(schema) == []
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("t", TYPES, ids=lambda t: t.__name__)
def test_answers_cross_to_the_strict_shape_and_back(t: type) -> None:
    original = msgspec.json.schema(t)
    strict = strict_schema(original)
    validator = jsonschema.Draft202012Validator(strict)
    read = strict_reader(strict)
    rng = random.Random(7)
    crossed = 0
    for _ in range(200):  # the generator ignores patterns: most outlines it writes have a bad name
        raw = instance(original, rng)
        try:
            value = msgspec.convert(raw, t)
        except msgspec.ValidationError:
            continue  # an instance the type's own checks refuse (post-init rules): not an answer
        builtins = msgspec.to_builtins(value)
        shaped = to_strict(builtins, strict)
        errors = sorted(e.message for e in validator.iter_errors(shaped))
        assert not errors, (t.__name__, errors[:3])
        back = msgspec.convert(from_strict(shaped, strict), t)
        assert back == value
        assert read(shaped) == from_strict(shaped, strict)  # what the port uses: the same mapping
        crossed += 1
    assert crossed >= 5


class Inner(msgspec.Struct):
    a: int


class Doc(msgspec.Struct):
    must: str
    maybe: str = "x"
    anything: Any = None
    table: dict[str, int] = {}
    inner: Inner | None = None


def test_what_each_rewrite_does() -> None:
    s = strict_schema(msgspec.json.schema(Doc))
    root = s  # msgspec's root is a $ref: strict mode wants the object itself there
    assert "$ref" not in root and root["type"] == "object" and set(s["$defs"]) == {"Inner"}
    assert root["required"] == ["must", "maybe", "anything", "table", "inner"] and root["additionalProperties"] is False
    assert root["properties"]["maybe"]["type"] == ["string", "null"]
    assert root["properties"]["table"]["anyOf"][0]["type"] == "array"
    value = {"must": "m", "maybe": None, "anything": '{"k": [1, 2]}', "table": [{"name": "a", "value": 1}], "inner": None}
    assert from_strict(value, s) == {"must": "m", "anything": {"k": [1, 2]}, "table": {"a": 1}}
    assert msgspec.convert(from_strict(value, s), Doc) == Doc(must="m", anything={"k": [1, 2]}, table={"a": 1})


def _closed(node: Any) -> Any:
    """``node`` without defaults, every object closed (the two things loose_schema does not restore)."""
    if isinstance(node, dict):
        out = {k: _closed(v) for k, v in node.items() if k != "default"}
        if out.get("type") == "object" and "properties" in out:
            out["additionalProperties"] = False
            out.setdefault("required", [])
        return out
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


@pytest.mark.parametrize("t", [*TYPES, Doc], ids=lambda t: t.__name__)
def test_loose_schema_undoes_the_rewrite(t: type) -> None:
    """What the sim server answers for: the schema a strict one was made from."""
    original = msgspec.json.schema(t)
    strict = strict_schema(original)
    # marked exactly where something besides defaults, closed objects and the root's place changed
    rewritten = [p for p in strict_problems(_closed(original)) if not p.startswith("#: the root")]
    assert marked(strict) == bool(rewritten) and not marked(original)
    assert _closed(loose_schema(strict)) == _closed(original)
    assert strict_schema(loose_schema(strict)) == strict


def test_maps_and_json_values_cross_under_optional_wraps() -> None:
    s = strict_schema(msgspec.json.schema(Doc))
    for doc in (Doc(must="m"), Doc(must="m", maybe="y", anything=[1, {"a": None}], table={"a": 1, "b": 2}, inner=Inner(a=3)),
                Doc(must="m", table={}, anything="text")):
        shaped = to_strict(msgspec.to_builtins(doc), s)
        assert not list(jsonschema.Draft202012Validator(s).iter_errors(shaped))
        assert msgspec.convert(from_strict(shaped, s), Doc) == doc
        assert strict_reader(s)(shaped) == from_strict(shaped, s)
    # an optional null option the rewrite added is told from one the type had
    root = s["properties"]
    assert root["inner"]["anyOf"][-1] == {"type": "null"} and root["table"]["anyOf"][-1]["description"] == LEFT_OUT


class Tree(msgspec.Struct):
    name: str
    children: list[Tree] = []
    tags: dict[str, str] = {}


def test_a_recursive_type_crosses_and_reads_back() -> None:
    s = strict_schema(msgspec.json.schema(Tree))
    assert strict_problems(s) == [] and "Tree" in s["$defs"]  # the root's own entry stays: it is referred to
    tree = Tree("a", [Tree("b", tags={"k": "v"}), Tree("c", [Tree("d")])])
    shaped = to_strict(msgspec.to_builtins(tree), s)
    assert not list(jsonschema.Draft202012Validator(s).iter_errors(shaped))
    assert shaped["children"][0]["tags"] == [{"name": "k", "value": "v"}]
    assert msgspec.convert(strict_reader(s)(shaped), Tree) == tree == msgspec.convert(from_strict(shaped, s), Tree)


# ------------------------------------------------- keywords and size limits (OpenAI's documented ones)


def _object(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


@pytest.mark.parametrize("keyword, value", [
    ("allOf", [{"type": "string"}]), ("not", {"type": "null"}), ("oneOf", [{"type": "string"}]),
    ("minLength", 1), ("uniqueItems", True), ("if", {"type": "string"}), ("patternProperties", {"a": {}}),
])
def test_an_unsupported_keyword_is_reported_where_it_is(keyword: str, value: Any) -> None:
    schema = _object({"a": {"type": "string", keyword: value}})
    problems = strict_problems(schema)
    assert f"#/properties/a: unsupported keywords ['{keyword}']" in problems
    inside = {**_object({"a": {"$ref": "#/$defs/A"}}), "$defs": {"A": _object({"b": {"type": "string", keyword: value}})}}
    assert f"#/$defs/A/properties/b: unsupported keywords ['{keyword}']" in strict_problems(inside)
    # and the supported ones are not
    fine = _object({"s": {"type": "string", "pattern": "^a$", "format": "date", "description": "d", "title": "S"},
                    "n": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.5},
                    "l": {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 1, "maxItems": 2},
                    "c": {"anyOf": [{"const": "k"}, {"type": "null"}]}})
    assert strict_problems(fine) == []


def _nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = _object({"leaf": {"type": "string"}})
    for _ in range(levels - 1):
        node = _object({"inner": {"type": "array", "items": node}})  # arrays add no level
    return node


def test_too_deep_nesting_is_reported() -> None:
    assert strict_problems(_nested(10)) == []
    problems = strict_problems(_nested(11))
    assert len(problems) == 1 and "11 levels of object nesting (limit 10)" in problems[0]
    assert problems[0].startswith("#/properties/inner/items/properties/inner")
    # through definitions too, and against an older deployment's limit
    chain = {**_object({"a": {"$ref": "#/$defs/L1"}}),
             "$defs": {f"L{i}": _object({"a": {"$ref": f"#/$defs/L{i + 1}"}}) for i in range(1, 6)}
             | {"L6": _object({"z": {"type": "string"}})}}
    assert strict_problems(chain) == []
    assert any("7 levels of object nesting (limit 5)" in p for p in strict_problems(chain, StrictLimits(max_depth=5)))


def test_too_many_properties_enum_values_and_characters_are_reported() -> None:
    assert strict_problems(_object({f"p{i}": {"type": "string"} for i in range(5000)})) == []
    assert "#: 5001 object properties (limit 5000)" in strict_problems(
        _object({f"p{i}": {"type": "string"} for i in range(5001)}))
    assert "#: 1001 enum values (limit 1000)" in strict_problems(_object({"e": {"enum": list(range(1001))}}))
    big = [f"{i:03d}" + "x" * 60 for i in range(251)]  # 251 strings, 15,813 characters
    assert any("an enum of 251 strings longer than 15000" in p for p in strict_problems(_object({"e": {"enum": big}})))
    assert strict_problems(_object({"e": {"enum": big[:250]}})) == []
    names = {"n" * 1000 + str(i): {"type": "string"} for i in range(121)}
    assert any("characters of names and enum values (limit 120000)" in p for p in strict_problems(_object(names)))


def test_a_recursive_schema_has_no_depth_of_its_own() -> None:
    s = strict_schema(msgspec.json.schema(Tree))  # a Tree (level 1) and its tags' name/value pairs (level 2)
    assert strict_problems(s, StrictLimits(max_depth=2)) == []
    assert any("2 levels of object nesting (limit 1)" in p for p in strict_problems(s, StrictLimits(max_depth=1)))


@pytest.mark.parametrize("t", TYPES, ids=lambda t: t.__name__)
def test_every_strict_schema_keeps_even_the_launch_limits(t: type) -> None:
    """Well inside today's limits: even the 2024 ones (100 properties, 5 levels) hold."""
    assert strict_problems(strict_schema(msgspec.json.schema(t)), StrictLimits(max_properties=100, max_depth=5)) == []
