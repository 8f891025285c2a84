"""Domains composed from parts: entities, relations, workflows and operations.

``compose(brief, seed)`` builds one domain for a brief (a name, a description, keywords,
a size): it picks a subset of the theme's entities and relations (so one theme yields
many relational shapes), gives each entity the columns of its archetype (a party, an
organisation, a catalogue item, a transaction with its lifecycle, a scheduled event, a
note, a history entry, a document, a message, a link between two entities, a ledger, a
location, a device, a reading, a payment, a tag), and the operations of its archetype
(create, get, find by a unique field, listings by owner, keyword and filter searches,
counts, updates, lifecycle transitions with their side effects, capacity checks,
transfers, deletions guarded by dependents). Every operation is a ToolSpec with a
contract the engine checks, so the sim's coder, tester and reviewer work from it.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from typing import Any

import attrs

from scaleenv._store.specs import Condition, DomainSpec, FieldSpec, ParamSpec, TableSpec, ToolSpec

from scaleenv._model.briefs import QUALIFIERS, Brief

from .themes import BY_NAME, GENERIC, THEMES, Theme


@attrs.define
class Entity:
    table: str
    one: str
    archetype: str
    parents: list[str]  # tables it refers to (chosen ones only)
    fks: list[tuple[str, str]] = attrs.field(factory=list)  # (column, referenced table)
    columns: list[FieldSpec] = attrs.field(factory=list)
    statuses: tuple[str, ...] = ()

    @property
    def pk(self) -> str:
        return f"{self.one}_id"

    def column(self, name: str) -> FieldSpec | None:
        return next((c for c in self.columns if c.name == name), None)


# ----------------------------------------------------------------------------- helpers

def _f(name: str, type_: str, description: str = "", *, kind: str | None = None, ref: str | None = None,
       enum: list[str] | None = None, unique: bool = False, required: bool = False, minimum: float | None = None,
       maximum: float | None = None, reward: str | None = None) -> FieldSpec:
    return FieldSpec(name=name, type=type_, description=description, kind=kind, ref=ref, enum=enum,  # type: ignore[arg-type]
                     unique=unique, required=required, minimum=minimum, maximum=maximum, reward=reward)  # type: ignore[arg-type]


def _p(name: str, type_: str, description: str, ref: str | None = None, required: bool = True) -> ParamSpec:
    return ParamSpec(name=name, type=type_, description=description, ref=ref, required=required)  # type: ignore[arg-type]


def _pre(op: str, left: str, right: Any = None, why: str = "") -> Condition:
    return Condition(when="pre", op=op, left=left, right=right, why=why)  # type: ignore[arg-type]


def _post(op: str, left: str, right: Any = None, why: str = "") -> Condition:
    return Condition(when="post", op=op, left=left, right=right, why=why)  # type: ignore[arg-type]


def words(ident: str) -> str:
    return ident.replace("_", " ")


def a(ident: str) -> str:
    w = words(ident)
    return f"an {w}" if w[:1] in "aeiou" else f"a {w}"


def _q(value: str) -> str:
    return f'"{value}"'


STATUS_VERBS = {
    "confirmed": "confirm", "approved": "approve", "rejected": "reject", "shipped": "ship", "delivered": "deliver",
    "completed": "complete", "cancelled": "cancel", "closed": "close", "published": "publish", "archived": "archive",
    "paid": "pay", "checked_in": "check_in", "checked_out": "check_out", "in_progress": "start", "resolved": "resolve",
    "accepted": "accept", "declined": "decline", "withdrawn": "withdraw", "suspended": "suspend", "active": "activate",
    "read": "mark_read", "done": "finish", "finished": "finish", "attended": "mark_attended", "received": "receive",
    "redeemed": "redeem", "used": "use", "returned": "return", "settled": "settle", "authorized": "authorize",
    "ticketed": "ticket", "picked_up": "pick_up", "in_transit": "dispatch", "under_review": "review",
    "in_review": "submit_for_review", "interviewing": "advance", "offered": "make_offer_for", "scheduled": "schedule",
    "quoted": "quote", "booked": "book", "preparing": "prepare", "served": "serve", "dismissed": "dismiss",
    "reviewing": "review", "dropped": "drop", "enrolled": "enroll", "paid_out": "pay_out", "planted": "plant",
    "growing": "mark_growing", "harvested": "harvest", "watched": "mark_watched", "partially_filled": "partially_fill",
    "filled": "fill", "sent": "send", "live": "publish", "open": "open", "frozen": "freeze", "inactive": "deactivate",
    "offline": "mark_offline", "on": "turn_on", "off": "turn_off", "refunded": "refund", "published_version": "publish",
}


def transition_tool_name(status: str, one: str) -> str:
    verb = STATUS_VERBS.get(status)
    return f"{verb}_{one}" if verb else f"mark_{one}_{status}"


# ----------------------------------------------------------------------------- choosing the entities

def _entities_of(theme: Theme) -> list[Entity]:
    out = []
    for spec in theme.entities:
        parts = spec.split(":")
        table, one, archetype = parts[0], parts[1], parts[2]
        parents = [p for p in parts[3].split(",") if p] if len(parts) > 3 else []
        out.append(Entity(table, one, archetype, parents))
    return out


def _generic(pool: list[Entity], rng: random.Random) -> list[Entity]:
    """The generic entities whose placeholders resolve to the theme's own entities."""
    taken = {e.table for e in pool}
    by_arch: dict[str, list[str]] = {}
    for e in pool:
        by_arch.setdefault(e.archetype, []).append(e.table)
    out = []
    for spec in GENERIC:
        parts = spec.split(":")
        if parts[0] in taken:
            continue
        parents = []
        ok = True
        for p in (parts[3].split(",") if len(parts) > 3 and parts[3] else []):
            if p.startswith("@"):
                options = by_arch.get(p[1:], [])
                if not options:
                    ok = False
                    break
                parents.append(rng.choice(options))
            else:
                parents.append(p)
        if ok:
            out.append(Entity(parts[0], parts[1], parts[2], parents))
    return out


def _choose(theme: Theme, rng: random.Random, n_tables: int) -> list[Entity]:
    """A connected subset of the theme's entities, parents kept where possible; a domain
    larger than its theme adds generic entities (tickets, notifications, tags...)."""
    pool = _entities_of(theme)
    if n_tables > len(pool):
        extra = _generic(pool, rng)
        rng.shuffle(extra)
        pool = pool + extra
    by_table = {e.table: e for e in pool}
    core = [e for e in pool if e.archetype in ("txn",)][:1] or pool[:1]
    chosen: dict[str, Entity] = {}

    def add(e: Entity) -> None:
        if e.table in chosen or len(chosen) >= n_tables:
            return
        chosen[e.table] = e
        for p in e.parents:
            if p in by_table and p != e.table and len(chosen) < n_tables and rng.random() < 0.9:
                add(by_table[p])

    for e in core:
        add(e)
    rest = [e for e in pool if e.table not in chosen]
    rng.shuffle(rest)
    for e in rest:
        if len(chosen) >= n_tables:
            break
        # prefer entities related to what is chosen (connected shapes), sometimes a loose one
        related = any(p in chosen for p in e.parents) or any(e.table in c.parents for c in chosen.values())
        if related or rng.random() < 0.25:
            add(e)
    for e in rest:
        if len(chosen) >= n_tables:
            break
        add(e)
    return [attrs.evolve(e, parents=list(e.parents)) for e in pool if e.table in chosen]


def _wire(entities: list[Entity], rng: random.Random) -> None:
    """Foreign keys: each entity refers to its chosen parents; a missing parent is replaced by
    a chosen entity of the same archetype, or dropped; sometimes an extra reference is added."""
    by_table = {e.table: e for e in entities}
    archetype_of = {e.table: e.archetype for e in entities}
    for e in entities:
        parents: list[str] = []
        for p in e.parents:
            if p in by_table:
                parents.append(p)
                continue
        if e.archetype in ("link",) and len(parents) < 2:
            others = [t for t in by_table if t != e.table and archetype_of[t] not in ("link", "tag")]
            rng.shuffle(others)
            parents = (parents + others)[:2]
        if e.archetype in ("txn", "note", "history", "event", "payment", "reading", "doc", "message") and not parents:
            hosts = [t for t in by_table if t != e.table and archetype_of[t] in ("party", "txn", "catalog", "org", "location")]
            if hosts:
                parents = [rng.choice(hosts)]
        # an extra reference now and then (who did it, where it happened): shapes differ
        if e.archetype in ("txn", "event", "note", "doc") and rng.random() < 0.3:
            extra = [t for t in by_table if t != e.table and t not in parents
                     and archetype_of[t] in ("party", "location", "org")]
            if extra:
                parents.append(rng.choice(extra))
        e.parents = parents
        seen: dict[str, int] = {}
        for p in parents:
            seen[p] = seen.get(p, 0) + 1
        counts: dict[str, int] = {}
        for p in parents:
            one = by_table[p].one
            counts[p] = counts.get(p, 0) + 1
            if seen[p] == 1:
                col = f"{one}_id"
            else:
                col = ("from" if counts[p] == 1 else "to") + f"_{one}_id"
            e.fks.append((col, p))


# ----------------------------------------------------------------------------- columns by archetype

LIFECYCLES = {
    "catalog": ("draft", "published", "closed"),
    "event": ("scheduled", "completed", "cancelled"),
    "doc": ("draft", "published", "archived"),
    "message": ("unread", "read", "archived"),
    "ledger": ("open", "frozen", "closed"),
    "party": ("active", "suspended"),
    "org": ("active", "inactive"),
    "device": ("online", "offline"),
    "payment": ("pending", "settled", "refunded"),
}


def _columns(e: Entity, theme: Theme, rng: random.Random) -> None:
    cols: list[FieldSpec] = [_f(e.pk, "str", f"the {words(e.one)}'s id", kind="id", required=True, unique=True,
                                reward="exempt")]
    for col, ref in e.fks:
        cols.append(_f(col, "str", f"the {words(ref.rstrip('s'))} it belongs to" if not col.startswith(("from_", "to_"))
                       else f"the {words(col[:-3])}", kind="id", ref=ref, required=True, reward="exact"))
    kind = e.archetype
    add = cols.append
    life = LIFECYCLES.get(kind)
    if kind == "party":
        add(_f("name", "str", "full name", kind="person_name", required=True, reward="semantic"))
        add(_f("email", "str", "contact email (unique)", kind="email", unique=True, required=True))
        if rng.random() < 0.6:
            add(_f("phone", "str", "contact phone", kind="phone"))
        if rng.random() < 0.5:
            add(_f("city", "str", "home city", kind="city"))
        if theme.money and rng.random() < 0.5:
            add(_f("balance", "float", "money on the account", kind="money", minimum=0, maximum=100000))
        if rng.random() < 0.4:
            add(_f("tier", "str", "loyalty tier", enum=["basic", "silver", "gold"]))
        add(_f("status", "str", "account status", enum=list(LIFECYCLES["party"]), required=True))
        add(_f("joined_on", "str", "the day the account was opened", kind="date"))
    elif kind == "org":
        add(_f("name", "str", "the organisation's name", kind="org_name", required=True, unique=True, reward="semantic"))
        add(_f("city", "str", "where it is based", kind="city"))
        if rng.random() < 0.6:
            add(_f("rating", "float", "average rating, 1 to 5", kind="rating", minimum=1, maximum=5))
        if rng.random() < 0.4:
            add(_f("website", "str", "web address", kind="url"))
        add(_f("status", "str", "whether it operates", enum=list(LIFECYCLES["org"]), required=True))
    elif kind == "catalog":
        add(_f("title", "str", "what it is called", kind="title", required=True, reward="semantic"))
        add(_f("category", "str", "its category", enum=list(theme.categories), required=True))
        if theme.money:
            lo, hi = theme.price_range
            add(_f("price", "float", "its price", kind="money", minimum=lo, maximum=hi, required=True))
        if rng.random() < 0.7:
            add(_f("available", "int", "how many are still available", kind="count", minimum=0, maximum=10000))
        if rng.random() < 0.6:
            add(_f("description", "str", "what it is, in a few words", kind="text", reward="semantic"))
        if rng.random() < 0.4:
            add(_f("code", "str", "the code people use for it", kind="code", unique=True))
        add(_f("status", "str", "whether it is offered", enum=list(LIFECYCLES["catalog"]), required=True))
    elif kind == "txn":
        add(_f("status", "str", f"where the {words(e.one)} is in its lifecycle", enum=list(theme.lifecycle), required=True))
        if any(r for _, r in e.fks):
            if rng.random() < 0.7:
                add(_f("quantity", "int", "how many", kind="quantity", minimum=1, maximum=100, required=True))
        if theme.money and rng.random() < 0.8:
            add(_f("total", "float", "the amount due", kind="money", minimum=0, maximum=1000000))
        add(_f("created_on", "str", "the day it was made", kind="date"))
        if rng.random() < 0.6:
            add(_f("note", "str", "what the customer asked for", kind="text", reward="semantic"))
        if rng.random() < 0.3:
            add(_f("priority", "int", "1 (low) to 5 (urgent)", kind="rating", minimum=1, maximum=5))
    elif kind == "event":
        add(_f("scheduled_at", "str", "when it happens", kind="datetime", required=True))
        add(_f("duration_minutes", "int", "how long it lasts", kind="count", minimum=5, maximum=600))
        if rng.random() < 0.6:
            add(_f("location", "str", "where it happens", kind="address"))
        add(_f("status", "str", "whether it happened", enum=list(LIFECYCLES["event"]), required=True))
        if rng.random() < 0.4:
            add(_f("kind", "str", "what kind of occasion", enum=["in_person", "remote", "phone"]))
    elif kind == "note":
        add(_f("content", "str", "what was written", kind="text", required=True, reward="semantic"))
        if rng.random() < 0.7:
            add(_f("rating", "int", "1 to 5", kind="rating", minimum=1, maximum=5))
        add(_f("created_on", "str", "the day it was written", kind="date"))
    elif kind == "history":
        add(_f("stage", "str", "what happened", enum=["started", "updated", "escalated", "closed"], required=True))
        add(_f("recorded_on", "str", "the day it happened", kind="date", required=True))
        if rng.random() < 0.6:
            add(_f("comment", "str", "a remark", kind="text", reward="semantic"))
    elif kind == "doc":
        add(_f("title", "str", "its title", kind="title", required=True, reward="semantic"))
        add(_f("body", "str", "its content", kind="text", reward="semantic"))
        if rng.random() < 0.5:
            add(_f("file_format", "str", "file format", enum=["pdf", "docx", "txt", "md"]))
        add(_f("status", "str", "its state", enum=list(LIFECYCLES["doc"]), required=True))
        add(_f("updated_on", "str", "the day it last changed", kind="date"))
    elif kind == "message":
        add(_f("subject", "str", "what it is about", kind="title", reward="semantic"))
        add(_f("body", "str", "the message", kind="text", required=True, reward="semantic"))
        add(_f("status", "str", "whether it was read", enum=list(LIFECYCLES["message"]), required=True))
        add(_f("sent_on", "str", "the day it was sent", kind="date"))
    elif kind == "link":
        add(_f("created_on", "str", "the day it was made", kind="date"))
        if rng.random() < 0.4:
            add(_f("position", "int", "its order in the list", kind="count", minimum=0, maximum=1000))
    elif kind == "ledger":
        add(_f("balance", "float", "the money held", kind="money", minimum=0, maximum=10000000, required=True))
        add(_f("currency", "str", "the currency", enum=["USD", "EUR", "GBP"], required=True))
        add(_f("status", "str", "whether it can be used", enum=list(LIFECYCLES["ledger"]), required=True))
    elif kind == "location":
        add(_f("name", "str", "its name", kind="title", required=True, reward="semantic"))
        add(_f("city", "str", "the city", kind="city", required=True))
        if rng.random() < 0.7:
            add(_f("capacity", "int", "how many it holds", kind="count", minimum=1, maximum=100000))
    elif kind == "device":
        add(_f("name", "str", "its name", kind="title", required=True, reward="semantic"))
        add(_f("model", "str", "the model", kind="code"))
        add(_f("status", "str", "whether it responds", enum=list(LIFECYCLES["device"]), required=True))
        if rng.random() < 0.5:
            add(_f("battery", "int", "battery left, percent", kind="percent", minimum=0, maximum=100))
    elif kind == "reading":
        add(_f("measured_value", "float", "the measured value", kind="number", minimum=-1000, maximum=100000, required=True))
        add(_f("unit", "str", "the unit", enum=["c", "percent", "kwh", "kg", "mm"], required=True))
        add(_f("recorded_on", "str", "the day it was taken", kind="date", required=True))
    elif kind == "payment":
        add(_f("amount", "float", "the amount", kind="money", minimum=0, maximum=1000000, required=True))
        add(_f("method", "str", "how it was paid", enum=["card", "transfer", "cash", "wallet"]))
        add(_f("status", "str", "where the payment is", enum=list(LIFECYCLES["payment"]), required=True))
        add(_f("paid_on", "str", "the day of the payment", kind="date"))
    elif kind == "tag":
        add(_f("name", "str", "the tag", kind="label", required=True, unique=True))
        if rng.random() < 0.5:
            add(_f("color", "str", "display color", enum=["red", "green", "blue", "yellow", "gray"]))
    e.columns = cols
    st = e.column("status")
    e.statuses = tuple(st.enum) if st is not None and st.enum else ()
    if life is None and kind == "txn":
        e.statuses = tuple(theme.lifecycle)


# ----------------------------------------------------------------------------- operations by archetype

Op = tuple[ToolSpec, bool]  # a tool and whether it is core (kept whatever the size)


@attrs.define
class _Ops:
    theme: Theme
    entities: dict[str, Entity]
    rng: random.Random
    out: list[Op] = attrs.field(factory=list)

    def tool(self, name: str, description: str, params: list[ParamSpec], returns: list[FieldSpec], reads: list[str],
             writes: list[str], contract: list[Condition], *, returns_list: bool = False, core: bool = False) -> None:
        if any(t.name == name for t, _ in self.out):
            return
        params = sorted(params, key=lambda p: not p.required)  # required parameters come first
        self.out.append((ToolSpec(name=name, description=description, params=params, returns=returns,
                                  returns_list=returns_list, reads=reads, writes=writes, mutates=bool(writes),
                                  contract=contract), core))

    # -- shared pieces --------------------------------------------------------------
    def id_param(self, e: Entity) -> ParamSpec:
        return _p(e.pk, "str", f"the {words(e.one)}'s id", ref=e.table)

    def exists(self, e: Entity, param: str | None = None) -> Condition:
        return _pre("exists", f"{e.table}[${param or e.pk}]", why=f"the {words(e.one)} must exist")

    def cols(self, e: Entity, *names: str) -> list[FieldSpec]:
        return [c for n in names for c in [e.column(n)] if c is not None]

    def summary(self, e: Entity) -> list[FieldSpec]:
        keep = [e.pk] + [c.name for c in e.columns if c.name in ("name", "title", "status", "subject", "stage", "category",
                                                                 "price", "total", "amount", "scheduled_at", "measured_value")]
        return self.cols(e, *dict.fromkeys(keep))

    # -- every entity ---------------------------------------------------------------
    def common(self, e: Entity) -> None:
        T, one = e.table, e.one
        self.tool(f"get_{one}", f"Get one {words(one)} with all its details.", [self.id_param(e)], list(e.columns),
                  [T], [], [self.exists(e)], core=True)
        for col, ref in e.fks:
            parent = self.entities[ref]
            self.tool(f"list_{T}_of_{col[:-3]}" if col != parent.pk else f"list_{parent.one}_{T}",
                      f"List the {words(T)} of {a(col[:-3] if col != parent.pk else parent.one)}.",
                      [_p(col, "str", f"the {words(col[:-3])}'s id", ref=ref)], self.summary(e), [ref, T], [],
                      [_pre("exists", f"{ref}[${col}]", why=f"the {words(parent.one)} must exist"),
                       _post("selects_eq", f"{T}[*].{col}", f"${col}", why=f"every {words(one)} of that {words(parent.one)}")],
                      returns_list=True, core=len(e.fks) == 1)

    def create(self, e: Entity, verb: str = "create", extra_pre: list[Condition] | None = None,
               extra_post: list[Condition] | None = None, skip: tuple[str, ...] = (), writes_more: tuple[str, ...] = (),
               core: bool = True, initial: str | None = None) -> str:
        T, one = e.table, e.one
        params: list[ParamSpec] = []
        pre: list[Condition] = []
        post = [_post("exists", f"{T}[$result.{e.pk}]", why=f"a new {words(one)} is recorded")]
        reads = [T]
        for col, ref in e.fks:
            parent = self.entities[ref]
            params.append(_p(col, "str", f"the {words(col[:-3])}'s id", ref=ref))
            pre.append(_pre("exists", f"{ref}[${col}]", why=f"the {words(parent.one)} must exist"))
            post.append(_post("eq", f"{T}[$result.{e.pk}].{col}", f"${col}"))
            reads.append(ref)
        for c in e.columns:
            if c.name == e.pk or c.ref or c.name in skip or c.name == "status":
                continue
            if c.kind == "date" and c.name.endswith(("_on",)) and not c.required:
                continue  # stamps the tool would set itself: left out of what the caller gives
            if c.name in ("total", "balance") and e.archetype != "ledger":
                continue
            required = c.required or self.rng.random() < 0.5
            params.append(_p(c.name, c.type, c.description or words(c.name), required=required))
            if c.enum:
                pre.append(_pre("in", f"${c.name}", list(c.enum), why=f"{words(c.name)} must be one of {', '.join(c.enum)}"))
            if c.unique:
                pre.append(_pre("none_eq", f"{T}[*].{c.name}", f"${c.name}", why=f"that {words(c.name)} is already taken"))
            if c.minimum is not None and c.kind in ("quantity", "rating", "count", "money", "percent") and required:
                pre.append(_pre("ge", f"${c.name}", str(int(c.minimum) if float(c.minimum).is_integer() else c.minimum),
                                why=f"{words(c.name)} must be at least {c.minimum:g}"))
            if c.maximum is not None and c.kind in ("rating", "percent") and required:
                pre.append(_pre("le", f"${c.name}", str(int(c.maximum)), why=f"{words(c.name)} must be at most {c.maximum:g}"))
            if required:
                post.append(_post("eq", f"{T}[$result.{e.pk}].{c.name}", f"${c.name}"))
        if e.statuses:
            first = initial or e.statuses[0]
            post.append(_post("eq", f"{T}[$result.{e.pk}].status", _q(first), why=f"a new {words(one)} starts as {first}"))
        pre.extend(extra_pre or [])
        post.extend(extra_post or [])
        name = f"{verb}_{one}"
        returns = self.cols(e, e.pk, *(["status"] if e.statuses else []))
        if e.column("total") is not None:
            returns = self.cols(e, e.pk, "status", "total")
        self.tool(name, f"{verb.capitalize().replace('_', ' ')} {a(one)}" + (f"; it starts as {e.statuses[0]!r}." if e.statuses else "."),
                  params, returns, list(dict.fromkeys(reads + list(writes_more))), [T, *writes_more], pre + post, core=core)
        return name

    def update_field(self, e: Entity, field: str, guard: list[str] | None = None) -> None:
        c = e.column(field)
        if c is None:
            return
        T, one = e.table, e.one
        pre = [self.exists(e)]
        if c.enum:
            pre.append(_pre("in", f"${field}", list(c.enum), why=f"{words(field)} must be one of {', '.join(c.enum)}"))
        if c.unique:
            pre.append(_pre("none_eq", f"{T}[*].{field}", f"${field}", why=f"that {words(field)} is already taken"))
        if c.minimum is not None and c.type in ("int", "float"):
            pre.append(_pre("ge", f"${field}", str(int(c.minimum)) if float(c.minimum).is_integer() else str(c.minimum),
                            why=f"{words(field)} cannot be below {c.minimum:g}"))
        if guard and e.statuses:
            pre.append(_pre("in", f"{T}[${e.pk}].status", guard, why=f"only {' or '.join(guard)} {words(T)} can be changed"))
        self.tool(f"update_{one}_{field}", f"Change the {words(field)} of {a(one)}.",
                  [self.id_param(e), _p(field, c.type, f"the new {words(field)}")], self.cols(e, e.pk, field), [T], [T],
                  pre + [_post("eq", f"{T}[${e.pk}].{field}", f"${field}")])

    def search(self, e: Entity, text_field: str, filters: tuple[str, ...] = ()) -> None:
        if e.column(text_field) is None:
            return
        T = e.table
        params = [_p("keyword", "str", f"words to look for in the {words(text_field)}", required=False)]
        post = [_post("selects_contains", f"{T}[*].{text_field}", "$keyword", why=f"{words(text_field)} contains the keyword")]
        for fname in filters:
            c = e.column(fname)
            if c is None:
                continue
            if c.enum:
                params.append(_p(fname, "str", f"only this {words(fname)}", required=False))
                post.append(_post("selects_eq", f"{T}[*].{fname}", f"${fname}"))
            elif c.type in ("int", "float"):
                params.append(_p(f"max_{fname}", c.type, f"at most this {words(fname)}", required=False))
                post.append(_post("selects_le", f"{T}[*].{fname}", f"$max_{fname}"))
        self.tool(f"search_{T}", f"Search {words(T)} by keyword" + (f", {', '.join(words(f) for f in filters)}" if filters else "")
                  + "; leave a filter out to ignore it.", params, self.summary(e), [T], [], post, returns_list=True)

    def filter_by(self, e: Entity, field: str) -> None:
        c = e.column(field)
        if c is None or not c.enum:
            return
        T = e.table
        self.tool(f"list_{T}_by_{field}", f"List the {words(T)} with a given {words(field)}.",
                  [_p(field, "str", f"the {words(field)}: one of {', '.join(c.enum)}")], self.summary(e), [T], [],
                  [_pre("in", f"${field}", list(c.enum), why=f"unknown {words(field)}"),
                   _post("selects_eq", f"{T}[*].{field}", f"${field}")], returns_list=True)

    def count_by(self, e: Entity, field: str) -> None:
        c = e.column(field)
        if c is None or not c.enum:
            return
        T = e.table
        self.tool(f"count_{T}_by_{field}", f"Count the {words(T)} with a given {words(field)}.",
                  [_p(field, "str", f"the {words(field)}")], [_f("count", "int", f"how many {words(T)}", kind="count")],
                  [T], [], [_pre("in", f"${field}", list(c.enum), why=f"unknown {words(field)}"),
                            _post("eq", "$result.count", f"count({T}[*].{field} == ${field})")], core=True)

    def find_by(self, e: Entity, field: str) -> None:
        if e.column(field) is None:
            return
        T, one = e.table, e.one
        self.tool(f"find_{one}_by_{field}", f"Find {a(one)} by {words(field)}.", [_p(field, "str", f"the {words(field)}")],
                  self.cols(e, e.pk, *[c.name for c in e.columns if c.name in ("name", "title", "status")]), [T], [],
                  [_pre("some_eq", f"{T}[*].{field}", f"${field}", why=f"no {words(one)} has this {words(field)}"),
                   _post("eq", f"{T}[$result.{e.pk}].{field}", f"${field}", why=f"the {words(one)} found has this {words(field)}")],
                  core=True)  # where a customer's conversation starts: what they know, not an id

    def transitions(self, e: Entity, side: Callable[[str, str], tuple[list[Condition], list[Condition], list[str]]] | None = None) -> None:
        """Tools moving the status along the lifecycle; the last status is reachable (a cancellation)
        from every earlier open one."""
        st = e.statuses
        if len(st) < 2:
            return
        T, one = e.table, e.one
        forward = list(zip(st[:-2], st[1:-1])) if len(st) > 2 else [(st[0], st[1])]
        for src, dst in forward:
            pre, post, more = side(src, dst) if side else ([], [], [])
            self.tool(transition_tool_name(dst, one), f"Move {a(one)} that is {src!r} to {dst!r}.", [self.id_param(e)],
                      self.cols(e, e.pk, "status"), list(dict.fromkeys([T, *more])), list(dict.fromkeys([T, *more])),
                      [self.exists(e), _pre("eq", f"{T}[${e.pk}].status", _q(src), why=f"only {src} {words(T)} can become {dst}"),
                       *pre, _post("eq", f"{T}[${e.pk}].status", _q(dst)), *post], core=src == st[0])
        if len(st) > 2:
            last = st[-1]
            open_ = list(st[:-2])
            pre, post, more = side(open_[0], last) if side else ([], [], [])
            self.tool(transition_tool_name(last, one), f"Set {a(one)} that is still {' or '.join(map(repr, open_))} to {last!r}.",
                      [self.id_param(e)], self.cols(e, e.pk, "status"), list(dict.fromkeys([T, *more])),
                      list(dict.fromkeys([T, *more])),
                      [self.exists(e), _pre("in", f"{T}[${e.pk}].status", open_, why=f"only {' or '.join(open_)} {words(T)} can become {last}"),
                       *pre, _post("eq", f"{T}[${e.pk}].status", _q(last)), *post])

    def delete(self, e: Entity, blockers: list[tuple[Entity, str]]) -> None:
        T, one = e.table, e.one
        pre = [self.exists(e)]
        for child, col in blockers[:2]:
            pre.append(_pre("none_eq", f"{child.table}[*].{col}", f"${e.pk}",
                            why=f"it still has {words(child.table)}"))
        self.tool(f"delete_{one}", f"Delete {a(one)}" + (" that nothing refers to any more." if blockers else "."),
                  [self.id_param(e)], [_f(e.pk, "str", "the deleted id", kind="id")],
                  [T, *[c.table for c, _ in blockers[:2]]], [T], pre + [_post("absent", f"{T}[${e.pk}]")])


def _operations(entities: list[Entity], theme: Theme, rng: random.Random) -> list[Op]:
    by_table = {e.table: e for e in entities}
    ops = _Ops(theme, by_table, rng)
    children: dict[str, list[tuple[Entity, str]]] = {}
    for e in entities:
        for col, ref in e.fks:
            children.setdefault(ref, []).append((e, col))
    for e in entities:
        T = e.table
        ops.common(e)
        kind = e.archetype
        if kind == "party":
            ops.create(e, "register")
            ops.find_by(e, "email")
            ops.update_field(e, "email")
            if e.column("phone") is not None and rng.random() < 0.6:
                ops.update_field(e, "phone")
            ops.search(e, "name", ("status", "city") if e.column("city") else ("status",))
            ops.transitions(e)
            if e.column("balance") is not None:
                _money_ops(ops, e)
            if rng.random() < 0.4:
                ops.count_by(e, "status")
        elif kind == "org":
            ops.create(e, "add")
            ops.find_by(e, "name")
            ops.search(e, "name", ("status",))
            if e.column("rating") is not None and rng.random() < 0.6:
                ops.update_field(e, "rating")
            ops.transitions(e)
        elif kind == "catalog":
            ops.create(e, "add")
            ops.search(e, "title", tuple(f for f in ("category", "price", "status") if e.column(f)))
            ops.filter_by(e, "category")
            if e.column("price") is not None:
                ops.update_field(e, "price")
            if e.column("available") is not None:
                _stock_ops(ops, e)
            ops.transitions(e)
            if rng.random() < 0.5:
                ops.count_by(e, "category")
            if children.get(T):
                if rng.random() < 0.5:
                    ops.delete(e, children[T])
        elif kind == "txn":
            _txn_ops(ops, e, by_table, rng)
        elif kind == "event":
            _event_ops(ops, e, by_table, rng)
        elif kind in ("note", "history"):
            parent = by_table[e.fks[0][1]] if e.fks else None
            guard = []
            if parent is not None and parent.statuses and kind == "note" and rng.random() < 0.5:
                done = [s for s in parent.statuses if s in ("completed", "done", "delivered", "received", "finished",
                                                            "attended", "served", "returned", "published", "paid")]
                if done:
                    col = e.fks[0][0]
                    guard = [_pre("in", f"{parent.table}[${col}].status", done,
                                  why=f"only {' or '.join(done)} {words(parent.table)} can be written about")]
            verb = "add" if kind == "note" else "record"
            ops.create(e, verb, extra_pre=guard)
            if kind == "note":
                ops.update_field(e, "content")
                ops.delete(e, [])
                if e.column("rating") is not None and rng.random() < 0.5:
                    ops.search(e, "content", ("rating",))
            else:
                ops.filter_by(e, "stage")
        elif kind == "doc":
            ops.create(e, "create")
            ops.update_field(e, "title", guard=[e.statuses[0]] if e.statuses else None)
            ops.update_field(e, "body", guard=[e.statuses[0]] if e.statuses else None)
            ops.transitions(e)
            ops.search(e, "title", ("status",))
            if children.get(T):
                ops.delete(e, children[T])
            else:
                ops.delete(e, [])
        elif kind == "message":
            ops.create(e, "send")
            ops.transitions(e)
            ops.search(e, "body", ("status",))
            ops.delete(e, [])
        elif kind == "link":
            ops.create(e, "add")
            ops.delete(e, [])
            if e.column("position") is not None:
                ops.update_field(e, "position")
        elif kind == "ledger":
            ops.create(e, "open")
            _money_ops(ops, e)
            ops.transitions(e)
        elif kind == "location":
            ops.create(e, "add")
            ops.search(e, "name", ())
            if e.column("capacity") is not None:
                ops.update_field(e, "capacity")
        elif kind == "device":
            ops.create(e, "register")
            ops.transitions(e)
            ops.update_field(e, "name")
            ops.filter_by(e, "status")
        elif kind == "reading":
            ops.create(e, "record")
            ops.filter_by(e, "unit")
            ops.delete(e, [])
        elif kind == "payment":
            ops.create(e, "record")
            ops.transitions(e)
            ops.filter_by(e, "method")
            if rng.random() < 0.5:
                ops.count_by(e, "status")
        elif kind == "tag":
            ops.create(e, "create")
            ops.search(e, "name", ())
            ops.delete(e, children.get(T, []))
    return ops.out


def _money_ops(ops: _Ops, e: Entity) -> None:
    T, one = e.table, e.one
    cond_open = [_pre("eq", f"{T}[${e.pk}].status", _q(e.statuses[0]), why=f"only {e.statuses[0]} {words(T)} can be used")] \
        if e.statuses and e.archetype == "ledger" else []
    ops.tool(f"add_funds_to_{one}", f"Add money to {a(one)}'s balance.",
             [ops.id_param(e), _p("amount", "float", "the amount to add")], ops.cols(e, e.pk, "balance"), [T], [T],
             [ops.exists(e), *cond_open, _pre("gt", "$amount", "0", why="the amount must be positive"),
              _post("increases_by", f"{T}[${e.pk}].balance", "$amount")])
    ops.tool(f"withdraw_from_{one}", f"Take money from {a(one)}'s balance (never below zero).",
             [ops.id_param(e), _p("amount", "float", "the amount to take")], ops.cols(e, e.pk, "balance"), [T], [T],
             [ops.exists(e), *cond_open, _pre("gt", "$amount", "0", why="the amount must be positive"),
              _pre("ge", f"{T}[${e.pk}].balance", "$amount", why="the balance does not cover it"),
              _post("decreases_by", f"{T}[${e.pk}].balance", "$amount")])
    ops.tool(f"transfer_between_{T}", f"Move money from one {words(one)} to another.",
             [_p(f"from_{one}_id", "str", f"the {words(one)} paying", ref=T), _p(f"to_{one}_id", "str", f"the {words(one)} paid", ref=T),
              _p("amount", "float", "the amount")],
             [_f(f"from_{one}_id", "str", "", kind="id"), _f("amount", "float", "", kind="money")], [T], [T],
             [_pre("exists", f"{T}[$from_{one}_id]", why=f"the paying {words(one)} must exist"),
              _pre("exists", f"{T}[$to_{one}_id]", why=f"the paid {words(one)} must exist"),
              _pre("ne", f"$from_{one}_id", f"$to_{one}_id", why="a transfer needs two different accounts"),
              _pre("gt", "$amount", "0", why="the amount must be positive"),
              _pre("ge", f"{T}[$from_{one}_id].balance", "$amount", why="the balance does not cover it"),
              _post("decreases_by", f"{T}[$from_{one}_id].balance", "$amount"),
              _post("increases_by", f"{T}[$to_{one}_id].balance", "$amount")])


def _stock_ops(ops: _Ops, e: Entity) -> None:
    T, one = e.table, e.one
    ops.tool(f"restock_{one}", f"Add units to how many of {a(one)} are available.",
             [ops.id_param(e), _p("units", "int", "how many to add")], ops.cols(e, e.pk, "available"), [T], [T],
             [ops.exists(e), _pre("gt", "$units", "0", why="must add at least one"),
              _post("increases_by", f"{T}[${e.pk}].available", "$units")])


def _txn_ops(ops: _Ops, e: Entity, by_table: dict[str, Entity], rng: random.Random) -> None:
    T = e.table
    # the item the transaction consumes: a referenced catalog entity with "available"
    item_col, item = next(((c, by_table[r]) for c, r in e.fks if by_table[r].archetype == "catalog"), (None, None))
    payer_col, payer = next(((c, by_table[r]) for c, r in e.fks if by_table[r].column("balance") is not None), (None, None))
    qty = e.column("quantity") is not None
    extra_pre: list[Condition] = []
    extra_post: list[Condition] = []
    writes: list[str] = []
    if item is not None and item_col is not None:
        if item.statuses and "published" in item.statuses:
            extra_pre.append(_pre("eq", f"{item.table}[${item_col}].status", _q("published"),
                                  why=f"only published {words(item.table)} can be taken"))
        if item.column("available") is not None and qty:
            extra_pre.append(_pre("ge", f"{item.table}[${item_col}].available", "$quantity",
                                  why=f"not enough {words(item.one)} available"))
            extra_post.append(_post("decreases_by", f"{item.table}[${item_col}].available", "$quantity",
                                    why="what is taken is no longer available"))
            writes.append(item.table)
    verb = "place" if qty else "create"
    ops.create(e, verb, extra_pre=extra_pre, extra_post=extra_post, writes_more=tuple(writes))
    ops.filter_by(e, "status")
    if rng.random() < 0.6:
        ops.count_by(e, "status")
    if e.column("note") is not None:
        ops.update_field(e, "note", guard=list(e.statuses[:2]))
    if e.column("priority") is not None:
        ops.update_field(e, "priority", guard=list(e.statuses[:-1]))
    cancel = e.statuses[-1] if e.statuses else None

    def side(src: str, dst: str) -> tuple[list[Condition], list[Condition], list[str]]:
        pre: list[Condition] = []
        post: list[Condition] = []
        more: list[str] = []
        if dst == cancel and item is not None and item_col is not None and item.column("available") is not None and qty:
            post.append(_post("increases_by", f"{item.table}[{T}[${e.pk}].{item_col}].available", f"{T}[${e.pk}].quantity",
                              why="what was taken is available again"))
            more.append(item.table)
        if payer is not None and payer_col is not None and e.column("total") is not None and len(e.statuses) > 2:
            if dst == e.statuses[1]:
                pre.append(_pre("ge", f"{payer.table}[{T}[${e.pk}].{payer_col}].balance", f"{T}[${e.pk}].total",
                                why="the balance must cover the total"))
                post.append(_post("decreases_by", f"{payer.table}[{T}[${e.pk}].{payer_col}].balance", f"{T}[${e.pk}].total",
                                  why="the total is paid from the balance"))
                more.append(payer.table)
        return pre, post, more

    ops.transitions(e, side)
    if rng.random() < 0.4:
        ops.delete(e, [])


def _event_ops(ops: _Ops, e: Entity, by_table: dict[str, Entity], rng: random.Random) -> None:
    T, one = e.table, e.one
    conflict = [_pre("none_eq", f"{T}[*].scheduled_at", "$scheduled_at",
                     why="another one is already scheduled at that time")] if rng.random() < 0.6 else []
    guard: list[Condition] = []
    if e.fks:
        col, ref = e.fks[0]
        parent = by_table[ref]
        if parent.statuses and parent.archetype == "txn" and len(parent.statuses) > 2:
            ok = list(parent.statuses[:-1])
            guard.append(_pre("in", f"{ref}[${col}].status", ok, why=f"{parent.statuses[-1]} {words(ref)} cannot be scheduled"))
    ops.create(e, "schedule", extra_pre=conflict + guard)
    ops.tool(f"reschedule_{one}", f"Move {a(one)} that is still scheduled to another time.",
             [ops.id_param(e), _p("scheduled_at", "str", "the new time, YYYY-MM-DD HH:MM:SS")],
             ops.cols(e, e.pk, "scheduled_at", "status"), [T], [T],
             [ops.exists(e), _pre("eq", f"{T}[${e.pk}].status", _q("scheduled"), why="only scheduled ones can move"),
              *conflict, _post("eq", f"{T}[${e.pk}].scheduled_at", "$scheduled_at")])
    ops.transitions(e)
    ops.tool(f"list_{T}_after", f"List the {words(T)} from a given time on.",
             [_p("since", "str", "the earliest time, YYYY-MM-DD HH:MM:SS")], ops.summary(e), [T], [],
             [_post("selects_ge", f"{T}[*].scheduled_at", "$since")], returns_list=True)
    ops.filter_by(e, "status")


# ----------------------------------------------------------------------------- the domain

@attrs.frozen
class Composition:
    """A composed domain and how its tools are grouped (the architect's outline)."""

    spec: DomainSpec
    groups: dict[str, list[str]]  # group name -> tool names, in order
    entities: list[str]


def theme_for(brief: Brief) -> Theme:
    """The theme a brief is about: by name, else the theme whose words overlap most, else by hash."""
    base = brief.name
    for q in QUALIFIERS:
        base = base.removeprefix(q + "_")
    base = base.rsplit("_", 1)[0] if base.rsplit("_", 1)[-1].isdigit() else base
    if base in BY_NAME:
        return BY_NAME[base]
    words_of = set(brief.name.split("_")) | {w for k in brief.keywords for w in k.split()}
    best = max(THEMES, key=lambda t: (len(words_of & _theme_words(t)), -THEMES.index(t)))
    if words_of & _theme_words(best):
        return best
    return THEMES[zlib.crc32(brief.name.encode()) % len(THEMES)]


def _theme_words(theme: Theme) -> set[str]:
    words_ = set(theme.name.split("_"))
    for spec in theme.entities:
        words_ |= set(spec.split(":")[0].split("_"))
    return words_


def compose(brief: Brief, seed: int) -> Composition:
    """The domain the sim designs for ``brief`` (a pure function of the brief and ``seed``)."""
    theme = theme_for(brief)
    rng = random.Random(zlib.crc32(f"{brief.name}/{seed}".encode()))
    target = max(20, brief.tools)
    # about 3 tools per table: tables follow from the size asked for (5 to 22)
    n_tables = max(5, min(22, round(target / 3.2) + rng.randint(-1, 1)))
    entities = _choose(theme, rng, n_tables)
    _wire(entities, rng)
    for e in entities:
        _columns(e, theme, rng)
    ops = _operations(entities, theme, rng)
    tools = _trim(ops, target, rng)
    tables = [TableSpec(name=e.table, description=f"{words(e.table)} of the {words(brief.name)} domain",
                        primary_key=e.pk, fields=list(e.columns)) for e in entities]
    groups: dict[str, list[str]] = {}
    for e in entities:
        mine = [t.name for t in tools if e.table == _home_table(t, entities)]
        if mine:
            groups.setdefault(_group_of(e, entities), []).extend(mine)
    spec = DomainSpec(name=brief.name, description=brief.description, tables=tables, tools=tools,
                      keywords=list(brief.keywords))
    return Composition(spec=spec, groups=groups, entities=[e.table for e in entities])


def _trim(ops: list[Op], target: int, rng: random.Random) -> list[ToolSpec]:
    """Keep every core operation, then optional ones at random until the size asked for."""
    core = [t for t, c in ops if c]
    optional = [t for t, c in ops if not c]
    rng.shuffle(optional)
    keep = {t.name for t in core} | {t.name for t in optional[: max(0, target - len(core))]}
    return [t for t, _ in ops if t.name in keep]


def _home_table(tool: ToolSpec, entities: list[Entity]) -> str:
    """The table a tool is mostly about (its first written table, else its last read one)."""
    if tool.writes:
        return tool.writes[0]
    return tool.reads[-1] if tool.reads else entities[0].table


def _group_of(e: Entity, entities: list[Entity]) -> str:
    """Workflows: each transaction-like entity with what hangs off it; parties, catalogues, the rest."""
    if e.archetype in ("party", "org"):
        return "accounts_and_organisations"
    if e.archetype in ("catalog", "location", "device", "tag"):
        return "catalogue_and_places"
    if e.archetype in ("txn", "ledger", "payment"):
        return f"{e.table}_workflow"
    parent = next((p for p in e.parents if any(x.table == p and x.archetype == "txn" for x in entities)), None)
    if parent is not None:
        return f"{parent}_workflow"
    return "records_and_messages"
