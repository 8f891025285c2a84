"""Generate database states from a domain's schema: consistent keys, plausible values.

Used for procedural tests (stage 1), entity creation and distractors (stage 2). Pure and
seeded: the same (spec, rng state) gives the same records.
"""

from __future__ import annotations

import copy
import random
from typing import Any

from scaleenv.store.specs import DbState, DomainSpec, FieldSpec, TableSpec

FIRST = ("Ada", "Bram", "Chen", "Dara", "Elif", "Femi", "Goran", "Hana", "Ines", "Jonas", "Kemal",
         "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vera",
         "Wei", "Ximena", "Yusuf", "Zoe")
LAST = ("Abara", "Berg", "Costa", "Dubois", "Eze", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen",
        "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quispe", "Rossi", "Silva",
        "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zhou")
NOUNS = ("lamp", "desk", "kettle", "jacket", "atlas", "router", "backpack", "camera", "guitar",
         "blender", "monitor", "sofa", "bicycle", "tent", "printer", "watch", "scarf", "drill")
ADJ = ("blue", "compact", "deluxe", "classic", "smart", "vintage", "silver", "large", "mini", "eco")
CITIES = ("Lisbon", "Oslo", "Nairobi", "Osaka", "Lima", "Quebec", "Porto", "Tallinn", "Austin", "Seoul")


def key_prefix(table: TableSpec) -> str:
    """The stem of a table's keys: its primary key's name without ``_id`` (``subscription_3f9a``).

    Whole stems, not abbreviations: two tables must never share a key prefix, or ids of
    different kinds (a subscriber's and a subscription's) look alike to every reader."""
    return table.primary_key.removesuffix("_id") or table.name


def new_key(table: TableSpec, db: DbState, rng: random.Random) -> str:
    existing = db.get(table.name, {})
    while True:
        key = f"{key_prefix(table)}_{rng.randrange(16**4):04x}"
        if key not in existing:
            return key


def field_value(field: FieldSpec, table: TableSpec, db: DbState, rng: random.Random, key: str) -> Any:
    """A plausible value for one field of a new record."""
    name = field.name.lower()
    if field.name == table.primary_key:
        return key
    if field.ref is not None:
        keys = sorted(db.get(field.ref, {}))
        return rng.choice(keys) if keys else None
    if field.enum:
        return rng.choice(field.enum)
    if field.type == "bool":
        return rng.random() < 0.5
    if field.type == "int":
        if any(w in name for w in ("stock", "seats", "capacity", "copies", "available")):
            return rng.randint(0, 20)
        if any(w in name for w in ("quantity", "count", "nights", "guests", "days")):
            return rng.randint(1, 5)
        if "year" in name:
            return rng.randint(1990, 2026)
        return rng.randint(1, 100)
    if field.type == "float":
        if any(w in name for w in ("balance", "credit", "limit")):
            return round(rng.uniform(0, 500), 2)
        return round(rng.uniform(5, 300), 2)
    if field.type == "list[str]":
        return sorted({rng.choice(NOUNS) for _ in range(rng.randint(0, 3))})
    # str
    first, last = rng.choice(FIRST), rng.choice(LAST)
    if "email" in name:
        return f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@example.com"
    if "phone" in name:
        return f"+1-555-{rng.randint(1000, 9999)}"
    if name in ("name", "full_name", "customer_name", "owner_name", "patient_name", "member_name"):
        return f"{first} {last}"
    if "date" in name or name.endswith("_on") or name.endswith("_at"):
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if "city" in name or "address" in name or "location" in name:
        return f"{rng.randint(1, 250)} {rng.choice(LAST)} St, {rng.choice(CITIES)}"
    if any(w in name for w in ("title", "product", "item", "model", "name")):
        return f"{rng.choice(ADJ)} {rng.choice(NOUNS)}"
    return f"{rng.choice(ADJ)} {rng.choice(NOUNS)}"


def make_record(table: TableSpec, db: DbState, rng: random.Random, key: str | None = None,
                overrides: dict[str, Any] | None = None, domain: DomainSpec | None = None,
                _depth: int = 0) -> tuple[str, dict[str, Any]]:
    """A new record for ``table`` (not inserted). With ``domain``, a foreign key whose
    table is empty gets a referenced record created (and inserted) first, so no record
    ever points at nothing."""
    if domain is not None and _depth < 4:
        for f in table.fields:
            if f.ref and f.ref != table.name and not db.get(f.ref) and not (overrides and f.name in overrides):
                ref_table = domain.table(f.ref)
                if ref_table is not None:
                    rkey, rrec = make_record(ref_table, db, rng, domain=domain, _depth=_depth + 1)
                    db.setdefault(f.ref, {})[rkey] = rrec
    key = key if key is not None else new_key(table, db, rng)
    record = {f.name: field_value(f, table, db, rng, key) for f in table.fields}
    record[table.primary_key] = key
    if overrides:
        record.update(overrides)
    return key, record


def table_order(domain: DomainSpec) -> list[TableSpec]:
    """Tables ordered so that every table comes after the tables it references."""
    done: list[TableSpec] = []
    remaining = list(domain.tables)
    names = {t.name for t in domain.tables}
    while remaining:
        progress = False
        for t in list(remaining):
            deps = {f.ref for f in t.fields if f.ref and f.ref != t.name and f.ref in names}
            if deps <= {d.name for d in done}:
                done.append(t)
                remaining.remove(t)
                progress = True
        if not progress:  # a reference cycle: break it in declaration order
            done.append(remaining.pop(0))
    return done


def generate_state(domain: DomainSpec, rng: random.Random, rows: int = 4) -> DbState:
    """A whole database with ``rows`` records per table (referencing tables drawn from referenced ones)."""
    db: DbState = {t.name: {} for t in domain.tables}
    for table in table_order(domain):
        for _ in range(rows):
            key, record = make_record(table, db, rng)
            db[table.name][key] = record
    return db


def clone(db: DbState) -> DbState:
    return copy.deepcopy(db)
