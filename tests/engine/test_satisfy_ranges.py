"""The contract solver draws a number for a parameter inside the range of the column it is
named after (a value the call writes there must keep the schema's integrity)."""

from __future__ import annotations

import random

from scaleenv._model.satisfy import satisfy
from scaleenv._store.specs import DomainSpec, FieldSpec, ParamSpec, TableSpec, ToolSpec

TITLES = TableSpec(name="titles", description="films for rent", primary_key="title_id", fields=[
    FieldSpec(name="title_id", type="str"),
    FieldSpec(name="name", type="str"),
    FieldSpec(name="price", type="float", minimum=0.99, maximum=30.0),
    FieldSpec(name="copies", type="int", minimum=10, maximum=20),
])
ADD = ToolSpec(name="add_title", description="add a title", reads=[], writes=["titles"], mutates=True,
               params=[ParamSpec(name="name", type="str", description="its name"),
                       ParamSpec(name="price", type="float", description="rental price"),
                       ParamSpec(name="copies", type="int", description="copies in stock"),
                       ParamSpec(name="discount", type="float", description="no column of that name")],
               returns=[FieldSpec(name="title_id", type="str")])
DOMAIN = DomainSpec(name="rentals", description="film rentals", tables=[TITLES], tools=[ADD])


def test_numbers_fall_in_their_columns_range() -> None:
    prices, copies, discounts = [], [], []
    for seed in range(200):
        solved = satisfy(DOMAIN, ADD, {"titles": {}}, random.Random(seed))
        assert solved is not None
        args, _ = solved
        prices.append(args["price"])
        copies.append(args["copies"])
        discounts.append(args["discount"])
    assert all(0.99 <= p <= 30.0 for p in prices) and max(prices) > 20
    assert all(10 <= c <= 20 for c in copies)  # the usual 1-3 lies below the range: drawn at its low end
    assert max(discounts) > 30  # no column: the solver's usual 1-50
