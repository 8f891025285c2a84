"""The contract language, evaluator and solver, on a hand-written domain."""

from __future__ import annotations

import copy
import random

import pytest

from scaleenv._model.contracts import (
    Count,
    ContractSyntaxError,
    Literal,
    check_post,
    check_pre,
    eval_term,
    evaluate,
    parse_term,
    render,
    validate_contract,
)
from scaleenv._model.dbgen import generate_state
from scaleenv._model.satisfy import satisfy, violate
from scaleenv._store.specs import Condition, ParamSpec, ToolSpec
from tests.shop import CODE, SHOP


def run_plain(tool: str, db: dict, args: dict):
    """Execute the hand-written (trusted) test code directly: the code is ours, not a model's."""
    class ToolError(Exception):
        pass
    scope: dict = {"ToolError": ToolError}
    exec(CODE[tool], scope)  # noqa: S102 - trusted test fixture
    try:
        return True, scope[tool](db, **args)
    except ToolError as exc:
        return False, str(exc)


def test_parse_and_render() -> None:
    t = parse_term("customers[orders[$order_id].customer_id].balance")
    assert str(t) == "customers[orders[$order_id].customer_id].balance"
    assert parse_term('"cancelled"').value == "cancelled"  # type: ignore[union-attr]
    with pytest.raises(ContractSyntaxError, match="position"):
        parse_term("orders[$order_id")
    cond = SHOP.tool("cancel_order").contract[1]  # type: ignore[union-attr]
    assert render(cond) == 'orders[$order_id].status in ["pending", "processing"]'


def test_validate_contract_names_unknown_things() -> None:
    bad = ToolSpec(name="t", description="", params=[], returns=[], reads=[], writes=[], mutates=False, contract=[
        Condition(when="pre", op="exists", left="ordrs[$order_id]"),
        Condition(when="pre", op="eq", left="orders[$x].colour", right='"red"'),
        Condition(when="pre", op="increases_by", left="orders[$x].total", right="1"),
    ])
    problems = validate_contract(SHOP, bad)
    text = "\n".join(problems)
    assert "unknown table 'ordrs'" in text
    assert "no field 'colour'" in text
    assert "unknown parameter $x" in text
    assert "only meaningful after the call" in text
    for tool in SHOP.tools:
        assert validate_contract(SHOP, tool) == []


@pytest.mark.parametrize("seed", range(20))
def test_satisfy_then_code_succeeds_and_post_holds(seed: int) -> None:
    rng = random.Random(seed)
    base = generate_state(SHOP, rng)
    for tool in SHOP.tools:
        solved = satisfy(SHOP, tool, base, rng)
        assert solved is not None, tool.name
        args, db = solved
        assert check_pre(tool, args, db) == []
        before = copy.deepcopy(db)
        ok, result = run_plain(tool.name, db, args)
        assert ok, (tool.name, args, result)
        assert check_post(tool, args, before, db, result) == []


@pytest.mark.parametrize("seed", range(20))
def test_each_violation_fails_cleanly(seed: int) -> None:
    rng = random.Random(seed)
    base = generate_state(SHOP, rng)
    broken = 0
    for tool in SHOP.tools:
        args, db = satisfy(SHOP, tool, base, rng)  # type: ignore[misc]
        for i, cond in enumerate(tool.contract):
            if cond.when != "pre":
                continue
            v = violate(SHOP, tool, i, args, db, rng)
            assert v is not None, (tool.name, i)
            vargs, vdb = v
            assert not evaluate(cond, vargs, vdb).holds
            snapshot = copy.deepcopy(vdb)
            ok, _ = run_plain(tool.name, vdb, vargs)
            assert not ok, (tool.name, render(cond), vargs)
            assert vdb == snapshot
            broken += 1
    assert broken == 8


def test_post_condition_catches_wrong_refund() -> None:
    rng = random.Random(3)
    tool = SHOP.tool("cancel_order")
    args, db = satisfy(SHOP, tool, generate_state(SHOP, rng), rng)  # type: ignore[misc,arg-type]
    before = copy.deepcopy(db)
    order = db["orders"][args["order_id"]]
    order["status"] = "cancelled"
    db["customers"][order["customer_id"]]["balance"] += order["total"] + 1  # off by one
    failures = check_post(tool, args, before, db)  # type: ignore[arg-type]
    assert len(failures) == 1 and "increases by" in failures[0].detail


def test_some_eq_and_result_terms() -> None:
    find = SHOP.tool("find_customer_by_email")
    create = SHOP.tool("create_order")
    assert render(find.contract[0]) == "some customers[*].email == $email"  # type: ignore[union-attr]
    db = {"customers": {"c1": {"customer_id": "c1", "email": "a@x", "name": "A", "balance": 1}}}
    assert evaluate(find.contract[0], {"email": "a@x"}, db).holds  # type: ignore[union-attr]
    assert not evaluate(find.contract[0], {"email": "b@x"}, db).holds  # type: ignore[union-attr]
    post = create.contract[-2]  # type: ignore[union-attr]
    after = {"orders": {"o9": {"status": "pending"}}}
    assert evaluate(post, {"result": {"order_id": "o9"}}, after, {}).holds
    assert not evaluate(post, {"result": {"order_id": "o8"}}, after, {}).holds
    bad = ToolSpec(name="t", description="", params=[], returns=[], reads=[], writes=[], mutates=False, contract=[
        Condition(when="pre", op="exists", left="orders[$result.order_id]"),
        Condition(when="pre", op="eq", left="customers[*].email", right='"x"'),
    ])
    text = "\n".join(validate_contract(SHOP, bad))
    assert "unknown parameter $result" in text and "only meaningful with some_eq" in text


def test_graph_has_state_edge_from_creation_to_cancellation() -> None:
    from scaleenv._model.graph import derive_edges

    edges = derive_edges(SHOP, [t.name for t in SHOP.tools])
    kinds = {(e.src, e.dst, e.kind) for e in edges}
    assert ("create_order", "cancel_order", "state") in kinds
    assert ("find_customer_by_email", "list_customer_orders", "data") in kinds
    assert ("list_customer_orders", "cancel_order", "data") in kinds


# --- listings (selects_*), counts and bare-word literals --------------------------------


_BOOKS = {"books": {
    "b1": {"book_id": "b1", "title": "The Blue Atlas", "category": "travel", "price": 12.0, "published": "2021-04-01"},
    "b2": {"book_id": "b2", "title": "Red Rivers", "category": "travel", "price": 30.0, "published": "2019-01-20"},
    "b3": {"book_id": "b3", "title": "blue notes", "category": "music", "price": 8.5, "published": "2023-07-09"},
}}


def _lister(*conds: Condition) -> ToolSpec:
    return ToolSpec(name="search_books", description="", params=[
        ParamSpec(name=n, type="str", description="", required=False) for n in ("category", "keyword", "max_price", "since")
    ], returns=[], returns_list=True, reads=["books"], writes=[], mutates=False, contract=list(conds))


def _sel(op: str, field: str, param: str) -> Condition:
    return Condition(when="post", op=op, left=f"books[*].{field}", right=f"${param}")  # type: ignore[arg-type]


def _items(*keys: str) -> list[dict[str, object]]:
    return [{"book_id": k, "title": _BOOKS["books"][k]["title"]} for k in keys]


def test_a_listing_must_hold_exactly_what_passes_every_filter() -> None:
    tool = _lister(_sel("selects_eq", "category", "category"), _sel("selects_contains", "title", "keyword"),
                   _sel("selects_le", "price", "max_price"), _sel("selects_ge", "published", "since"))
    args = {"category": "travel", "keyword": "BLUE"}
    assert check_post(tool, args, _BOOKS, _BOOKS, _items("b1")) == []
    missing = check_post(tool, {"keyword": "blue"}, _BOOKS, _BOOKS, _items("b1"))  # category left out: no filter
    assert len(missing) == 1 and "1 record(s) are missing" in missing[0].detail and "blue notes" in missing[0].detail
    extra = check_post(tool, {"max_price": 20}, _BOOKS, _BOOKS, _items("b1", "b2", "b3"))
    assert "should not be there" in extra[0].detail and "Red Rivers" in extra[0].detail
    assert check_post(tool, {"since": "2020-01-01"}, _BOOKS, _BOOKS, _items("b1", "b3")) == []
    assert check_post(tool, {"category": "poetry"}, _BOOKS, _BOOKS, []) == []
    assert "is not a list" in check_post(tool, {}, _BOOKS, _BOOKS, {"book_id": "b1"})[0].detail


def test_count_terms_and_bare_words() -> None:
    term = parse_term("count(books[*].category == $c)")
    assert isinstance(term, Count) and eval_term(term, {"c": "travel"}, _BOOKS) == 2
    assert eval_term(term, {"c": "cooking"}, _BOOKS) == 0
    assert parse_term("travel") == Literal("travel")  # a bare word is a string, as a model writes it
    cond = Condition(when="post", op="eq", left="$result.count", right="count(books[*].category == $c)")
    tool = ToolSpec(name="count_books", description="", params=[ParamSpec(name="c", type="str", description="")],
                    returns=[], reads=["books"], writes=[], mutates=False, contract=[cond])
    assert check_post(tool, {"c": "travel"}, _BOOKS, _BOOKS, {"count": 2}) == []
    assert check_post(tool, {"c": "travel"}, _BOOKS, _BOOKS, {"count": 3})
