"""SandboxPool behaviour: calls, deltas, rollback, errors, crashes, concurrency."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import trio

from scaleenv._sandbox import CallOutcome, Limits, RecordChange, SandboxPool, apply_delta
from scaleenv._sandbox.pool import SandboxError
from tests.sandbox.domain import TOOLS, make_state


async def test_call_returns_result_and_exact_delta(pool: SandboxPool) -> None:
    await pool.open_session("s", TOOLS, make_state())
    outcome = await pool.call("s", "cancel_order", {"order_id": "o1", "reason": "late"})
    assert outcome.ok and outcome.error is None
    assert outcome.result == {"order_id": "o1", "status": "cancelled"}
    assert outcome.delta == [
        RecordChange("orders", "o1", {"status": "open", "sku": "A", "qty": 2},
                     {"status": "cancelled", "sku": "A", "qty": 2, "reason": "late"}),
        RecordChange("stock", "A", {"qty": 10}, {"qty": 12}),
    ]
    state = await pool.get_state("s")
    expected = make_state()
    apply_delta(expected, outcome.delta)
    assert state == expected == pool.shadow_state("s")


async def test_create_and_delete_deltas(pool: SandboxPool) -> None:
    await pool.open_session("s", TOOLS, make_state())
    created = await pool.call("s", "create_order", {"order_id": "o9", "sku": "B", "qty": 1})
    assert created.ok and created.result == "o9"
    assert created.delta == [
        RecordChange("orders", "o9", None, {"status": "open", "sku": "B", "qty": 1}),
        RecordChange("stock", "B", {"qty": 3}, {"qty": 2}),
    ]
    deleted = await pool.call("s", "delete_order", {"order_id": "o3"})
    assert deleted.ok and deleted.result is None
    assert deleted.delta == [RecordChange("orders", "o3", {"status": "shipped", "sku": "A", "qty": 5}, None)]
    read = await pool.call("s", "search_orders", {"status": "open"})
    assert read.ok and read.result == ["o1", "o2", "o9"] and read.delta == []


async def test_tool_error_rolls_back(pool: SandboxPool) -> None:
    await pool.open_session("s", TOOLS, make_state())
    outcome = await pool.call("s", "half_then_fail", {"order_id": "o1"})
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.kind == "tool_error" and outcome.error.message == "changed my mind"
    assert outcome.delta == []
    assert await pool.get_state("s") == make_state()
    clean = await pool.call("s", "cancel_order", {"order_id": "o5"})
    assert clean.error is not None and clean.error.kind == "tool_error" and "unknown order o5" in clean.error.message


async def test_exception_has_tool_traceback_and_rolls_back(pool: SandboxPool) -> None:
    await pool.open_session("s", TOOLS, make_state())
    outcome = await pool.call("s", "half_then_crash", {"order_id": "o1"})
    assert outcome.error is not None and outcome.error.kind == "exception"
    assert outcome.error.type == "IndexError"
    tb = outcome.error.traceback or ""
    assert 'File "<tool:half_then_crash>", line 6, in half_then_crash' in tb
    assert "return items[5]" in tb
    assert "scaleenv" not in tb  # worker frames are hidden
    assert await pool.get_state("s") == make_state()


async def test_bad_args(pool: SandboxPool) -> None:
    await pool.open_session("s", TOOLS, make_state())
    for tool, args, needle in [
        ("cancel_order", {}, "missing required parameter(s) for cancel_order: order_id"),
        ("cancel_order", {"order_id": "o1", "bogus": 1}, "unknown parameter(s) for cancel_order: bogus"),
        ("no_such_tool", {}, "unknown tool"),
        ("cancel_order", {"order_id": {1, 2}}, "not a JSON value"),
    ]:
        outcome = await pool.call("s", tool, args)
        assert outcome.error is not None and outcome.error.kind == "bad_args", (tool, args)
        assert needle in outcome.error.message


async def test_policy_rejected_tool_reports_issues(pool: SandboxPool) -> None:
    tools = {"evil": "import os\ndef evil(db):\n    return os.getcwd()\n"}
    outcome = await pool.run_once(tools, make_state(), "evil", {})
    assert outcome.error is not None and outcome.error.kind == "policy"
    assert outcome.error.issues and outcome.error.issues[0].line == 1


async def test_timeout_then_session_still_works(pool: SandboxPool) -> None:
    await pool.open_session("s", TOOLS, make_state())
    outcome = await pool.call("s", "spin", {})
    assert outcome.error is not None and outcome.error.kind == "timeout"
    ok = await pool.call("s", "cancel_order", {"order_id": "o2"})
    assert ok.ok


async def _script(pool: SandboxPool, session: str) -> list[CallOutcome]:
    calls = [
        ("cancel_order", {"order_id": "o1"}),
        ("half_then_fail", {"order_id": "o2"}),
        ("create_order", {"order_id": "x", "sku": "A", "qty": 3}),
        ("half_then_crash", {"order_id": "x"}),
        ("cancel_order", {"order_id": "o1"}),
        ("search_orders", {"status": "open"}),
        ("delete_order", {"order_id": "o3"}),
    ]
    return [await pool.call(session, tool, args) for tool, args in calls]


async def test_determinism_across_sessions_and_pools() -> None:
    runs = []
    for workers in (1, 3):
        async with SandboxPool(workers=workers) as pool:
            for name in ("a", "b"):
                await pool.open_session(name, TOOLS, make_state())
                outcomes = await _script(pool, name)
                runs.append((outcomes, await pool.get_state(name)))
    assert all(run == runs[0] for run in runs)


async def test_worker_killed_mid_call_restores_other_sessions() -> None:
    limits = Limits(timeout_s=60.0)  # only the SIGKILL below may end the spinning call
    async with SandboxPool(workers=1, limits=limits) as pool:
        await pool.open_session("victim", TOOLS, make_state())
        await pool.open_session("bystander", TOOLS, make_state())
        done = await pool.call("bystander", "cancel_order", {"order_id": "o1"})
        assert done.ok
        expected = await pool.get_state("bystander")
        [pid] = pool.worker_pids()
        results: dict[str, CallOutcome] = {}

        async def run(session: str, tool: str, args: dict[str, str]) -> None:
            results[session] = await pool.call(session, tool, args)

        proc = await pool._slots[0].current()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "victim", "spin", {})
            before = _cpu_ticks(pid)
            while _cpu_ticks(pid) < before + 5:  # the worker burns CPU: spin is running
                await trio.sleep(0.01)
            nursery.start_soon(run, "bystander", "cancel_order", {"order_id": "o2"})  # queued behind spin
            while len(proc._pending) < 2:  # the bystander's call is written behind it
                await trio.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
        victim = results["victim"].error
        assert victim is not None and victim.kind == "crashed"
        assert results["bystander"].ok  # retried on the replacement worker
        assert pool.worker_pids() != [pid] and pool.restarts() == 1
        expected["orders"]["o2"]["status"] = "cancelled"
        expected["orders"]["o2"]["reason"] = "none"
        expected["stock"]["B"]["qty"] += 1
        assert await pool.get_state("bystander") == expected
        assert await pool.get_state("victim") == make_state()


async def test_closing_while_a_replacement_worker_starts_does_not_hang(tmp_path: Path) -> None:
    """A worker dies (a timeout kill under a loaded machine, say) and the pool is closed
    while its replacement is still starting: the replacement must be closed as well, or
    closing waits on it forever. (Limits with a long timeout: the pool's own kill-on-close
    deadline must not be what ends it.)"""
    slow, started = tmp_path / "slow", tmp_path / "started"
    python = tmp_path / "python"
    python.write_text(
        f"#!{sys.executable}\nimport os, sys, time\n"
        f"if os.path.exists({str(slow)!r}):\n"
        f"    open({str(started)!r}, 'w').close()\n"
        "    time.sleep(1)\n"
        f"os.execv({sys.executable!r}, [{sys.executable!r}, *sys.argv[1:]])\n")
    python.chmod(0o755)
    closed = False
    with trio.move_on_after(60):  # a bound on the hang, not a timing assertion
        async with SandboxPool(workers=1, limits=Limits(timeout_s=600.0), python=str(python)) as pool:
            [pid] = pool.worker_pids()
            slow.touch()
            os.kill(pid, signal.SIGKILL)
            while not started.exists():  # the replacement is starting: close the pool now
                await trio.sleep(0.01)
        closed = True
    assert closed, "closing the pool hung on a replacement worker started while it closed"
    assert pool.restarts() == 1


async def test_hard_timeout_kill_restores_sessions() -> None:
    # sum(range(...)) loops in C without checking signals, so the in-worker alarm cannot
    # interrupt it: the parent's watchdog must kill the worker.
    tools = {"slow": "def slow(db):\n    return sum(range(10 ** 13))\n", **TOOLS}
    async with SandboxPool(workers=1, limits=Limits(timeout_s=0.2, kill_grace_s=0.3)) as pool:
        await pool.open_session("a", tools, make_state())
        await pool.open_session("b", tools, make_state())
        assert (await pool.call("b", "cancel_order", {"order_id": "o1"})).ok
        before = await pool.get_state("b")
        outcome = await pool.call("a", "slow", {})
        assert outcome.error is not None and outcome.error.kind == "timeout"
        assert pool.restarts() == 1
        assert await pool.get_state("b") == before


async def test_many_concurrent_sessions(pool: SandboxPool) -> None:
    n = 1000
    outcomes: dict[int, tuple[CallOutcome, CallOutcome]] = {}

    async def one(i: int) -> None:
        session = f"s{i}"
        await pool.open_session(session, TOOLS, make_state())
        first = await pool.call(session, "cancel_order", {"order_id": "o1" if i % 2 else "o2"})
        second = await pool.call(session, "cancel_order", {"order_id": "o3"})
        outcomes[i] = (first, second)
        if i % 3 == 0:
            await pool.close_session(session)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    assert len(outcomes) == n
    for i, (first, second) in outcomes.items():
        assert first.ok and first.result == {"order_id": "o1" if i % 2 else "o2", "status": "cancelled"}
        assert second.error is not None and second.error.kind == "tool_error"
    state = await pool.get_state("s1")
    assert state["orders"]["o1"]["status"] == "cancelled" and state["stock"]["A"]["qty"] == 12


def _cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process, in clock ticks (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _fake_python(tmp_path: Path, body: str) -> str:
    """An executable the pool runs instead of Python: ``body`` in sh, then the real Python."""
    path = tmp_path / "python"
    path.write_text(f"#!/bin/sh\n{body}\nexec {sys.executable} \"$@\"\n")
    path.chmod(0o755)
    return str(path)


async def test_workers_killed_while_starting_are_started_again(tmp_path: Path) -> None:
    # The first five starts are SIGKILLed before the handshake (as by someone else's kill):
    # more than the three own failures the pool allows, so only the cause-driven retry passes.
    counter = tmp_path / "starts"
    python = _fake_python(tmp_path, f'echo x >> {counter}; [ "$(wc -l < {counter})" -le 5 ] && kill -9 $$')
    async with SandboxPool(workers=1, limits=Limits(timeout_s=0.5, kill_grace_s=0.5), python=python) as p:
        await p.open_session("s", TOOLS, make_state())
        assert (await p.call("s", "cancel_order", {"order_id": "o1", "reason": "late"})).ok
    assert len(counter.read_text().splitlines()) == 6


async def test_a_worker_that_fails_on_its_own_is_given_up_with_its_status(tmp_path: Path) -> None:
    counter = tmp_path / "starts"
    python = _fake_python(tmp_path, f"echo x >> {counter}; exit 3")
    try:
        async with SandboxPool(workers=1, limits=Limits(timeout_s=0.5, kill_grace_s=0.5), python=python):
            raise AssertionError("the pool started")
    except* SandboxError as group:
        [exc] = group.exceptions
        assert "status 3" in str(exc) and "3 failed starts" in str(exc)
    assert len(counter.read_text().splitlines()) == 3


async def test_a_worker_that_crashes_on_a_signal_of_its_own_is_given_up(tmp_path: Path) -> None:
    # SIGSEGV (unlike SIGKILL) is the worker's own doing: it would crash again, so it
    # counts against the three own failures instead of the budget for outside kills.
    counter = tmp_path / "starts"
    python = _fake_python(tmp_path, f"echo x >> {counter}; kill -SEGV $$")
    try:
        async with SandboxPool(workers=1, limits=Limits(timeout_s=0.5, kill_grace_s=0.5), python=python):
            raise AssertionError("the pool started")
    except* SandboxError as group:
        [exc] = group.exceptions
        assert "signal 11" in str(exc) and "3 failed starts" in str(exc)
    assert len(counter.read_text().splitlines()) == 3


async def test_a_session_reloaded_after_a_kill_has_its_state_changed_or_not() -> None:
    """A replacement worker loads each session from the parent's shadow: an unchanged one
    from the bytes its open encoded, a changed one from the state with its deltas."""
    async with SandboxPool(workers=1, limits=Limits(timeout_s=30.0)) as pool:
        await pool.open_session("unchanged", TOOLS, make_state())
        await pool.open_session("changed", TOOLS, make_state())
        first = await pool.call("changed", "cancel_order", {"order_id": "o1"})
        assert first.ok and first.delta
        assert (await pool.call("unchanged", "cancel_order", {"order_id": "nope"})).delta == []
        [pid] = pool.worker_pids()
        os.kill(pid, signal.SIGKILL)
        while pool.worker_pids() == [pid] or pool.worker_pids() == [-1]:
            await trio.sleep(0.01)
        for session in ("unchanged", "changed"):
            again = await pool.call(session, "cancel_order", {"order_id": "o2"})
            assert again.ok, again.error
        expected = make_state()
        apply_delta(expected, first.delta)
        apply_delta(expected, again.delta)
        assert await pool.get_state("changed") == expected == pool.shadow_state("changed")
        alone = make_state()
        apply_delta(alone, again.delta)
        assert await pool.get_state("unchanged") == alone == pool.shadow_state("unchanged")
