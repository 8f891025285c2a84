"""A small hand-written domain used by tests across the suite (independent of the sim)."""

from __future__ import annotations

from scaleenv._store.specs import Condition, DomainSpec, FieldSpec, ParamSpec, TableSpec, ToolSpec

C = Condition

SHOP = DomainSpec(
    name="shop",
    description="A small web shop.",
    tables=[
        TableSpec(name="customers", description="people who buy", primary_key="customer_id", fields=[
            FieldSpec(name="customer_id", type="str"),
            FieldSpec(name="name", type="str"),
            FieldSpec(name="email", type="str"),
            FieldSpec(name="balance", type="float"),
        ]),
        TableSpec(name="products", description="what is sold", primary_key="product_id", fields=[
            FieldSpec(name="product_id", type="str"),
            FieldSpec(name="title", type="str"),
            FieldSpec(name="price", type="float"),
            FieldSpec(name="stock", type="int"),
        ]),
        TableSpec(name="orders", description="orders", primary_key="order_id", fields=[
            FieldSpec(name="order_id", type="str"),
            FieldSpec(name="customer_id", type="str", ref="customers"),
            FieldSpec(name="product_id", type="str", ref="products"),
            FieldSpec(name="quantity", type="int"),
            FieldSpec(name="total", type="float"),
            FieldSpec(name="status", type="str", enum=["pending", "processing", "shipped", "cancelled"]),
        ]),
    ],
    tools=[
        ToolSpec(
            name="find_customer_by_email", description="Find a customer's id from their email.",
            params=[ParamSpec(name="email", type="str", description="the customer's email")],
            returns=[FieldSpec(name="customer_id", type="str"), FieldSpec(name="name", type="str")],
            reads=["customers"], writes=[], mutates=False,
            contract=[C(when="pre", op="some_eq", left="customers[*].email", right="$email")],
        ),
        ToolSpec(
            name="list_customer_orders", description="List a customer's orders.",
            params=[ParamSpec(name="customer_id", type="str", description="customer id", ref="customers")],
            returns=[FieldSpec(name="order_id", type="str"), FieldSpec(name="status", type="str"),
                     FieldSpec(name="product_id", type="str"), FieldSpec(name="total", type="float")],
            returns_list=True, reads=["orders"], writes=[], mutates=False,
            contract=[C(when="pre", op="exists", left="customers[$customer_id]")],
        ),
        ToolSpec(
            name="cancel_order", description="Cancel a pending or processing order and refund it.",
            params=[ParamSpec(name="order_id", type="str", description="order id", ref="orders")],
            returns=[FieldSpec(name="order_id", type="str"), FieldSpec(name="status", type="str")],
            reads=["orders", "customers"], writes=["orders", "customers"], mutates=True,
            contract=[
                C(when="pre", op="exists", left="orders[$order_id]"),
                C(when="pre", op="in", left="orders[$order_id].status", right=["pending", "processing"]),
                C(when="post", op="eq", left="orders[$order_id].status", right='"cancelled"'),
                C(when="post", op="increases_by", left="customers[orders[$order_id].customer_id].balance",
                  right="orders[$order_id].total"),
            ],
        ),
        ToolSpec(
            name="create_order", description="Order a quantity of a product for a customer.",
            params=[
                ParamSpec(name="customer_id", type="str", description="customer id", ref="customers"),
                ParamSpec(name="product_id", type="str", description="product id", ref="products"),
                ParamSpec(name="quantity", type="int", description="how many"),
            ],
            returns=[FieldSpec(name="order_id", type="str"), FieldSpec(name="total", type="float")],
            reads=["customers", "products"], writes=["orders", "products"], mutates=True,
            contract=[
                C(when="pre", op="exists", left="customers[$customer_id]"),
                C(when="pre", op="exists", left="products[$product_id]"),
                C(when="pre", op="gt", left="$quantity", right="0"),
                C(when="pre", op="ge", left="products[$product_id].stock", right="$quantity"),
                C(when="post", op="decreases_by", left="products[$product_id].stock", right="$quantity"),
                C(when="post", op="exists", left="orders[$result.order_id]"),
                C(when="post", op="eq", left="orders[$result.order_id].status", right='"pending"'),
                C(when="post", op="eq", left="orders[$result.order_id].customer_id", right="$customer_id"),
            ],
        ),
    ],
)

CODE = {
    "find_customer_by_email": '''
def find_customer_by_email(db, email):
    for key, c in sorted(db["customers"].items()):
        if c["email"] == email:
            return {"customer_id": key, "name": c["name"]}
    raise ToolError("no customer with email " + str(email))
''',
    "list_customer_orders": '''
def list_customer_orders(db, customer_id):
    if customer_id not in db["customers"]:
        raise ToolError("unknown customer " + str(customer_id))
    out = []
    for key, o in sorted(db["orders"].items()):
        if o["customer_id"] == customer_id:
            out.append({"order_id": key, "status": o["status"], "product_id": o["product_id"], "total": o["total"]})
    return out
''',
    "cancel_order": '''
def cancel_order(db, order_id):
    if order_id not in db["orders"]:
        raise ToolError("unknown order " + str(order_id))
    order = db["orders"][order_id]
    if order["status"] not in ["pending", "processing"]:
        raise ToolError("order " + order_id + " is " + order["status"] + " and cannot be cancelled")
    order["status"] = "cancelled"
    customer = db["customers"][order["customer_id"]]
    customer["balance"] = customer["balance"] + order["total"]
    return {"order_id": order_id, "status": "cancelled"}
''',
    "create_order": '''
def create_order(db, customer_id, product_id, quantity):
    if customer_id not in db["customers"]:
        raise ToolError("unknown customer " + str(customer_id))
    if product_id not in db["products"]:
        raise ToolError("unknown product " + str(product_id))
    if quantity <= 0:
        raise ToolError("quantity must be positive")
    product = db["products"][product_id]
    if product["stock"] < quantity:
        raise ToolError("not enough stock")
    product["stock"] = product["stock"] - quantity
    order_id = "ord_" + str(len(db["orders"]) + 1).zfill(4)
    while order_id in db["orders"]:
        order_id = order_id + "x"
    total = round(product["price"] * quantity, 2)
    db["orders"][order_id] = {"order_id": order_id, "customer_id": customer_id, "product_id": product_id,
                              "quantity": quantity, "total": total, "status": "pending"}
    return {"order_id": order_id, "total": total}
''',
}
