"""A tiny episode loop driving the sim user and policy over tests/shop.py (test-only).

The shop's hand-written tool code is trusted test fixture code, so it runs with plain
``exec`` here; the engine runs synthesized code in its sandbox instead.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import attrs
import msgspec

from scaleenv._agents.sim.backend import NoiseModel, SimCall
from scaleenv._agents.sim import policy as sim_policy, user as sim_user
from scaleenv._agents.rollout.answers import PolicyTurn, UserTurn
from scaleenv._model.dbgen import ADJ, NOUNS, generate_state
from scaleenv._seeding import derive_seed
from scaleenv._store.specs import DomainSpec, FieldSpec, ParamSpec, ToolSpec
from tests.shop import CODE as SHOP_CODE
from tests.shop import SHOP

# The shop plus a product lookup, so an order can be told apart by its product's title.
GET_PRODUCT = ToolSpec(
    name="get_product", description="Look up a product by its id.",
    params=[ParamSpec(name="product_id", type="str", description="product id", ref="products")],
    returns=[FieldSpec(name="product_id", type="str"), FieldSpec(name="title", type="str"),
             FieldSpec(name="price", type="float")],
    reads=["products"], writes=[], mutates=False,
)
DOMAIN = DomainSpec(name=SHOP.name, description=SHOP.description, tables=SHOP.tables, tools=[*SHOP.tools, GET_PRODUCT])
CODE = {**SHOP_CODE, "get_product": '''
def get_product(db, product_id):
    if product_id not in db["products"]:
        raise ToolError("unknown product " + str(product_id))
    p = db["products"][product_id]
    return {"product_id": product_id, "title": p["title"], "price": p["price"]}
'''}

JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list[str]": "array"}


def tool_schemas(domain: DomainSpec) -> list[dict[str, Any]]:
    """OpenAI function schemas with the "Returns:" convention in the description."""
    out = []
    for t in domain.tools:
        fields = ", ".join(f.name for f in t.returns)
        returns = f"Returns a list of: {fields}." if t.returns_list else f"Returns: {fields}."
        out.append({"type": "function", "function": {
            "name": t.name,
            "description": f"{t.description} {returns}",
            "parameters": {
                "type": "object",
                "properties": {p.name: {"type": JSON_TYPES[p.type], "description": p.description} for p in t.params},
                "required": [p.name for p in t.params if p.required],
            },
        }})
    return out


class ToolError(Exception):
    pass


def execute(db: dict, name: str, raw_args: str) -> Any:
    """Run one call like the engine would: JSON errors and tool errors come back as {"error": ...}."""
    if name not in CODE:
        return {"error": f"unknown tool {name!r}"}
    try:
        args = json.loads(raw_args) if raw_args.strip() else {}
    except json.JSONDecodeError as exc:
        return {"error": f"arguments are not valid JSON: {exc}"}
    if not isinstance(args, dict):
        return {"error": "arguments must be a JSON object"}
    scope: dict = {"ToolError": ToolError}
    exec(CODE[name], scope)  # noqa: S102 - trusted test fixture
    work = copy.deepcopy(db)
    try:
        result = scope[name](work, **args)
    except ToolError as exc:
        return {"error": str(exc)}
    except TypeError as exc:
        return {"error": f"bad arguments: {exc}"}
    except Exception as exc:  # noqa: BLE001 - a wrong-typed argument crashing the tool
        return {"error": f"{type(exc).__name__}: {exc}"}
    db.clear()
    db.update(work)
    return result


@attrs.define
class Task:
    db: dict
    expected: dict
    instruction: str
    user_facts: dict[str, Any]
    target: str
    requests: list[str] = attrs.field(factory=list)
    request_facts: list[dict[str, Any]] = attrs.field(factory=list)


def make_task(rng: random.Random, style: str = "plain") -> Task:
    """Cancel one order of a customer who has look-alike orders (other products, other states)."""
    db = generate_state(DOMAIN, rng, rows=6)
    titles = rng.sample([f"{a} {n}" for a in ADJ for n in NOUNS], len(db["products"]))
    for p, title in zip(sorted(db["products"]), titles):
        db["products"][p]["title"] = title
    cust = rng.choice(sorted(db["customers"]))
    products = rng.sample(sorted(db["products"]), 4)
    for k in [o for o, r in db["orders"].items() if r["customer_id"] == cust]:
        del db["orders"][k]
    orders = []
    for i, p in enumerate(products):
        key = f"orde_{rng.randrange(16**4):04x}"
        status = rng.choice(["pending", "processing"]) if i == 0 else rng.choice(["pending", "processing", "shipped", "cancelled"])
        qty = rng.randint(1, 3)
        db["orders"][key] = {"order_id": key, "customer_id": cust, "product_id": p, "quantity": qty,
                             "total": round(db["products"][p]["price"] * qty, 2), "status": status}
        orders.append(key)
    target = orders[0]
    title = db["products"][products[0]]["title"]
    expected = copy.deepcopy(db)
    expected["orders"][target]["status"] = "cancelled"
    c = expected["customers"][cust]
    c["balance"] = c["balance"] + expected["orders"][target]["total"]
    instruction = rng.choice([
        f"Cancel my order for the {title}.",
        f"I want to cancel the order I placed for the {title}.",
        f"Please cancel my {title} order, I don't need it anymore.",
    ])
    facts = {"email": db["customers"][cust]["email"], "product_title": title}
    if style == "brief":  # the way the task writer writes it: a brief for the simulated user
        listed = "; ".join(f"your {k.replace('_', ' ')} is {v}" for k, v in sorted(facts.items()))
        instruction = (f"You are a busy professional with little time. {instruction} Things you know and can share "
                       f"when asked: {listed}. Do not volunteer everything at once; answer what the assistant asks. "
                       "Keep it short; you want this done quickly.")
    return Task(db=db, expected=expected, instruction=instruction,
                user_facts={"email": db["customers"][cust]["email"], "product_title": title}, target=target)


def make_two_goal_task(rng: random.Random) -> Task:
    """Cancel two orders of one customer, one request after the other (the second raised once
    the first is settled), among look-alike orders."""
    task = make_task(rng)
    db = task.db
    cust = db["orders"][task.target]["customer_id"]
    others = [o for o, r in sorted(db["orders"].items())
              if r["customer_id"] == cust and o != task.target and r["status"] in ("pending", "processing")]
    if not others:  # make one of the look-alikes cancellable
        others = [o for o, r in sorted(db["orders"].items()) if r["customer_id"] == cust and o != task.target]
        db["orders"][others[0]]["status"] = "pending"
    second = others[0]
    titles = [db["products"][db["orders"][k]["product_id"]]["title"] for k in (task.target, second)]
    expected = copy.deepcopy(db)
    for k in (task.target, second):
        expected["orders"][k]["status"] = "cancelled"
        expected["customers"][cust]["balance"] += expected["orders"][k]["total"]
    email = db["customers"][cust]["email"]
    requests = [f"Cancel my order for the {titles[0]}.", f"Also, please cancel my {titles[1]} order."]
    facts = [{"email": email, "product_title": titles[0]}, {"email": email, "product_title": titles[1]}]
    return Task(db=db, expected=expected, instruction=" ".join(requests), user_facts=facts[0], target=task.target,
                requests=requests, request_facts=facts)


def sim_call(role: str, context: dict, seed: int, noise: NoiseModel, output: type) -> SimCall:
    schema = msgspec.json.schema(output)
    return SimCall(role=role, context=context, schema=schema, schema_name=output.__name__, messages=[],
                   tools=context.get("tools"), attempt=0, rng=random.Random(seed), noise=noise)


@attrs.define
class Episode:
    task: Task
    outcome: str  # "done", "gave_up", "limit"
    success: bool
    chat: list[dict]
    visible: list[dict]
    user_turns: list[dict]
    policy_turns: list[dict]


def run_episode(seed: int, noise: NoiseModel, *, max_turns: int = 10, max_steps: int = 8, style: str = "plain",
                goals: int = 1) -> Episode:
    rng = random.Random(derive_seed(seed, "task"))
    task = make_task(rng, style) if goals == 1 else make_two_goal_task(rng)
    db = copy.deepcopy(task.db)
    tools = tool_schemas(DOMAIN)
    chat: list[dict] = [{"role": "system", "content": "You are the support agent of a small web shop. Use the tools."}]
    visible: list[dict] = []
    user_turns: list[dict] = []
    policy_turns: list[dict] = []
    n = 0

    def user(turn: int) -> UserTurn:
        nonlocal n
        n += 1
        ctx = {"instruction": task.instruction, "user_facts": task.user_facts, "persona": "",
               "requests": task.requests, "request_facts": task.request_facts,
               "conversation": copy.deepcopy(visible), "turn": turn, "max_turns": max_turns}
        value = sim_user.simulate_user(sim_call("user", ctx, derive_seed(seed, "user", n), noise, UserTurn))
        user_turns.append(value)
        return msgspec.convert(value, UserTurn)

    def policy(turn: int) -> PolicyTurn:
        nonlocal n
        n += 1
        ctx = {"conversation": copy.deepcopy(chat), "tools": tools, "turn": turn}
        value = sim_policy.simulate_policy(sim_call("policy", ctx, derive_seed(seed, "policy", n), noise, PolicyTurn))
        policy_turns.append(value)
        return msgspec.convert(value, PolicyTurn)

    u = user(0)
    outcome = "limit"
    for turn in range(1, max_turns + 1):
        visible.append({"role": "user", "content": u.message})
        chat.append({"role": "user", "content": u.message})
        if u.done or u.gave_up:
            outcome = "done" if u.done else "gave_up"
            break
        content = ""
        for _ in range(max_steps):
            p = policy(turn)
            msg: dict[str, Any] = {"role": "assistant", "content": p.content}
            if p.tool_calls:
                msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                     for c in p.tool_calls]
            chat.append(msg)
            if not p.tool_calls:
                content = p.content
                break
            for c in p.tool_calls:
                result = execute(db, c.name, c.arguments)
                chat.append({"role": "tool", "tool_call_id": c.id, "content": json.dumps(result, sort_keys=True)})
        visible.append({"role": "assistant", "content": content})
        u = user(turn)
    else:
        visible.append({"role": "user", "content": u.message})
        if u.done or u.gave_up:
            outcome = "done" if u.done else "gave_up"
    success = outcome == "done" and db == task.expected
    return Episode(task=task, outcome=outcome, success=success, chat=chat, visible=visible,
                   user_turns=user_turns, policy_turns=policy_turns)


def success_rate(noise: NoiseModel, seeds: range, style: str = "plain", goals: int = 1) -> float:
    return sum(run_episode(s, noise, style=style, goals=goals, max_turns=10 * goals).success for s in seeds) / len(seeds)
