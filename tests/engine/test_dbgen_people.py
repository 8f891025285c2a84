"""Generated people are one person: their email fits their name, whichever was given."""

from __future__ import annotations

import random

from scaleenv._model.dbgen import make_record
from scaleenv._store.specs import FieldSpec, TableSpec

CANDIDATES = TableSpec(name="candidates", description="job seekers", primary_key="candidate_id", fields=[
    FieldSpec(name="candidate_id", type="str"),
    FieldSpec(name="full_name", type="str", kind="person_name"),
    FieldSpec(name="email", type="str", kind="email", unique=True),
    FieldSpec(name="headline", type="str"),
])


def test_a_made_person_s_email_is_theirs() -> None:
    db: dict = {"candidates": {}}
    rng = random.Random(3)
    for _ in range(50):
        key, rec = make_record(CANDIDATES, db, rng)
        first, last = rec["full_name"].lower().split()[:2]
        assert rec["email"].startswith(f"{first}.{last}") and rec["email"].endswith("@example.com"), rec
        db["candidates"][key] = rec
    assert len({r["email"] for r in db["candidates"].values()}) == 50  # still unique


def test_a_person_made_for_a_given_email_is_named_after_it() -> None:
    _, rec = make_record(CANDIDATES, {"candidates": {}}, random.Random(1), overrides={"email": "amara.okafor7@example.org"})
    assert rec["full_name"] == "Amara Okafor" and rec["email"] == "amara.okafor7@example.org"
    _, both = make_record(CANDIDATES, {"candidates": {}}, random.Random(1),
                          overrides={"email": "amara.okafor7@example.org", "full_name": "Ada Berg"})
    assert both["full_name"] == "Ada Berg"  # what the caller fixed is kept
    _, odd = make_record(CANDIDATES, {"candidates": {}}, random.Random(1), overrides={"email": "hr@example.org"})
    assert odd["email"] == "hr@example.org" and len(odd["full_name"].split()) == 2  # no name in it: left as made
