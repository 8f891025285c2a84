"""Chain programs (scaleenv._model.program): what parses, what is refused and why, resolution."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleenv._model import program as prog
from scaleenv._store.specs import DomainSpec, FieldSpec, ParamSpec, TableSpec, ToolSpec

DOMAIN = DomainSpec(
    name="shop", description="a shop",
    tables=[TableSpec(name="customers", description="", primary_key="customer_id",
                      fields=[FieldSpec(name="customer_id", type="str"), FieldSpec(name="email", type="str")]),
            TableSpec(name="orders", description="", primary_key="order_id",
                      fields=[FieldSpec(name="order_id", type="str"), FieldSpec(name="customer_id", type="str", ref="customers")])],
    tools=[
        ToolSpec(name="find_customer_by_email", description="", params=[ParamSpec(name="email", type="str", description="")],
                 returns=[FieldSpec(name="customer_id", type="str", ref="customers")], reads=["customers"], writes=[], mutates=False),
        ToolSpec(name="list_customer_orders", description="",
                 params=[ParamSpec(name="customer_id", type="str", description="", ref="customers")],
                 returns=[FieldSpec(name="order_id", type="str", ref="orders")], returns_list=True, reads=["orders"], writes=[], mutates=False),
        ToolSpec(name="cancel_order", description="",
                 params=[ParamSpec(name="order_id", type="str", description="", ref="orders"),
                         ParamSpec(name="reason", type="str", description="", required=False)],
                 returns=[], reads=["orders"], writes=["orders"], mutates=True),
    ],
)

GOOD = '''
customer = call("find_customer_by_email", email="ada@example.com")
orders = call("list_customer_orders", customer_id=customer["customer_id"])
call("cancel_order", order_id=orders[0]["order_id"], reason="changed my mind")
'''


def test_a_program_parses_into_steps_with_literals_and_references() -> None:
    steps = prog.parse(GOOD, DOMAIN)
    assert [s.tool for s in steps] == ["find_customer_by_email", "list_customer_orders", "cancel_order"]
    assert steps[0].args == {"email": "ada@example.com"} and not steps[0].refs
    assert steps[1].refs == {"customer_id": prog.Ref(0, ["customer_id"])}
    assert steps[2].refs == {"order_id": prog.Ref(1, [0, "order_id"])} and steps[2].args == {"reason": "changed my mind"}
    assert prog.parse(prog.render(steps), DOMAIN) == [prog.Step(tool=s.tool, args=s.args, refs=s.refs, name=s.name)
                                                      for s in steps]


def test_resolution_follows_earlier_results_and_names_what_is_missing() -> None:
    steps = prog.parse(GOOD, DOMAIN)
    results = [{"customer_id": "c1"}, [{"order_id": "o7"}, {"order_id": "o8"}]]
    assert prog.resolve(steps[1], results) == {"customer_id": "c1"}
    assert prog.resolve(steps[2], results) == {"order_id": "o7", "reason": "changed my mind"}
    with pytest.raises(prog.Unresolved, match="step 1 gave no element 0") as exc:
        prog.resolve(steps[2], [{"customer_id": "c1"}, []])
    assert exc.value.param == "order_id" and exc.value.ref == prog.Ref(1, [0, "order_id"])
    with pytest.raises(prog.Unresolved, match="no field 'customer_id'"):
        prog.resolve(steps[1], [{"id": "c1"}])


@pytest.mark.parametrize(("source", "says"), [
    ('call("drop_tables")', "line 1: unknown tool 'drop_tables'"),
    ('call("cancel_order", order_id="o1", priority=1)', "has no parameter 'priority'"),
    ('call("cancel_order")', "cancel_order needs ['order_id']"),
    ('call("cancel_order", order_id=x["order_id"])', "'x' is not the result of an earlier call"),
    ('x = 1', "every statement calls a tool"),
    ('import os', "only `name = call"),
    ('for i in range(3):\n    call("cancel_order", order_id="o1")', "only `name = call"),
    ('call("cancel_order", order_id=__import__("os").getcwd())', "must be a literal or an earlier result"),
    ('c = call("find_customer_by_email", email="a")\ncall("cancel_order", order_id=c.customer_id)',
     "must be a literal or an earlier result"),
    ('c = call("find_customer_by_email", email="a")\ncall("cancel_order", order_id=c[c])', "subscripts must be literal"),
    ('call("cancel_order", **{"order_id": "o1"})', "**kwargs are not allowed"),
    ('open("/etc/passwd")', "every statement calls a tool"),
    ('call = 3', "every statement calls a tool"),
    ('call(cancel_order, order_id="o1")', "takes the tool's name"),
    ('call("cancel_order", order_id="o1"', "not valid Python"),
    ('', "calls no tool"),
    ('\n'.join(['call("cancel_order", order_id="o1")'] * (prog.MAX_STEPS + 1)), f"at most {prog.MAX_STEPS} calls"),
])
def test_anything_but_a_chain_of_the_domain_s_tools_is_refused_with_its_line(source: str, says: str) -> None:
    with pytest.raises(prog.ProgramError) as exc:
        prog.parse(source, DOMAIN)
    assert says in str(exc.value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_either_parses_or_is_refused_cleanly(source: str) -> None:
    """No text makes the parser do anything but return steps or raise ProgramError (it never runs code)."""
    try:
        steps = prog.parse(source, DOMAIN)
    except prog.ProgramError:
        return
    assert steps and all(s.tool in {t.name for t in DOMAIN.tools} for s in steps)


def test_without_a_domain_the_form_is_checked_but_not_the_tools() -> None:
    """A reader without the domain (the sim's oracle, told a solution) gets the same steps for
    a program of the domain, any tool name through, and every hostile form still refused."""
    source = ('c = call("find_customer_by_email", email="a@b.c")\n'
              'o = call("list_customer_orders", customer_id=c["customer_id"])\n'
              'call("cancel_order", order_id=o[0]["order_id"])\n')
    assert prog.parse(source, None) == prog.parse(source, DOMAIN)
    assert [s.tool for s in prog.parse('call("drop_tables", x=1)', None)] == ["drop_tables"]
    for hostile in ('import os', 'call("cancel_order", order_id=__import__("os").getcwd())', 'open("/etc/passwd")',
                    'call("cancel_order", **{"order_id": "o1"})'):
        with pytest.raises(prog.ProgramError):
            prog.parse(hostile, None)
