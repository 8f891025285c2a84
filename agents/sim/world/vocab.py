"""Domain designs from the built-in vocabulary: sector x variant x flavor -> DomainSpec.

``combo(i)`` is the i-th combination in a fixed order; ``domain_for(slot, variety_seed)``
indexes a permutation of all combinations seeded by ``variety_seed``, so the slots of
one run get distinct domains. Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from scaleenv.store.specs import Condition, DomainSpec, FieldSpec, ParamSpec, TableSpec, ToolSpec

from .sectors import FLAVORS, QUALIFIERS, SECTORS, Sector, Variant


class Combo(NamedTuple):
    index: int
    sector: Sector
    variant: Variant
    flavor: int
    name: str


def _combos() -> list[Combo]:
    out: list[Combo] = []
    for si, sector in enumerate(SECTORS):
        for vi, variant in enumerate(sector.variants):
            for flavor in range(FLAVORS):
                if flavor == 0:
                    name = variant.name
                else:
                    name = f"{QUALIFIERS[(si * 3 + vi + flavor * 3) % len(QUALIFIERS)]}_{variant.name}"
                out.append(Combo(len(out), sector, variant, flavor, name))
    return out


COMBOS: tuple[Combo, ...] = tuple(_combos())
VOCABULARY_SIZE = len(COMBOS)


def combo_for(slot: int, variety_seed: int) -> tuple[Combo, int]:
    """The combination of a slot, and its lap (0 for the first VOCABULARY_SIZE slots)."""
    order = list(range(len(COMBOS)))
    random.Random(variety_seed).shuffle(order)
    lap, pos = divmod(int(slot), len(COMBOS))
    return COMBOS[order[pos]], lap


def domain_for(slot: int, variety_seed: int) -> DomainSpec:
    combo, lap = combo_for(slot, variety_seed)
    spec = build_domain(combo)
    if lap:
        spec = DomainSpec(name=f"{spec.name}_{lap + 1}", description=spec.description, tables=spec.tables, tools=spec.tools)
    return spec


def _f(name: str, type_: str, description: str = "", ref: str | None = None, enum: list[str] | None = None) -> FieldSpec:
    return FieldSpec(name=name, type=type_, description=description, ref=ref, enum=enum)  # type: ignore[arg-type]


def _p(name: str, type_: str, description: str, ref: str | None = None) -> ParamSpec:
    return ParamSpec(name=name, type=type_, description=description, ref=ref)  # type: ignore[arg-type]


def _pre(op: str, left: str, right: object = None, why: str = "") -> Condition:
    return Condition(when="pre", op=op, left=left, right=right, why=why)  # type: ignore[arg-type]


def _post(op: str, left: str, right: object = None, why: str = "") -> Condition:
    return Condition(when="post", op=op, left=left, right=right, why=why)  # type: ignore[arg-type]


def _words(ident: str) -> str:
    return ident.replace("_", " ")


def _a(ident: str) -> str:
    """'a' or 'an' before the words of an identifier."""
    words = _words(ident)
    return f"an {words}" if words[:1] in "aeiou" else f"a {words}"


def build_domain(combo: Combo) -> DomainSpec:
    """The clean (rule-abiding) design of one combination."""
    s, v, flavor = combo.sector, combo.variant, combo.flavor
    rng = random.Random(combo.index * 7919 + 17)
    P, p1 = s.party, s.party_one
    R, r1 = v.resource, v.resource_one
    T, t1 = s.txn, s.txn_one
    L, l1 = s.location, s.location_one
    N, n1 = s.note, s.note_one
    pid, rid, tid, lid, nid = f"{p1}_id", f"{r1}_id", f"{t1}_id", f"{l1}_id", f"{n1}_id"
    s0, s1, s2, sc = s.statuses
    bal, stock, qty, edit = s.balance, v.stock, s.qty, s.edit_field
    with_location = flavor in (1, 3) or (flavor == 2 and rng.random() < 0.5)
    with_note = flavor in (2, 3)
    with_tier = flavor % 2 == 1 or rng.random() < 0.3
    with_phone = rng.random() < 0.5
    with_rating = rng.random() < 0.5

    party_fields = [
        _f(pid, "str", f"the {_words(p1)}'s id"),
        _f("name", "str", "full name"),
        _f("email", "str", "contact email (unique)"),
        _f(bal, "float", "money on the account, in dollars"),
    ]
    if with_tier:
        party_fields.append(_f("tier", "str", "loyalty tier", enum=["basic", "silver", "gold"]))
    if with_phone:
        party_fields.append(_f("phone", "str", "contact phone"))
    resource_fields = [
        _f(rid, "str", f"the {_words(r1)}'s id"),
        _f("name", "str", f"the {_words(r1)}'s name"),
        _f("price", "float", f"price per unit of {_words(qty)}, in dollars"),
        _f(stock, "int", f"units of {_words(qty)} still available"),
        _f("category", "str", "category", enum=list(v.categories)),
    ]
    if with_rating:
        resource_fields.append(_f("rating", "float", "average customer rating, 0 to 5"))
    if with_location:
        resource_fields.append(_f(lid, "str", f"the {_words(l1)} that offers it", ref=L))
    txn_fields = [
        _f(tid, "str", f"the {_words(t1)}'s id"),
        _f(pid, "str", f"who made the {_words(t1)}", ref=P),
        _f(rid, "str", f"what the {_words(t1)} is for", ref=R),
        _f(qty, "int", f"how many {_words(qty)}"),
        _f("total", "float", "price times quantity, in dollars"),
        _f("status", "str", f"lifecycle of the {_words(t1)}", enum=[s0, s1, s2, sc]),
        _f(edit, "str", _words(edit)),
    ]
    tables = [
        TableSpec(name=P, description=f"the {_words(P)} of {v.blurb}", primary_key=pid, fields=party_fields),
        TableSpec(name=R, description=f"the {_words(R)} on offer", primary_key=rid, fields=resource_fields),
        TableSpec(name=T, description=f"{_words(T)} made by {_words(P)}", primary_key=tid, fields=txn_fields),
    ]
    if with_location:
        tables.append(TableSpec(name=L, description=f"the {_words(L)}", primary_key=lid, fields=[
            _f(lid, "str", f"the {_words(l1)}'s id"), _f("name", "str", "name"), _f("city", "str", "city"),
        ]))
    if with_note:
        tables.append(TableSpec(name=N, description=f"{_words(N)} left on finished {_words(T)}", primary_key=nid, fields=[
            _f(nid, "str", "id"), _f(tid, "str", f"the {_words(t1)} it is about", ref=T),
            _f("rating", "int", "1 to 5"), _f("comment", "str", "free text"),
        ]))

    def ret(table: list[FieldSpec], *names: str) -> list[FieldSpec]:
        by = {f.name: f for f in table}
        return [by[n] for n in names]

    exists_p = _pre("exists", f"{P}[${pid}]", why=f"the {_words(p1)} must exist")
    exists_r = _pre("exists", f"{R}[${rid}]", why=f"the {_words(r1)} must exist")
    exists_t = _pre("exists", f"{T}[${tid}]", why=f"the {_words(t1)} must exist")
    tp, rp, tparam = _p(pid, "str", f"the {_words(p1)}'s id", ref=P), _p(rid, "str", f"the {_words(r1)}'s id", ref=R), _p(tid, "str", f"the {_words(t1)}'s id", ref=T)
    party_ret = [pid, "name", "email", bal] + (["tier"] if with_tier else [])
    txn_ret = [f.name for f in txn_fields]

    core = [
        ToolSpec(name=f"find_{p1}_by_email", description=f"Find {_a(p1)} by their email address.",
                 params=[_p("email", "str", "the email address")], returns=ret(party_fields, pid, "name"),
                 reads=[P], writes=[], mutates=False, contract=[
                     _pre("some_eq", f"{P}[*].email", "$email", why=f"no {_words(p1)} has this email"),
                     _post("eq", f"{P}[$result.{pid}].email", "$email", why=f"the {_words(p1)} found has this email"),
                 ]),
        ToolSpec(name=f"get_{p1}", description=f"Get {_a(p1)}'s profile and {_words(bal)}.",
                 params=[tp], returns=ret(party_fields, *party_ret), reads=[P], writes=[], mutates=False, contract=[exists_p]),
        ToolSpec(name=f"list_{p1}_{T}", description=f"List the {_words(T)} of {_a(p1)}.",
                 params=[tp], returns=ret(txn_fields, tid, "status", "total", rid), returns_list=True,
                 reads=[P, T], writes=[], mutates=False, contract=[exists_p]),
        ToolSpec(name=f"get_{t1}", description=f"Get the details of one {_words(t1)}.",
                 params=[tparam], returns=ret(txn_fields, *txn_ret), reads=[T], writes=[], mutates=False, contract=[exists_t]),
        ToolSpec(name=f"{s.create_verb}_{t1}",
                 description=f"Create a new {_words(t1)} of {_a(r1)} for {_a(p1)}; status starts as {s0!r}.",
                 params=[tp, rp, _p(qty, "int", f"how many {_words(qty)}")], returns=ret(txn_fields, tid, "status", "total"),
                 reads=[P, R, T], writes=[R, T], mutates=True, contract=[
                     exists_p, exists_r,
                     _pre("gt", f"${qty}", "0", why=f"{_words(qty)} must be positive"),
                     _pre("ge", f"{R}[${rid}].{stock}", f"${qty}", why=f"not enough {_words(stock)}"),
                     _post("decreases_by", f"{R}[${rid}].{stock}", f"${qty}", why=f"the {_words(qty)} are taken from {_words(stock)}"),
                     _post("exists", f"{T}[$result.{tid}]", why=f"a new {_words(t1)} is recorded"),
                     _post("eq", f"{T}[$result.{tid}].status", f'"{s0}"', why=f"a new {_words(t1)} starts as {s0}"),
                     _post("eq", f"{T}[$result.{tid}].{pid}", f"${pid}", why=f"the {_words(t1)} belongs to the {_words(p1)}"),
                     _post("eq", f"{T}[$result.{tid}].{rid}", f"${rid}", why=f"the {_words(t1)} is for the {_words(r1)}"),
                     _post("eq", f"{T}[$result.{tid}].{qty}", f"${qty}", why=f"the {_words(t1)} is for that many {_words(qty)}"),
                 ]),
        ToolSpec(name=f"cancel_{t1}",
                 description=f"Cancel {_a(t1)} that is still {s0!r} or {s1!r}; its total is credited back and the {_words(qty)} released.",
                 params=[tparam], returns=ret(txn_fields, tid, "status"), reads=[P, R, T], writes=[P, R, T], mutates=True, contract=[
                     exists_t,
                     _pre("in", f"{T}[${tid}].status", [s0, s1], why=f"only {s0} or {s1} {_words(T)} can be cancelled"),
                     _post("eq", f"{T}[${tid}].status", f'"{sc}"'),
                     _post("increases_by", f"{P}[{T}[${tid}].{pid}].{bal}", f"{T}[${tid}].total", why="refund"),
                     _post("increases_by", f"{R}[{T}[${tid}].{rid}].{stock}", f"{T}[${tid}].{qty}", why="release"),
                 ]),
    ]
    optional = [
        ToolSpec(name=f"pay_{t1}", description=f"Pay a {s0!r} {_words(t1)} from the {_words(p1)}'s {_words(bal)}; it becomes {s1!r}.",
                 params=[tparam], returns=ret(txn_fields, tid, "status", "total"), reads=[P, T], writes=[P, T], mutates=True, contract=[
                     exists_t,
                     _pre("eq", f"{T}[${tid}].status", f'"{s0}"', why=f"only {s0} {_words(T)} can be paid"),
                     _pre("ge", f"{P}[{T}[${tid}].{pid}].{bal}", f"{T}[${tid}].total", why=f"the {_words(bal)} must cover the total"),
                     _post("decreases_by", f"{P}[{T}[${tid}].{pid}].{bal}", f"{T}[${tid}].total"),
                     _post("eq", f"{T}[${tid}].status", f'"{s1}"'),
                 ]),
        ToolSpec(name=f"{s.advance_verb}_{t1}", description=f"Move a {s1!r} {_words(t1)} to {s2!r}.",
                 params=[tparam], returns=ret(txn_fields, tid, "status"), reads=[T], writes=[T], mutates=True, contract=[
                     exists_t,
                     _pre("eq", f"{T}[${tid}].status", f'"{s1}"', why=f"only {s1} {_words(T)} can move to {s2}"),
                     _post("eq", f"{T}[${tid}].status", f'"{s2}"'),
                 ]),
        ToolSpec(name=f"update_{t1}_{edit}", description=f"Change the {_words(edit)} of {_a(t1)} that is not finished yet.",
                 params=[tparam, _p(edit, "str", f"the new {_words(edit)}")], returns=ret(txn_fields, tid, edit),
                 reads=[T], writes=[T], mutates=True, contract=[
                     exists_t,
                     _pre("in", f"{T}[${tid}].status", [s0, s1], why=f"finished or cancelled {_words(T)} cannot be changed"),
                     _post("eq", f"{T}[${tid}].{edit}", f"${edit}"),
                 ]),
        ToolSpec(name=f"add_{bal}", description=f"Add money to {_a(p1)}'s {_words(bal)}.",
                 params=[tp, _p("amount", "float", "dollars to add")], returns=ret(party_fields, pid, bal),
                 reads=[P], writes=[P], mutates=True, contract=[
                     exists_p, _pre("gt", "$amount", "0", why="the amount must be positive"),
                     _post("increases_by", f"{P}[${pid}].{bal}", "$amount"),
                 ]),
        ToolSpec(name=f"get_{r1}", description=f"Get one {_words(r1)} with its price and availability.",
                 params=[rp], returns=ret(resource_fields, rid, "name", "price", stock, "category"),
                 reads=[R], writes=[], mutates=False, contract=[exists_r]),
        ToolSpec(name=f"search_{R}", description=f"List the {_words(R)} of a category.",
                 params=[_p("category", "str", "the category")], returns=ret(resource_fields, rid, "name", "price", stock),
                 returns_list=True, reads=[R], writes=[], mutates=False, contract=[
                     _pre("in", "$category", list(v.categories), why="unknown category"),
                 ]),
        ToolSpec(name=f"restock_{r1}", description=f"Add units to {_a(r1)}'s {_words(stock)}.",
                 params=[rp, _p(qty, "int", f"how many {_words(qty)} to add")], returns=ret(resource_fields, rid, stock),
                 reads=[R], writes=[R], mutates=True, contract=[
                     exists_r, _pre("gt", f"${qty}", "0", why="must add at least one"),
                     _post("increases_by", f"{R}[${rid}].{stock}", f"${qty}"),
                 ]),
        ToolSpec(name=f"update_{p1}_email", description=f"Change {_a(p1)}'s email address (to one no {_words(p1)} uses yet).",
                 params=[tp, _p("email", "str", "the new email")], returns=ret(party_fields, pid, "email"),
                 reads=[P], writes=[P], mutates=True, contract=[
                     exists_p, _pre("ne", "$email", '""', why="the email cannot be empty"),
                     _pre("none_eq", f"{P}[*].email", "$email", why=f"the email is already used by {_a(p1)}"),
                     _post("eq", f"{P}[${pid}].email", "$email"),
                 ]),
    ]
    if with_tier:
        optional.append(ToolSpec(
            name=f"upgrade_{p1}_tier", description=f"Upgrade a basic {_words(p1)} to silver.",
            params=[tp], returns=ret(party_fields, pid, "tier"), reads=[P], writes=[P], mutates=True, contract=[
                exists_p, _pre("eq", f"{P}[${pid}].tier", '"basic"', why="only basic members can be upgraded"),
                _post("eq", f"{P}[${pid}].tier", '"silver"'),
            ]))
    if with_location:
        lp = _p(lid, "str", f"the {_words(l1)}'s id", ref=L)
        optional.append(ToolSpec(
            name=f"list_{l1}_{R}", description=f"List the {_words(R)} offered at {_a(l1)}.",
            params=[lp], returns=ret(resource_fields, rid, "name", "price", stock), returns_list=True,
            reads=[L, R], writes=[], mutates=False, contract=[_pre("exists", f"{L}[${lid}]", why=f"the {_words(l1)} must exist")]))
    extra_n = rng.randint(1, 3)
    chosen = rng.sample(optional, k=min(extra_n, len(optional)))
    if with_note:
        chosen.append(ToolSpec(
            name=f"add_{n1}", description=f"Leave {_a(n1)} (rating 1-5) on a {s2!r} {_words(t1)}.",
            params=[tparam, _p("rating", "int", "1 to 5"), _p("comment", "str", "free text")],
            returns=[_f(nid, "str", "id"), _f("rating", "int", "1 to 5")],
            reads=[T, N], writes=[N], mutates=True, contract=[
                exists_t,
                _pre("eq", f"{T}[${tid}].status", f'"{s2}"', why=f"only {s2} {_words(T)} can be reviewed"),
                _pre("ge", "$rating", "1", why="rating is 1 to 5"),
                _pre("le", "$rating", "5", why="rating is 1 to 5"),
                _post("unchanged", f"{T}[${tid}].status", why=f"leaving a {_words(n1)} does not change the {_words(t1)}"),
                _post("exists", f"{N}[$result.{nid}]", why=f"the {_words(n1)} is recorded"),
                _post("eq", f"{N}[$result.{nid}].{tid}", f"${tid}", why=f"the {_words(n1)} is about the {_words(t1)}"),
                _post("eq", f"{N}[$result.{nid}].rating", "$rating", why="the rating is stored as given"),
            ]))
    order = {t.name: i for i, t in enumerate(optional)}
    chosen.sort(key=lambda t: order.get(t.name, len(order)))
    tools = core + chosen
    return DomainSpec(
        name=combo.name,
        description=f"{v.blurb[0].upper()}{v.blurb[1:]} ({combo.sector.sector} sector): {_words(P)} make {_words(T)} of {_words(R)}.",
        tables=tables,
        tools=tools,
    )
