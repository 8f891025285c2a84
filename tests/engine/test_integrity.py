"""scaleenv._model.integrity: constraints from a schema, and the violations a delta brings in."""

from __future__ import annotations

import copy
import random
from typing import Any

import msgspec
import pytest

from scaleenv._model.dbgen import assert_consistent, inconsistencies
from scaleenv._model.integrity import (
    BeforeState,
    Constraints,
    IntegrityIndex,
    check_delta,
    constraints_of,
    describe,
    state_violations,
)
from scaleenv._model.state import apply_delta
from scaleenv._store.events.tasks import RecordChange
from scaleenv._store.specs import DomainSpec, FieldSpec, TableSpec

F = FieldSpec

SPEC = DomainSpec(name="clinic", description="a clinic", tools=[], tables=[
    TableSpec(name="patients", description="", primary_key="patient_id", fields=[
        F(name="patient_id", type="str"),
        F(name="name", type="str", required=True),
        F(name="email", type="str", unique=True),
        F(name="age", type="int", minimum=0, maximum=130),
        F(name="tier", type="str", enum=["basic", "plus"]),
        F(name="guardian_id", type="str", ref="patients"),
    ]),
    TableSpec(name="doctors", description="", primary_key="doctor_id", fields=[
        F(name="doctor_id", type="str"),
        F(name="name", type="str", required=True),
    ]),
    TableSpec(name="visits", description="", primary_key="visit_id", fields=[
        F(name="visit_id", type="str"),
        F(name="patient_id", type="str", ref="patients", required=True),
        F(name="doctor_ids", type="list[str]", ref="doctors"),
        F(name="fee", type="float", minimum=0),
        F(name="paid", type="bool"),
        F(name="slot", type="str", unique=True),
    ]),
])
C = constraints_of(SPEC)


def state() -> dict[str, dict[str, dict[str, Any]]]:
    return {
        "patients": {
            "p1": {"patient_id": "p1", "name": "Ada Okafor", "email": "ada@x.org", "age": 40, "tier": "basic",
                   "guardian_id": None},
            "p2": {"patient_id": "p2", "name": "Bram Berg", "email": "bram@x.org", "age": 9, "tier": "plus",
                   "guardian_id": "p1"},
        },
        "doctors": {"d1": {"doctor_id": "d1", "name": "Dr Costa"}, "d2": {"doctor_id": "d2", "name": "Dr Eze"}},
        "visits": {"v1": {"visit_id": "v1", "patient_id": "p2", "doctor_ids": ["d1"], "fee": 20.0, "paid": False,
                          "slot": "2024-03-15 10:00"}},
    }


def ch(table: str, key: str, before: Any, after: Any) -> RecordChange:
    return RecordChange(table=table, key=key, before=before, after=after)


def create(table: str, key: str, **fields: Any) -> RecordChange:
    return ch(table, key, None, fields)


def update(db: Any, table: str, key: str, **fields: Any) -> RecordChange:
    before = db[table][key]
    return ch(table, key, before, {**before, **fields})


def delete(db: Any, table: str, key: str) -> RecordChange:
    return ch(table, key, db[table][key], None)


def messages(db: Any, delta: list[RecordChange], index: IntegrityIndex | None = None) -> list[str]:
    return [v.message for v in check_delta(db, delta, C, index)]


def test_constraints_come_from_the_schema_and_encode_compactly() -> None:
    rules = C.tables["visits"]
    assert rules.primary_key == "visit_id"
    assert rules.refs == {"patient_id": "patients", "doctor_ids": "doctors"}
    assert rules.unique == ["slot"] and rules.required == ["patient_id"]
    assert rules.ranges == {"fee": (0, None)}
    assert C.tables["patients"].enums == {"tier": ["basic", "plus"]}
    assert C.tables["patients"].refs == {"guardian_id": "patients"}
    encoded = msgspec.msgpack.encode(C)
    assert msgspec.msgpack.decode(encoded, type=Constraints) == C
    assert len(encoded) < 600


def test_a_valid_delta_has_no_violation() -> None:
    db = state()
    delta = [create("patients", "p3", patient_id="p3", name="Chen Xu", email="chen@x.org", age=30, tier="plus",
                    guardian_id="p1"),
             create("visits", "v2", visit_id="v2", patient_id="p3", doctor_ids=["d1", "d2"], fee=0, paid=True,
                    slot="2024-03-15 11:00"),
             update(db, "patients", "p1", age=41.0)]  # 41.0 is the JSON number 41
    assert messages(db, delta) == []
    assert check_delta(db, [], C) == []


def test_each_kind_of_violation_is_a_sentence_naming_table_key_column_and_value() -> None:
    db = state()
    got = messages(db, [
        create("patients", "p3", patient_id="p3", email="ada@x.org", age=200, tier="gold", guardian_id="p9"),
        create("visits", "v2", visit_id="v9", patient_id="p1", doctor_ids=["d1", "d7"], fee=-1.5, paid="yes",
               slot="2024-03-15 10:00"),
    ])
    assert got == [
        "patients[p3].age = 200 is above its maximum 130",
        "patients[p3].email = 'ada@x.org' duplicates patients[p1] (email is unique)",
        "patients[p3].guardian_id = 'p9' points at no record of patients",
        "patients[p3].name is required but missing",
        "patients[p3].tier = 'gold' is not one of 'basic', 'plus'",
        "visits[v2].doctor_ids = 'd7' points at no record of doctors",
        "visits[v2].fee = -1.5 is below its minimum 0",
        "visits[v2].paid = 'yes' is str, not a bool",
        "visits[v2].slot = '2024-03-15 10:00' duplicates visits[v1] (slot is unique)",
        "visits[v2].visit_id (the primary key) = 'v9' differs from the record's key 'v2'",
    ]
    kinds = {v.kind for v in check_delta(db, [create("patients", "p3", patient_id="p3", name=None, age="9")], C)}
    assert kinds == {"required", "type"}


def test_types_are_json_types() -> None:
    db = state()
    bad = [update(db, "patients", "p1", age=True), update(db, "patients", "p2", age=9.5)]
    assert messages(db, bad) == ["patients[p1].age = True is bool, not an int", "patients[p2].age = 9.5 is float, not an int"]
    assert messages(db, [update(db, "visits", "v1", fee=3)]) == []  # an int is a number
    assert messages(db, [update(db, "visits", "v1", doctor_ids="d1")]) == [
        "visits[v1].doctor_ids = 'd1' is str, not a list of str"]


def test_only_what_the_call_changed_is_checked() -> None:
    """A fixture's own problem in a column the call does not touch is not the call's fault."""
    db = state()
    db["patients"]["p2"]["tier"] = "legacy"
    db["patients"]["p2"]["guardian_id"] = "gone"
    assert messages(db, [update(db, "patients", "p2", age=10)]) == []
    assert messages(db, [update(db, "patients", "p2", tier="legacy2")]) == [
        "patients[p2].tier = 'legacy2' is not one of 'basic', 'plus'"]


def test_deleting_a_referenced_record_is_a_violation_unless_its_references_go_too() -> None:
    db = state()
    assert messages(db, [delete(db, "patients", "p2")]) == [
        "patients[p2] was deleted but visits[v1].patient_id still references it"]
    assert messages(db, [delete(db, "doctors", "d1")]) == [
        "doctors[d1] was deleted but visits[v1].doctor_ids still references it"]
    # Self-reference: p2's guardian is p1.
    assert messages(db, [delete(db, "patients", "p1")]) == [
        "patients[p1] was deleted but patients[p2].guardian_id still references it"]
    # The referencing record deleted too, or repointed in the same call: fine.
    assert messages(db, [delete(db, "visits", "v1"), delete(db, "patients", "p2")]) == []
    assert messages(db, [update(db, "patients", "p2", guardian_id=None), delete(db, "patients", "p1")]) == []
    # Repointed at the deleted record itself: reported once, as a dangling reference.
    assert messages(db, [update(db, "visits", "v1", doctor_ids=["d2"], patient_id="p2"), delete(db, "doctors", "d2")]) == [
        "visits[v1].doctor_ids = 'd2' points at no record of doctors"]
    # The referencing record changed elsewhere but still points at the deleted one.
    assert messages(db, [update(db, "visits", "v1", paid=True), delete(db, "patients", "p2")]) == [
        "patients[p2] was deleted but visits[v1].patient_id still references it"]


def test_unique_values_within_one_call() -> None:
    db = state()
    # Two new records with one value: reported once, on the later key.
    assert messages(db, [create("patients", "p3", patient_id="p3", name="A", email="same@x.org"),
                         create("patients", "p4", patient_id="p4", name="B", email="same@x.org")]) == [
        "patients[p4].email = 'same@x.org' duplicates patients[p3] (email is unique)"]
    # Swapping two values in one call, or freeing a value and taking it: fine.
    assert messages(db, [update(db, "patients", "p1", email="bram@x.org"),
                         update(db, "patients", "p2", email="ada@x.org")]) == []
    assert messages(db, [delete(db, "visits", "v1"),
                         create("visits", "v2", visit_id="v2", patient_id="p1", slot="2024-03-15 10:00")]) == []
    # A record the call changed elsewhere still holds its value.
    assert messages(db, [update(db, "patients", "p1", age=50),
                         create("patients", "p0", patient_id="p0", name="C", email="ada@x.org")]) == [
        "patients[p0].email = 'ada@x.org' duplicates patients[p1] (email is unique)"]
    # null is never a duplicate; 25 and 25.0 are the same value.
    assert messages(db, [update(db, "patients", "p1", email=None), update(db, "patients", "p2", email=None)]) == []


def test_before_state_reads_the_state_before_a_delta_from_the_state_after_it() -> None:
    before = state()
    delta = [update(before, "patients", "p1", age=41), delete(before, "visits", "v1"),
             create("doctors", "d3", doctor_id="d3", name="Dr New")]
    after = apply_delta(copy.deepcopy(before), delta)
    view = BeforeState(after, delta)
    assert {t: dict(rows) for t, rows in view.items()} == before
    assert len(view["visits"]) == 1 and "d3" not in view["doctors"]


def _random_delta(db: Any, rng: random.Random) -> list[RecordChange]:
    """A few random creates, updates and deletes over the clinic (often breaking something)."""
    changes: dict[tuple[str, str], RecordChange] = {}
    for _ in range(rng.randint(1, 3)):
        table = rng.choice(["patients", "doctors", "visits"])
        keys = sorted(db[table])
        op = rng.choice(["create", "update", "delete"]) if keys else "create"
        if op == "create":
            key = f"{table[0]}{rng.randint(1, 30)}"
            rec = {"patients": {"patient_id": key, "name": "N", "email": rng.choice(["a@x", "b@x", None]),
                                "guardian_id": rng.choice([None, *sorted(db["patients"])])},
                   "doctors": {"doctor_id": key, "name": "D"},
                   "visits": {"visit_id": key, "patient_id": rng.choice(["p1", "p2", "p9"]),
                              "doctor_ids": rng.sample(sorted(db["doctors"]) or ["d1"], 1),
                              "slot": rng.choice(["s1", "s2", "s3"])}}[table]
            before = db[table].get(key)
            changes[(table, key)] = ch(table, key, before, rec)
        elif op == "update":
            key = rng.choice(keys)
            field = {"patients": "email", "doctors": "name", "visits": "slot"}[table]
            changes[(table, key)] = ch(table, key, db[table][key],
                                       {**db[table][key], field: rng.choice(["a@x", "b@x", "s1", "s2", None])})
        else:
            key = rng.choice(keys)
            changes[(table, key)] = ch(table, key, db[table][key], None)
    return [changes[k] for k in sorted(changes)]


@pytest.mark.parametrize("seed", range(6))
def test_a_session_index_gives_what_a_fresh_check_gives(seed: int) -> None:
    """The incremental indexes (built once, moved by each committed delta) never drift from
    a check built from scratch, whatever mix of accepted and refused deltas comes."""
    rng = random.Random(seed)
    db = state()
    index = IntegrityIndex(C)
    accepted = 0
    for _ in range(150):
        delta = _random_delta(db, rng)
        after = apply_delta(db, delta)
        session_view = check_delta(BeforeState(after, delta), delta, C, index)
        assert session_view == check_delta(db, delta, C)
        if not session_view:
            index.commit(delta)
            db = after
            accepted += 1
    assert accepted > 10
    assert ("unique", "patients", "email") in index.built and ("ref", "visits", "patient_id") in index.built


def test_indexes_are_built_only_for_what_a_delta_needs() -> None:
    db = state()
    index = IntegrityIndex(C)
    assert check_delta(db, [update(db, "doctors", "d1", name="Dr C")], C, index) == []
    assert index.built == []  # no unique column, nothing deleted: no index
    check_delta(db, [update(db, "patients", "p1", email="z@x.org")], C, index)
    assert index.built == [("unique", "patients", "email")]
    check_delta(db, [delete(db, "doctors", "d2")], C, index)
    assert index.built == [("ref", "visits", "doctor_ids"), ("unique", "patients", "email")]


def test_whole_states_and_the_dbgen_helper() -> None:
    good = state()
    assert state_violations(good, C) == []
    assert_consistent(SPEC, good)
    bad = state()
    bad["visits"]["v1"]["patient_id"] = "p404"
    bad["patients"]["p2"]["email"] = "ada@x.org"
    assert inconsistencies(SPEC, bad) == [
        "patients[p2].email = 'ada@x.org' duplicates patients[p1] (email is unique)",
        "visits[v1].patient_id = 'p404' points at no record of patients",
    ]
    with pytest.raises(AssertionError, match=r"2 integrity violations: patients\[p2\]\.email"):
        assert_consistent(SPEC, bad)
    assert describe(state_violations(bad, C), limit=1).endswith("; and 1 more")
