"""The sim backend: determinism per seed, noise rates, the schema-instance generator."""

from __future__ import annotations

import json
import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleenv._agents.llm.port import Llm, LlmRequest, render_messages, schema_for, validation_error
from scaleenv._agents.sim import NoiseModel, SimBackend
from scaleenv._agents.sim.schema_instance import instance
from scaleenv._seeding import derive_seed
from scaleenv._store import Log, Stream

from .structs import Pair, Person, Plan, PolicyTurn


def _request(i: int) -> LlmRequest:
    ctx = {"item": i}
    return LlmRequest(role="test/generic", messages=render_messages("Describe.", ctx, f"Describe item {i}."), context=ctx)


async def _run(tmp_path, name: str, run_seed: int) -> list[bytes]:
    """Run 12 port calls on a fresh log; the events' digest-relevant bytes."""
    path = tmp_path / name
    with Log.open(path, sync=False) as log:
        async with log.writer() as w:
            llm = Llm(SimBackend(), run_seed=run_seed)
            for i in range(12):
                s = Stream(w, f"sim/{i % 3}") if i < 3 else Stream(w, f"sim/{i}")
                for t in (Person, Plan):
                    try:
                        await llm.generate(s, _request(i), t)
                    except Exception:  # noqa: BLE001 - exhaustion is part of the record
                        pass
    with Log.open(path, readonly=True) as log:
        out = []
        for r in log.read():
            ev = msgspec.structs.replace(r.event, latency_s=0.0) if hasattr(r.event, "latency_s") else r.event
            out.append(msgspec.msgpack.encode([r.stream, r.n, r.cause, r.actor, ev]))
        return out


async def test_same_seed_same_events_different_seed_differs(tmp_path) -> None:
    a = await _run(tmp_path, "a", 5)
    b = await _run(tmp_path, "b", 5)
    c = await _run(tmp_path, "c", 6)
    assert a == b
    assert a != c


def test_answer_is_pure() -> None:
    sim = SimBackend()
    schema, name = schema_for(Person)
    msgs = _request(1).messages
    assert sim.answer(msgs, schema, name, 42) == sim.answer(msgs, schema, name, 42)
    assert sim.answer(msgs, schema, name, 42)[0] != sim.answer(msgs, schema, name, 43)[0]


def test_noise_rates_match_the_settings() -> None:
    noise = NoiseModel(malformed=0.1, schema_violation=0.2, mistakes=0.0)
    sim = SimBackend(noise=noise)
    schema, name = schema_for(Pair)
    n = 4000
    malformed = violations = 0
    for i in range(n):
        text = sim.answer(_request(i).messages, schema, name, derive_seed(3, "noise", i))[0]
        _, error = validation_error(text, Pair)
        if error is not None and error.startswith("not valid JSON"):
            malformed += 1
        elif error is not None:
            violations += 1
    # binomial sd at n=4000 is <= 0.0064; allow 4 sd
    assert abs(malformed / n - noise.malformed) < 0.025
    assert abs(violations / n - noise.schema_violation) < 0.025


def test_noise_off_always_validates() -> None:
    sim = SimBackend(noise=NoiseModel.off())
    for t in (Person, Plan, Pair, PolicyTurn):
        schema, name = schema_for(t)
        for i in range(50):
            assert validation_error(sim.answer(_request(i).messages, schema, name, i)[0], t)[1] is None


class Item(msgspec.Struct):
    sku: str
    qty: int
    price: float | None = None


class Order(msgspec.Struct):
    order_id: str
    items: list[Item]
    status: str = "open"
    meta: dict[str, str] = {}
    gift: bool | None = None


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63 - 1),
       t=st.sampled_from([Person, Plan, Pair, PolicyTurn, Order, Item, list[Item], tuple[int, str], dict[str, Order]]))
def test_schema_instances_validate(seed: int, t: type) -> None:
    schema = msgspec.json.schema(t)
    value = instance(schema, random.Random(seed))
    msgspec.json.decode(json.dumps(value), type=t)
