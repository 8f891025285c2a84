"""Generate database states from a domain's schema: consistent keys, plausible values.

Used for procedural tests (stage 1), entity creation and distractors (stage 2). Pure and
seeded: the same (spec, rng state) gives the same records.
"""

from __future__ import annotations

import copy
import math
import random
import re
from typing import Any

from scaleenv._store.specs import DbState, DomainSpec, FieldSpec, TableSpec

from .integrity import constraints_of, describe, state_violations

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


ORG_FIRST = ("Northwind", "Bluepeak", "Harbor", "Sunline", "Cedar", "Meridian", "Lakeside", "Summit", "Redwood",
             "Brightwater", "Granite", "Silverleaf", "Oakmont", "Riverside", "Crescent", "Evergreen")
ORG_LAST = ("Group", "Partners", "Labs", "Works", "Collective", "Services", "Studio", "Company", "Holdings", "Co-op")
TITLE_ADJ = ("Silver", "Northern", "Quiet", "Golden", "Urban", "Classic", "Modern", "Bright", "Hidden", "Wild",
             "Second", "Open", "Little", "Grand", "Early", "Blue")
TITLE_NOUN = ("Horizon", "Garden", "Bridge", "River", "Studio", "Harbor", "Forest", "Canvas", "Signal", "Orchard",
              "Lantern", "Compass", "Meadow", "Atlas", "Summit", "Voyage")
JOB_TITLES = ("Data Analyst", "Energy Analyst", "Backend Engineer", "Product Designer", "Sales Manager",
              "Operations Lead", "Financial Analyst", "Support Specialist", "Marketing Coordinator", "QA Engineer")
SENTENCES = ("Please call before arriving.", "Arrived on time and well packed.", "Needs a follow-up next week.",
             "Prefers email over phone.", "The second visit went better than the first.", "Asked about weekend options.",
             "Great experience overall.", "Budget is tight this quarter.", "Looking for something quieter.",
             "Leave it at the front desk.", "Check the measurements again.", "Wants the earlier slot if it frees up.")
LABELS = ("urgent", "weekly", "family", "vip", "archive", "draft", "travel", "work", "home", "later", "review", "green")


def _range(field: FieldSpec, lo: float, hi: float) -> tuple[float, float]:
    """Where values of a column fall: the plausible range for its kind, within the column's
    own range (a declared range is a limit, not a typical value); the column's range alone
    when the two do not meet."""
    a = field.minimum if field.minimum is not None else lo
    b = field.maximum if field.maximum is not None else hi
    pa, pb = max(a, lo), min(b, hi)
    return (pa, pb) if pa <= pb else (a, max(a, b))


def _by_kind(field: FieldSpec, table: TableSpec, rng: random.Random) -> Any:
    """A value of the column's kind (see ``FieldSpec.kind``), within its range."""
    k = field.kind
    first, last = rng.choice(FIRST), rng.choice(LAST)
    if k == "person_name":
        return f"{first} {last}"
    if k == "org_name":
        return f"{rng.choice(ORG_FIRST)} {rng.choice(ORG_LAST)}"
    if k == "title":
        if "job" in table.name or "posting" in table.name:
            return rng.choice(JOB_TITLES)
        return f"{rng.choice(TITLE_ADJ)} {rng.choice(TITLE_NOUN)}"
    if k == "text":
        return rng.choice(SENTENCES)
    if k == "email":
        return f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@example.com"
    if k == "phone":
        return f"+1-555-{rng.randint(1000, 9999)}"
    if k == "url":
        return f"https://{rng.choice(TITLE_NOUN).lower()}{rng.randint(1, 99)}.example.com"
    if k == "city":
        return rng.choice(CITIES)
    if k == "address":
        return f"{rng.randint(1, 250)} {rng.choice(LAST)} St, {rng.choice(CITIES)}"
    if k == "date":
        return f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if k == "datetime":
        return f"2024-{rng.randint(3, 9):02d}-{rng.randint(1, 28):02d} {rng.choice((9, 10, 11, 13, 14, 15, 16)):02d}:{rng.choice((0, 30)):02d}:00"
    if k == "code":
        return f"{''.join(rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ') for _ in range(3))}-{rng.randint(100, 9999)}"
    if k == "label":
        return rng.choice(LABELS)
    if k == "flag":
        return rng.random() < 0.5
    if field.type not in ("int", "float"):
        return None
    lo, hi = {"money": (5.0, 500.0), "count": (0, 40), "quantity": (1, 5), "rating": (1, 5), "percent": (0, 100),
              "number": (0, 100)}.get(k or "", (1, 100))
    a, b = _range(field, lo, hi)
    if field.type == "int":
        return rng.randint(int(math.ceil(a)), int(math.floor(b)))
    return round(rng.uniform(a, b), 1 if k == "rating" else 2)


def field_value(field: FieldSpec, table: TableSpec, db: DbState, rng: random.Random, key: str) -> Any:
    """A plausible value for one field of a new record (unique columns get a value no other
    record of the table holds)."""
    value = _field_value(field, table, db, rng, key)
    if field.unique and field.name != table.primary_key and not field.ref:
        taken = {r.get(field.name) for k, r in db.get(table.name, {}).items() if k != key}
        tries = 0
        while value in taken and tries < 20:
            value = _field_value(field, table, db, rng, key)
            tries += 1
        if value in taken:
            value = f"{value}-{rng.randrange(16**4):04x}" if isinstance(value, str) else value
    return value


def _field_value(field: FieldSpec, table: TableSpec, db: DbState, rng: random.Random, key: str) -> Any:
    name = field.name.lower()
    if field.name == table.primary_key:
        return key
    if field.ref is not None:
        keys = sorted(db.get(field.ref, {}))
        return rng.choice(keys) if keys else None
    if field.enum:
        return rng.choice(field.enum)
    if field.kind is not None:
        made = _by_kind(field, table, rng)
        if made is not None:
            return made
    if field.type == "bool":
        return rng.random() < 0.5
    if field.type == "int":
        if field.minimum is not None or field.maximum is not None:
            a, b = _range(field, 1, 100)
            return rng.randint(int(math.ceil(a)), int(math.floor(b)))
        if any(w in name for w in ("stock", "seats", "capacity", "copies", "available")):
            return rng.randint(0, 20)
        if any(w in name for w in ("quantity", "count", "nights", "guests", "days")):
            return rng.randint(1, 5)
        if "year" in name:
            return rng.randint(1990, 2026)
        return rng.randint(1, 100)
    if field.type == "float":
        if field.minimum is not None or field.maximum is not None:
            a, b = _range(field, 5, 300)
            return round(rng.uniform(a, b), 2)
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
    _cohere(table, record, overrides or {}, db, rng)
    return key, record


PERSON_FIELDS = frozenset({"name", "full_name", "customer_name", "owner_name", "patient_name", "member_name"})
_NAME_PARTS = re.compile(r"[A-Za-z]{2,}")


def _person_fields(table: TableSpec) -> tuple[FieldSpec | None, FieldSpec | None]:
    """The column naming the person a record is about and its email column, if it has both."""
    name = next((f for f in table.fields if f.type == "str" and not f.ref and not f.enum
                 and (f.kind == "person_name" or (f.kind is None and f.name.lower() in PERSON_FIELDS))), None)
    email = next((f for f in table.fields if f.type == "str" and not f.ref and not f.enum
                  and (f.kind == "email" or (f.kind is None and "email" in f.name.lower()))), None)
    return name, email


def _cohere(table: TableSpec, record: dict[str, Any], fixed: dict[str, Any], db: DbState, rng: random.Random) -> None:
    """One person per record: an email made for a named person is theirs (ada.berg12@...),
    and a person made for a given email is named after it (amara.okafor@... -> Amara Okafor).
    Values the caller fixed are kept."""
    name_field, email_field = _person_fields(table)
    if name_field is None or email_field is None:
        return
    name, email = record.get(name_field.name), record.get(email_field.name)
    if not isinstance(name, str) or not isinstance(email, str):
        return
    if email_field.name in fixed and name_field.name not in fixed:
        local = re.sub(r"\d+$", "", email.split("@", 1)[0])
        parts = [p for p in re.split(r"[._-]", local) if p]
        if len(parts) >= 2 and all(_NAME_PARTS.fullmatch(p) for p in parts[:2]):
            record[name_field.name] = " ".join(p.capitalize() for p in parts[:2])
    elif email_field.name not in fixed:
        words = name.split()
        if len(words) >= 2 and all(_NAME_PARTS.fullmatch(w) for w in words[:2]):
            taken = ({r.get(email_field.name) for k, r in db.get(table.name, {}).items()
                      if k != record.get(table.primary_key)} if email_field.unique else set())
            for _ in range(20):
                made = f"{words[0].lower()}.{words[1].lower()}{rng.randint(1, 99)}@example.com"
                if made not in taken:
                    record[email_field.name] = made
                    break


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


def inconsistencies(domain: DomainSpec, db: DbState) -> list[str]:
    """Every integrity violation of ``db`` under ``domain``'s constraints, one sentence each
    (``scaleenv._model.integrity``): what a generated state must not have."""
    return [v.message for v in state_violations(db, constraints_of(domain))]


def assert_consistent(domain: DomainSpec, db: DbState) -> None:
    """Raise AssertionError naming every violation of ``domain``'s integrity constraints in
    ``db`` (a test helper for generated fixtures, initial task states and distractors)."""
    violations = state_violations(db, constraints_of(domain))
    if violations:
        raise AssertionError(f"{len(violations)} integrity violation{'s' if len(violations) > 1 else ''}: "
                             f"{describe(violations, limit=20)}")
