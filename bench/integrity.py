"""Benchmark: what enforcing integrity costs per call, and that it follows the delta.

Pure model (``scaleenv._model.integrity``), on states of 1k, 10k and 100k records (a
shop: customers with a unique email, products, orders pointing at both with a status
enum and a quantity range), for calls that create an order, change a stock or delete an
order:

- ``session``: ``check_delta`` with one ``IntegrityIndex`` kept across the calls (what a
  sandbox session does), then its ``commit``; the first call of each kind, which builds
  the indexes it needs, is reported apart;
- ``fresh``: ``check_delta`` without an index (indexes built for each call);
- ``whole``: ``state_violations`` of the whole state after each call (checking the
  state instead of the delta: the baseline).

Then the sandbox itself: calls/s of 4 sessions with and without constraints (real worker
processes) over a 100-record state (on bigger states the sandbox's own change
detection, which re-checks every record of a table a call changed, costs far more than
the integrity check).

Usage: .venv/bin/python bench/integrity.py [--calls N] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from typing import Any

import trio

from scaleenv._model.integrity import BeforeState, IntegrityIndex, check_delta, constraints_of, state_violations
from scaleenv._sandbox import Limits, RecordChange, SandboxPool
from scaleenv._store.specs import DomainSpec, FieldSpec, TableSpec

F = FieldSpec
SPEC = DomainSpec(name="shop", description="", tools=[], tables=[
    TableSpec(name="customers", description="", primary_key="customer_id", fields=[
        F(name="customer_id", type="str"), F(name="name", type="str", required=True),
        F(name="email", type="str", unique=True)]),
    TableSpec(name="products", description="", primary_key="product_id", fields=[
        F(name="product_id", type="str"), F(name="title", type="str"), F(name="stock", type="int", minimum=0)]),
    TableSpec(name="orders", description="", primary_key="order_id", fields=[
        F(name="order_id", type="str"), F(name="customer_id", type="str", ref="customers", required=True),
        F(name="product_id", type="str", ref="products", required=True),
        F(name="quantity", type="int", minimum=1, maximum=100),
        F(name="status", type="str", enum=["pending", "shipped", "cancelled"])]),
])
CONSTRAINTS = constraints_of(SPEC)


def make_state(records: int) -> dict[str, dict[str, dict[str, Any]]]:
    n_c, n_p = records // 5, records // 5
    n_o = records - n_c - n_p
    return {
        "customers": {f"c{i}": {"customer_id": f"c{i}", "name": f"Customer {i}", "email": f"c{i}@example.com"}
                      for i in range(n_c)},
        "products": {f"p{i}": {"product_id": f"p{i}", "title": f"Product {i}", "stock": 10**6} for i in range(n_p)},
        "orders": {f"o{i}": {"order_id": f"o{i}", "customer_id": f"c{i % n_c}", "product_id": f"p{i % n_p}",
                             "quantity": 1 + i % 5, "status": "pending"} for i in range(n_o)},
    }


def next_delta(db: Any, i: int, rng: random.Random) -> list[RecordChange]:
    """One call on the current state: create an order (taking a stock), change a
    customer's email, or delete an order."""
    kind = i % 3
    if kind == 0:
        c, p = f"c{rng.randrange(len(db['customers']))}", f"p{rng.randrange(len(db['products']))}"
        prod = db["products"][p]
        return [RecordChange("orders", f"new{i}", None, {"order_id": f"new{i}", "customer_id": c, "product_id": p,
                                                          "quantity": 1, "status": "pending"}),
                RecordChange("products", p, prod, {**prod, "stock": max(prod["stock"] - 1, 0)})]
    if kind == 1:
        c = f"c{rng.randrange(len(db['customers']))}"
        return [RecordChange("customers", c, db["customers"][c], {**db["customers"][c], "email": f"n{i}@x.org"})]
    o = f"o{i // 3}"
    if o not in db["orders"]:
        o = f"new{i - 2}"  # past the first orders: the one call i - 2 created
    return [RecordChange("orders", o, db["orders"][o], None)]


def apply_in_place(db: Any, delta: list[RecordChange]) -> None:
    for c in delta:
        if c.after is None:
            del db[c.table][c.key]
        else:
            db[c.table][c.key] = c.after


def run_pure(records: int, calls: int) -> dict[str, float]:
    db = make_state(records)
    # Keep the collector from traversing the big state over and over (as the engine does
    # for its projections): what is timed is the check, not full collections.
    gc.collect()
    gc.freeze()
    rng = random.Random(1)
    index = IntegrityIndex(CONSTRAINTS)
    first = session = fresh = whole = view = 0.0
    fresh_calls = max(3, min(calls, 1_000_000 // records))
    whole_calls = max(3, min(calls, 100_000 // records))
    for i in range(calls):
        delta = next_delta(db, i, rng)
        t0 = time.perf_counter()
        problems = check_delta(db, delta, CONSTRAINTS, index)
        index.commit(delta)
        spent = time.perf_counter() - t0
        assert problems == [], problems
        if i < 3:  # the first call of each kind builds the indexes it needs
            first += spent
        else:
            session += spent
        if 0 < i < fresh_calls:
            t0 = time.perf_counter()
            check_delta(db, delta, CONSTRAINTS)
            fresh += time.perf_counter() - t0
        apply_in_place(db, delta)
        if i < whole_calls:
            t0 = time.perf_counter()
            state_violations(db, CONSTRAINTS)
            whole += time.perf_counter() - t0
        if i == 1:
            # What the sandbox's worker does: read the state before through the state after.
            t0 = time.perf_counter()
            check_delta(BeforeState(db, delta), delta, CONSTRAINTS, index)
            view = time.perf_counter() - t0
    gc.unfreeze()
    return {"records": records, "first_calls_us": first * 1e6, "session_us": session / (calls - 3) * 1e6,
            "fresh_us": fresh / (fresh_calls - 1) * 1e6, "whole_state_us": whole / whole_calls * 1e6,
            "session_through_view_us": view * 1e6}


TOOLS = {"order": '''
def order(db, key, customer_id, product_id):
    product = db["products"][product_id]
    if product["stock"] < 1:
        raise ToolError("out of stock")
    product["stock"] -= 1
    db["orders"][key] = {"order_id": key, "customer_id": customer_id, "product_id": product_id, "quantity": 1,
                         "status": "pending"}
    return {"order_id": key}
'''}


async def sandbox_rate(calls: int, constraints: bool, records: int, sessions: int = 4) -> float:
    state = make_state(records)
    async with SandboxPool(workers=2, limits=Limits(timeout_s=10)) as pool:
        for s in range(sessions):
            await pool.open_session(f"s{s}", TOOLS, state, constraints=CONSTRAINTS if constraints else None)
        per = calls // sessions

        async def run(s: int) -> None:
            for i in range(per):
                out = await pool.call(f"s{s}", "order", {"key": f"n{i}", "customer_id": f"c{i % (records // 5)}",
                                                         "product_id": f"p{i % (records // 5)}"})
                assert out.ok, out.error

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for s in range(sessions):
                nursery.start_soon(run, s)
        return per * sessions / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--sandbox-calls", type=int, default=8000)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    pure = [run_pure(n, opts.calls) for n in (1_000, 10_000, 100_000)]
    # Alternated, best of two each: the machine is shared.
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(2):
        for constrained in (False, True):
            rates[constrained].append(trio.run(sandbox_rate, opts.sandbox_calls, constrained, 100))
    plain, checked = max(rates[False]), max(rates[True])
    lines = ["records  first 3 calls  per call (session)   per call (fresh index)   whole state   fresh/session"]
    for r in pure:
        lines.append(f"{r['records']:>7}  {r['first_calls_us']:10.0f} us  {r['session_us']:13.1f} us  "
                     f"{r['fresh_us']:18.0f} us  {r['whole_state_us']:10.0f} us  {r['fresh_us'] / r['session_us']:10.0f}x")
    growth = pure[2]["session_us"] / pure[0]["session_us"]
    lines += [f"per-call cost at 100k records / at 1k (session): {growth:.2f}x (the state grew 100x)",
              f"sandbox calls/s on a 100-record state: {plain:.0f} without constraints, {checked:.0f} with "
              f"({checked / plain:.2f}x)"]
    sys.stdout.write("\n".join(lines) + "\n")
    if opts.json:
        sys.stdout.write(json.dumps({"pure": pure, "session_growth_1k_to_100k": growth,
                                     "sandbox_calls_per_s_plain": plain, "sandbox_calls_per_s_checked": checked,
                                     "sandbox_checked_over_plain": checked / plain}) + "\n")


if __name__ == "__main__":
    main()
