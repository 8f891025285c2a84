"""`scaleenv replay --verify`: re-executes recorded tool calls; catches nondeterminism and tampering."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import trio

from scaleenv._replay.logcopy import copy_log
from scaleenv._replay.verify import verify_log
from scaleenv._store.events.episodes import ToolExecuted
from scaleenv._store.events import synth
from scaleenv._store.log import Log
from scaleenv._store.record import Record
from scaleenv._sandbox import SandboxPool, task_clock
from scaleenv._store.specs import FieldSpec, ParamSpec, ToolSpec
from tests.replay.shoplog import TEST_CLOCK, build_shop_log, tamper


def _verify(path: Path):
    with Log.open(path, readonly=True) as lg:
        return trio.run(lambda: verify_log(lg, workers=2))


def test_sim_run_verifies_clean(golden_run: Path) -> None:
    report = _verify(golden_run)
    assert report.divergences == [] and report.errors == []
    assert report.by_kind.get("tests", 0) > 0 and report.by_kind.get("golden", 0) > 0


def test_tests_are_verified_against_the_cases_the_debug_role_repaired(template: Path) -> None:
    """A TestsRun after a TestCasesRepaired ran the repaired cases: verify re-runs those."""
    with Log.open(template, readonly=True) as lg:
        assert any(isinstance(r.event, synth.TestCasesRepaired) for r in lg.read())
    report = _verify(template)
    assert report.divergences == [] and report.errors == []


def test_shop_run_verifies_clean_including_episode_calls(shop_run: Path, cli) -> None:
    code, out, _ = cli("replay", "--log", shop_run, "--verify", "--json")
    got = json.loads(out)
    assert code == 0 and got["divergences"] == 0 and got["ok"]
    assert got["by_kind"] == {"episode": 5, "golden": 3} and got["checked"] == 8


def test_a_nondeterministic_tool_is_caught(tmp_path: Path) -> None:
    """whoami reads a clock (a test-only sandbox builtin): re-executing it gives another answer."""
    path = tmp_path / "nd.lmdb"
    build_shop_log(path, nondeterministic=True)

    async def main():
        async with SandboxPool(workers=1, limits=TEST_CLOCK) as pool:
            with Log.open(path, readonly=True) as lg:
                return await verify_log(lg, pool=pool)

    report = trio.run(main)
    got = json.loads(msgspec.json.encode(report.to_json()))
    assert got["divergences"] == 1
    d = got["divergence_list"][0]
    with Log.open(path, readonly=True) as lg:
        whoami = next(r for r in lg.read_stream(d["stream"]) if isinstance(r.event, ToolExecuted) and r.event.tool == "whoami")
    assert (d["stream"], d["n"], d["tool"], d["fields"]) == ("episode/d00/t000/g0", whoami.n, "whoami", ["result"])
    assert d["expected"]["result"] != d["got"]["result"]


def test_a_tampered_tool_result_is_named_by_stream_and_step(shop_run: Path, tmp_path: Path, cli) -> None:
    dest = tmp_path / "tampered.lmdb"
    target = tamper(shop_run, dest, lambda r: isinstance(r.event, ToolExecuted) and r.event.tool == "list_customer_orders",
                     result=[])
    code, out, _ = cli("replay", "--log", dest, "--verify", "--json")
    got = json.loads(out)
    assert code == 1 and got["divergences"] == 1
    d = got["divergence_list"][0]
    assert (d["stream"], d["n"], d["kind"], d["tool"], d["fields"]) == (target.stream, target.n, "episode",
                                                                        "list_customer_orders", ["result"])
    assert d["expected"]["result"] == [] and d["got"]["result"][0]["order_id"] == "ord_0001"
    code, text, _ = cli("replay", "--log", dest, "--verify")
    assert code == 1 and f"Divergence in stream '{target.stream}' at n={target.n}" in text


def test_a_tampered_test_verdict_is_caught(golden_run: Path, tmp_path: Path) -> None:
    dest = tmp_path / "tampered.lmdb"

    def flip(r: Record) -> bool:
        return isinstance(r.event, synth.TestsRun)

    with Log.open(golden_run, readonly=True) as lg:
        first = next(r for r in lg.read() if flip(r))
    results = list(first.event.results)
    results[0] = msgspec.structs.replace(results[0], passed=not results[0].passed)
    target = tamper(golden_run, dest, flip, results=results)
    report = _verify(dest)
    assert [(d.stream, d.n, d.kind, d.fields) for d in report.divergences] == [(target.stream, target.n, "tests", ["passed"])]


STAMP = ToolSpec(name="add_note", description="Note something on an order, stamped with the time.",
                 params=[ParamSpec(name="order_id", type="str", description="order id", ref="orders")],
                 returns=[FieldSpec(name="noted_at", type="str")], reads=["orders"], writes=["orders"], mutates=True)
STAMP_CODE = '''
from datetime import datetime, timedelta


def add_note(db, order_id):
    order = db["orders"][order_id]
    now = datetime.now()
    order["noted_at"] = now.strftime("%Y-%m-%d %H:%M:%S")
    order["follow_up"] = (now + timedelta(days=2)).date().isoformat()
    return {"noted_at": order["noted_at"]}
'''


def test_clock_readings_are_recorded_and_reproduced(tmp_path: Path) -> None:
    """A tool that stamps records with the time: its episode calls record the task clock's
    reading, verify re-executes them on the same clock, and a changed reading or run
    seed is a divergence."""
    path = tmp_path / "stamp.lmdb"
    build_shop_log(path, extra=((STAMP, STAMP_CODE),), calls=(("add_note", {"order_id": "ord_0002"}),
                                                              ("add_note", {"order_id": "ord_0002"})))
    with Log.open(path, readonly=True) as lg:
        notes = [r for r in lg.read_stream("episode/d00/t000/g0")
                 if isinstance(r.event, ToolExecuted) and r.event.tool == "add_note"]
    clock = task_clock(0, "d00/t000")
    # The 6th and 7th calls of the episode's session (0-based 5 and 6).
    assert [r.event.clock for r in notes] == [clock.reading(5), clock.reading(6)]
    assert notes[1].event.result == {"noted_at": clock.reading(6)}
    assert _verify(path).divergences == []

    tampered = tmp_path / "tampered.lmdb"
    target = tamper(path, tampered, lambda r: r.n == notes[0].n and r.stream == notes[0].stream,
                     clock="2020-01-01 00:00:00")
    [d] = _verify(tampered).divergences
    assert (d.stream, d.n, d.kind, d.tool, d.fields) == (target.stream, target.n, "episode", "add_note", ["clock"])

    reseeded = tmp_path / "reseeded.lmdb"
    with Log.open(path, readonly=True) as lg:
        copy_log(lg, reseeded, lambda r: r)
    with Log.open(reseeded) as lg:
        lg.meta_set("run_config", {"seed": 5})
    [d] = _verify(reseeded).divergences
    assert d.n == notes[0].n and d.fields == ["result", "delta", "clock"]
