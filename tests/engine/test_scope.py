"""scaleenv._model.scope: what a per-tool role is shown of its domain (one foreign-key hop
around the tables the tool names), and the test database it is generated over (closed).

Issue 25: a per-tool prompt must not grow with the domain. Scopes closed under foreign
keys grew with the length of the domain's chains of references (bench/synth.py measured
the per-tool prompt 1.31x larger in an 80-tool domain than in a 27-tool one)."""

from __future__ import annotations

import random

from scaleenv._agents.llm.port import rendered_request
from scaleenv._agents.synth import prompts
from scaleenv._agents.synth.stage1 import fixture_for_tester, tool_context
from scaleenv._model.dbgen import assert_consistent
from scaleenv._model.scope import closed_tables, scoped_state, state_scope, tool_scope, touched_tables
from scaleenv._store.specs import Condition, DomainSpec, FieldSpec, ParamSpec, TableSpec, ToolSpec

F = FieldSpec


def _table(name: str, ref: str | None = None, extra: int = 2) -> TableSpec:
    key = f"{name.removesuffix('s')}_id"
    fields = [F(name=key, type="str"), F(name="label", type="str", required=True)]
    fields += [F(name=f"note_{i}", type="str") for i in range(extra)]
    if ref is not None:
        fields.append(F(name=f"{ref.removesuffix('s')}_id", type="str", ref=ref, required=True))
    return TableSpec(name=name, description=f"the {name}", primary_key=key, fields=fields)


CANCEL = ToolSpec(
    name="cancel_order", description="Cancel a pending order.", returns=[], reads=["orders"], writes=["orders"],
    mutates=True, params=[ParamSpec(name="order_id", type="str", description="the order", ref="orders")],
    contract=[Condition(when="pre", op="exists", left="orders[$order_id]", why="the order exists"),
              Condition(when="pre", op="eq", left="orders[$order_id].label", right='"pending"', why="still pending"),
              Condition(when="post", op="eq", left="orders[$order_id].label", right='"cancelled"', why="cancelled")])


def domain(chain: list[str], unrelated: int = 0) -> DomainSpec:
    """``chain[0]`` <- ``chain[1]`` <- ... (each table refers to the one before it), then
    orders -> the chain's last table, order_items -> orders, and ``unrelated`` tables that
    refer to nothing the tool touches."""
    tables = [_table(chain[0])]
    tables += [_table(t, ref=prev) for prev, t in zip(chain, chain[1:])]
    tables += [_table("orders", ref=chain[-1]), _table("order_items", ref="orders")]
    tables += [_table(f"ledger_{i}", ref=f"ledger_{i - 1}" if i else None, extra=6) for i in range(unrelated)]
    return DomainSpec(name="shop", description="an online shop", tables=tables, tools=[CANCEL])


SHORT = domain(["regions", "cities", "customers"])
LONG = domain(["continents", "countries", "regions", "cities", "customers"], unrelated=40)


def test_a_tool_is_shown_its_tables_and_one_hop_of_references_not_two() -> None:
    assert touched_tables(LONG, CANCEL) == ["customers", "orders"]
    assert [t.name for t in tool_scope(LONG, CANCEL).tables] == ["customers", "orders"]
    # order_items refers to orders, not the other way: the tool never needs it
    assert "order_items" not in touched_tables(LONG, CANCEL)
    # the test database still holds every table a reference leads to
    assert closed_tables(LONG, CANCEL) == ["continents", "countries", "regions", "cities", "customers", "orders"]


def test_a_table_named_only_by_the_contract_is_in_scope_with_its_references() -> None:
    tool = ToolSpec(name="city_orders", description="", returns=[], reads=["orders"], writes=[], mutates=False,
                    params=[ParamSpec(name="city_id", type="str", description="", ref=None)],
                    contract=[Condition(when="pre", op="exists", left="cities[$city_id]", why="")])
    assert touched_tables(LONG, tool) == ["regions", "cities", "customers", "orders"]


def test_per_tool_prompts_do_not_grow_with_the_domain() -> None:
    """The same tool in a small domain and in one with a longer chain of references behind
    its neighbours and 40 unrelated tables: every per-tool role's request is the same."""
    for role, instructions, extra in (("coder", prompts.CODER, {"round": 0}),
                                      ("reviewer", prompts.REVIEWER, {"code": "def cancel_order(db, order_id): ...",
                                                                      "round": 0, "earlier": []}),
                                      ("repairer", prompts.REPAIRER, {"code": "x = 1", "round": 1, "failures": [],
                                                                      "objections": ["no guard"]})):
        small = rendered_request(role, instructions, tool_context(SHORT, CANCEL, **extra), "Write cancel_order.")
        large = rendered_request(role, instructions, tool_context(LONG, CANCEL, **extra), "Write cancel_order.")
        assert large.messages == small.messages, role


def test_the_tester_is_shown_the_scoped_part_of_a_consistent_database() -> None:
    shown_sizes = []
    for spec in (SHORT, LONG):
        state, context = fixture_for_tester(spec, CANCEL, random.Random(3), rows=4)
        # generated over the closed scope: every reference resolves
        assert sorted(state) == sorted(closed_tables(spec, CANCEL))
        assert_consistent(state_scope(spec, CANCEL), state)
        shown = context["state"]
        assert list(shown) == ["customers", "orders"] and all(len(rows) == 4 for rows in shown.values())
        assert shown == scoped_state(spec, CANCEL, state)
        message = rendered_request("tester", prompts.TESTER, context, "Test cancel_order.").messages
        shown_sizes.append(sum(len(str(m["content"])) for m in message))
    # the values differ (the generator drew the longer chain first), the size hardly does
    assert abs(shown_sizes[1] - shown_sizes[0]) <= 0.02 * shown_sizes[0]
