"""A small order-management domain used by the sandbox tests and bench."""

from __future__ import annotations

from typing import Any

TOOLS: dict[str, str] = {
    "cancel_order": '''
def cancel_order(db, order_id, reason="none"):
    """Cancel an open order."""
    order = db["orders"].get(order_id)
    if order is None:
        raise ToolError(f"unknown order {order_id}")
    if order["status"] != "open":
        raise ToolError(f"order {order_id} is {order['status']}")
    order["status"] = "cancelled"
    order["reason"] = reason
    db["stock"][order["sku"]]["qty"] += order["qty"]
    return {"order_id": order_id, "status": "cancelled"}
''',
    "create_order": '''
def create_order(db, order_id, sku, qty):
    if order_id in db["orders"]:
        raise ToolError("duplicate order")
    db["orders"][order_id] = {"status": "open", "sku": sku, "qty": qty}
    db["stock"][sku]["qty"] -= qty
    return order_id
''',
    "delete_order": '''
def delete_order(db, order_id):
    del db["orders"][order_id]
    return None
''',
    "search_orders": '''
def search_orders(db, status):
    return sorted(k for k, o in db["orders"].items() if o["status"] == status)
''',
    "half_then_fail": '''
def half_then_fail(db, order_id):
    db["orders"][order_id]["status"] = "corrupted"
    db["orders"]["ghost"] = {"status": "ghost"}
    db["stock"]["A"]["qty"] = -1
    raise ToolError("changed my mind")
''',
    "half_then_crash": '''
def half_then_crash(db, order_id):
    db["orders"][order_id]["status"] = "corrupted"
    del db["stock"]["A"]
    items = [1, 2]
    return items[5]
''',
    "spin": '''
def spin(db):
    n = 0
    while True:
        n = n + 1
''',
}


def make_state() -> dict[str, dict[str, dict[str, Any]]]:
    """A fresh small database."""
    return {
        "orders": {
            "o1": {"status": "open", "sku": "A", "qty": 2},
            "o2": {"status": "open", "sku": "B", "qty": 1},
            "o3": {"status": "shipped", "sku": "A", "qty": 5},
        },
        "stock": {"A": {"qty": 10}, "B": {"qty": 3}},
    }
