"""Tool sets cross the pipe once per worker: later sessions name them by digest."""

from __future__ import annotations

import os
import signal


from scaleenv._sandbox import SandboxPool
from scaleenv._sandbox.protocol import OpenReq
from scaleenv._sandbox.process import WorkerProcess
from tests.sandbox.domain import TOOLS, make_state


def _record_opens(monkeypatch) -> list[OpenReq]:  # type: ignore[no-untyped-def]
    """Every OpenReq the pool sends, as sent (the real request path still runs)."""
    sent: list[OpenReq] = []
    real = WorkerProcess.request

    async def request(self, make, **kw):  # type: ignore[no-untyped-def]
        def tap(i: int):  # type: ignore[no-untyped-def]
            req = make(i)
            if isinstance(req, OpenReq):
                sent.append(req)
            return req
        return await real(self, tap, **kw)

    monkeypatch.setattr(WorkerProcess, "request", request)
    return sent


async def test_a_tool_set_is_sent_once_per_worker(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sent = _record_opens(monkeypatch)
    async with SandboxPool(workers=1) as pool:
        for k in range(3):
            await pool.open_session(f"s{k}", TOOLS, make_state())
        other = {"ping": "def ping(db):\n    return 'pong'\n"}
        await pool.open_session("other", other, make_state())
        assert [r.tools is not None for r in sent] == [True, False, False, True]
        assert len({r.code_id for r in sent[:3]}) == 1 and sent[3].code_id != sent[0].code_id
        for k in range(3):  # the sessions opened by name run the same code
            out = await pool.call(f"s{k}", "cancel_order", {"order_id": "o1", "reason": "late"})
            assert out.ok, out
        assert (await pool.call("other", "ping", {})).result == "pong"


async def test_a_replacement_worker_is_sent_the_code_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sent = _record_opens(monkeypatch)
    async with SandboxPool(workers=1) as pool:
        await pool.open_session("a", TOOLS, make_state())
        first = await pool._slots[0].current()
        os.kill(first.pid, signal.SIGKILL)
        await first.died.wait()
        await pool.open_session("b", TOOLS, make_state())  # waits for the replacement
        assert pool.worker_pids()[0] != first.pid
        assert [(r.session, r.tools is not None) for r in sent] == [("a", True), ("b", True)]
        out = await pool.call("a", "cancel_order", {"order_id": "o1", "reason": "late"})
        assert out.ok, out  # "a" is loaded into the replacement from its shadow when used...
        assert [(r.session, r.tools is not None) for r in sent][2:] == [("a", False)]  # ...code by reference
        out = await pool.call("b", "cancel_order", {"order_id": "o1", "reason": "late"})
        assert out.ok, out
        assert len(sent) == 3


async def test_a_restart_reloads_only_the_sessions_used_afterwards(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sent = _record_opens(monkeypatch)
    async with SandboxPool(workers=1) as pool:
        for k in range(20):
            await pool.open_session(f"s{k}", TOOLS, make_state())
        assert (await pool.call("s3", "cancel_order", {"order_id": "o1", "reason": "late"})).ok
        first = await pool._slots[0].current()
        os.kill(first.pid, signal.SIGKILL)
        await first.died.wait()
        assert (await pool.get_state("s3"))["orders"]["o1"]["status"] == "cancelled"  # from the shadow
        out = await pool.call("s3", "cancel_order", {"order_id": "o2", "reason": "late"})
        assert out.ok, out
        assert len(sent) == 21 and sent[-1].session == "s3"
        state = await pool.get_state("s3")
        assert state["orders"]["o1"]["status"] == state["orders"]["o2"]["status"] == "cancelled"


async def test_a_worker_that_lost_a_tool_set_gets_it_again() -> None:
    async with SandboxPool(workers=1) as pool:
        await pool.open_session("a", TOOLS, make_state())
        slot_proc = await pool._slots[0].current()
        slot_proc.code_ids.add("not-a-set-this-worker-was-sent")
        changed = dict(TOOLS)
        pool._code_ids[tuple(changed.items())] = "not-a-set-this-worker-was-sent"
        # The pool believes the worker holds the set; the worker says it does not; the pool
        # sends it in full and the session opens.
        await pool.open_session("b", changed, make_state())
        out = await pool.call("b", "cancel_order", {"order_id": "o1", "reason": "late"})
        assert out.ok, out


async def test_has_session_follows_open_and_close() -> None:
    async with SandboxPool(workers=1) as pool:
        assert not pool.has_session("a")
        await pool.open_session("a", TOOLS, make_state())
        assert pool.has_session("a")
        await pool.close_session("a")
        assert not pool.has_session("a")
