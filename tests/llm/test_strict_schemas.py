"""Every answer type's schema in the subset OpenAI's strict mode accepts, and back.

The rules checked (strict_problems) are OpenAI's published ones for strict structured
outputs: every object forbids extra properties and requires all of them, no untyped values,
no maps, no defaults. Values cross in both directions: an answer in the original shape put
into the strict shape validates against the strict schema (jsonschema), and comes back equal.
"""

from __future__ import annotations

import random
from typing import Any

import jsonschema
import msgspec
import pytest

from scaleenv.agents.llm.strict import from_strict, strict_problems, strict_schema, to_strict
from scaleenv.agents.rollout import answers as rollout_answers
from scaleenv.agents.sim.schema_instance import instance
from scaleenv.agents.synth import answers as synth_answers
from scaleenv.store.specs import DomainOutline


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
    root = s["$defs"]["Doc"]
    assert root["required"] == ["must", "maybe", "anything", "table", "inner"] and root["additionalProperties"] is False
    assert root["properties"]["maybe"]["type"] == ["string", "null"]
    assert root["properties"]["table"]["anyOf"][0]["type"] == "array"
    value = {"must": "m", "maybe": None, "anything": '{"k": [1, 2]}', "table": [{"name": "a", "value": 1}], "inner": None}
    assert from_strict(value, s) == {"must": "m", "anything": {"k": [1, 2]}, "table": {"a": 1}}
    assert msgspec.convert(from_strict(value, s), Doc) == Doc(must="m", anything={"k": [1, 2]}, table={"a": 1})
