"""Generate a plausible instance of any JSON schema (what a model with no role knowledge says)."""

from __future__ import annotations

import random
from typing import Any

WORDS = (
    "alpha", "amber", "atlas", "birch", "cobalt", "delta", "ember", "fjord", "garnet", "harbor",
    "indigo", "juniper", "kestrel", "lumen", "meadow", "nimbus", "onyx", "pioneer", "quartz",
    "raven", "summit", "tundra", "umber", "vertex", "willow", "xenon", "yarrow", "zephyr",
)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root.get("$defs", {})[name]
    return schema


def instance(schema: dict[str, Any], rng: random.Random, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value that validates against ``schema`` (with ``$ref``/``$defs`` resolved from ``root``)."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, root).get("type") != "null"] or schema[key]
            return instance(rng.choice(options), rng, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = rng.choice([k for k in kind if k != "null"] or kind)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", props))
        out = {}
        for name, sub in props.items():
            if name in required or (depth < 3 and rng.random() < 0.5):
                out[name] = instance(sub, rng, root, depth + 1)
        return out
    if kind == "array":
        lo = schema.get("minItems", 0)
        hi = schema.get("maxItems", lo + (3 if depth < 3 else 0))
        items = schema.get("items", {"type": "string"})
        if "prefixItems" in schema:
            return [instance(s, rng, root, depth + 1) for s in schema["prefixItems"]]
        return [instance(items, rng, root, depth + 1) for _ in range(rng.randint(lo, max(lo, hi)))]
    if kind == "string":
        lo = schema.get("minLength", 0)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))
        return text.ljust(lo, "x")[: schema.get("maxLength", 10_000)]
    if kind == "integer":
        return rng.randint(schema.get("minimum", 0), schema.get("maximum", 100))
    if kind == "number":
        return round(rng.uniform(schema.get("minimum", 0.0), schema.get("maximum", 100.0)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return None
