"""A small, consistent database state for a DomainSpec (used by tests and demos).

Keys look like ``ord_3f9a`` and equal the record's primary-key field; foreign keys point
at existing records; enum fields cycle through their values so every status appears.
"""

from __future__ import annotations

import random
from typing import Any

from scaleenv._store.specs import DbState, DomainSpec, FieldSpec, TableSpec

from .codegen import _key_prefix
from scaleenv._model.dbgen import FIRST, LAST

STREETS = ("Elm Street", "Harbor Road", "Maple Avenue", "Station Square", "Mill Lane", "Park Row")
CITIES = ("Lisbon", "Oslo", "Austin", "Kyoto", "Lagos", "Quito", "Perth")


def _order(domain: DomainSpec) -> list[TableSpec]:
    """Tables with referenced tables first."""
    done: list[TableSpec] = []
    pending = list(domain.tables)
    while pending:
        for t in pending:
            deps = {f.ref for f in t.fields if f.ref and f.ref != t.name}
            if deps <= {d.name for d in done} | {None} or all(domain.table(d) is None for d in deps - {d.name for d in done}):
                done.append(t)
                pending.remove(t)
                break
        else:
            done.extend(pending)
            break
    return done


def _value(field: FieldSpec, i: int, rng: random.Random, state: DbState, table: TableSpec) -> Any:
    if field.ref:
        keys = sorted(state.get(field.ref, {}))
        return keys[i % len(keys)] if keys else f"{_key_prefix(field.ref)}_none"
    if field.enum:
        return field.enum[i % len(field.enum)]
    name = field.name
    if field.type == "str":
        if name == "email":
            return f"user{i + 1}.{rng.randrange(100, 999)}@example.com"
        if name == "name":
            return f"{FIRST[(i + rng.randrange(len(FIRST))) % len(FIRST)]} {rng.choice(LAST)}"
        if name == "city":
            return rng.choice(CITIES)
        if name == "phone":
            return f"+1-555-{rng.randrange(1000, 9999)}"
        return f"{rng.randrange(1, 99)} {rng.choice(STREETS)}"
    if field.type == "int":
        if name == "rating":
            return rng.randint(1, 5)
        return rng.randint(0, 6) if i % 3 else rng.randint(1, 3)
    if field.type == "float":
        if name == "rating":
            return round(rng.uniform(1, 5), 1)
        if name in ("price", "total", "amount", "cost"):
            return round(rng.uniform(5, 400), 2)
        return round(rng.uniform(50, 1500), 2)  # balances and credits
    if field.type == "bool":
        return rng.random() < 0.5
    return []


def make_state(domain: DomainSpec, rng: random.Random, per_table: int = 5) -> DbState:
    state: DbState = {}
    for table in _order(domain):
        rows: dict[str, dict[str, Any]] = {}
        prefix = _key_prefix(table.name)
        for i in range(per_table):
            key = f"{prefix}_{rng.randrange(16**4):04x}"
            while key in rows:
                key = f"{prefix}_{rng.randrange(16**4):04x}"
            record = {f.name: (key if f.name == table.primary_key else _value(f, i, rng, state, table)) for f in table.fields}
            rows[key] = record
        state[table.name] = rows
    return state
