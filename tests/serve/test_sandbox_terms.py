"""Served episodes open their sandbox session as the engine does: the domain's integrity
constraints and the task's clock (recorded in the log, reproduced by replay --verify)."""

from __future__ import annotations

from pathlib import Path

import trio

from scaleenv._replay.projection import fold
from scaleenv._replay.verify import verify_log
from scaleenv._sandbox import task_clock
from scaleenv._serve.environments import open_environments
from scaleenv._store.events.episodes import ToolExecuted
from scaleenv._store.log import Log
from scaleenv._store.specs import FieldSpec, ParamSpec, ToolSpec
from tests.replay.shoplog import build_shop_log
from tests.replay.test_verify import STAMP, STAMP_CODE

from .conftest import OPTIONS

REASSIGN = ToolSpec(name="reassign_order", description="Move an order to another customer (unchecked).",
                    params=[ParamSpec(name="order_id", type="str", description="order id", ref="orders"),
                            ParamSpec(name="customer_id", type="str", description="customer id")],
                    returns=[FieldSpec(name="order_id", type="str")], reads=["orders"], writes=["orders"], mutates=True)
REASSIGN_CODE = '''
def reassign_order(db, order_id, customer_id):
    db["orders"][order_id]["customer_id"] = customer_id
    return {"order_id": order_id}
'''


def test_a_served_episode_records_the_task_clock_and_fails_calls_that_break_integrity(tmp_path: Path) -> None:
    path = tmp_path / "shop.lmdb"
    build_shop_log(path, extra=((STAMP, STAMP_CODE), (REASSIGN, REASSIGN_CODE)))
    with Log.open(path) as lg:
        lg.meta_set("run_config", {"seed": 3})

    async def serve() -> dict[str, object]:
        async with open_environments(str(path), OPTIONS) as envs:
            opened = await envs.open_episode("d00/t000")
            eid = opened["episode_id"]
            await envs.call_tool(eid, "list_customer_orders", {"customer_id": "c1"})
            await envs.call_tool(eid, "add_note", {"order_id": "ord_0002"})
            await envs.call_tool(eid, "reassign_order", {"order_id": "ord_0001", "customer_id": "c404"})
            await envs.call_tool(eid, "reassign_order", {"order_id": "ord_0001", "customer_id": "c2"})
            return await envs.end(eid)

    trio.run(serve)
    with Log.open(path, readonly=True) as lg:
        calls = [r.event for r in lg.read_stream("episode/d00/t000/s0") if isinstance(r.event, ToolExecuted)]
        view = fold(lg.read())
        report = trio.run(lambda: verify_log(lg, workers=1))
    clock = task_clock(3, "d00/t000")
    assert [(c.tool, c.ok, c.error_kind, c.clock) for c in calls] == [
        ("list_customer_orders", True, None, None),
        ("add_note", True, None, clock.reading(1)),
        ("reassign_order", False, "integrity", None),
        ("reassign_order", True, None, None),
    ]
    assert calls[1].result == {"noted_at": clock.reading(1)}
    assert calls[2].error == ("reassign_order broke 1 integrity constraint: "
                              "orders[ord_0001].customer_id = 'c404' points at no record of customers")
    assert view.episodes["d00/t000/s0"].env_failures == 1
    assert report.divergences == [] and report.errors == [] and report.by_kind["episode"] >= 4
