"""The sim's rollout roles (user, policy) driven over the shop domain."""

from __future__ import annotations

import json
import random
import re

import msgspec
import pytest

from scaleenv._agents.llm.port import render_messages
from scaleenv._agents.sim.backend import NoiseModel, SimBackend
from scaleenv._agents.sim import policy as sim_policy, user as sim_user
from scaleenv._agents.rollout.answers import PolicyTurn, UserTurn
from scaleenv._agents.sim.text import extract_facts
from scaleenv._agents.sim.tools import parse_returns
from tests.rollout_sims.harness import DOMAIN, run_episode, sim_call, success_rate, tool_schemas

OFF = NoiseModel.off()
HIGH = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=1.0)
SEEDS = range(30)


def user_ctx(conversation: list[dict], facts: dict | None = None, turn: int = 1, max_turns: int = 10) -> dict:
    return {"instruction": "Cancel my order for the blue lamp.", "persona": "",
            "user_facts": facts if facts is not None else {"email": "ada.berg12@example.com", "product_title": "blue lamp"},
            "conversation": conversation, "turn": turn, "max_turns": max_turns}


def user(ctx: dict, seed: int = 0, noise: NoiseModel = OFF) -> UserTurn:
    return msgspec.convert(sim_user.simulate_user(sim_call("user", ctx, seed, noise, UserTurn)), UserTurn)


def policy(conversation: list[dict], seed: int = 0, noise: NoiseModel = OFF, turn: int = 1) -> PolicyTurn:
    ctx = {"conversation": conversation, "tools": tool_schemas(DOMAIN), "turn": turn}
    return msgspec.convert(sim_policy.simulate_policy(sim_call("policy", ctx, seed, noise, PolicyTurn)), PolicyTurn)


# ------------------------------------------------------------------ episodes
def test_noise_off_completes_the_goal() -> None:
    assert success_rate(OFF, SEEDS) >= 0.9
    # The task writer's style of instruction (a brief with persona and a fact list) works too.
    assert success_rate(OFF, SEEDS, style="brief") >= 0.9


def test_mistakes_lower_the_success_rate() -> None:
    off, default, high = success_rate(OFF, SEEDS), success_rate(NoiseModel(), SEEDS), success_rate(HIGH, SEEDS)
    assert high < default <= off
    assert high <= 0.6


def test_same_seed_same_episode() -> None:
    for seed in (3, 11):
        a, b = run_episode(seed, NoiseModel()), run_episode(seed, NoiseModel())
        assert a.user_turns == b.user_turns and a.policy_turns == b.policy_turns and a.chat == b.chat
    assert run_episode(3, HIGH).policy_turns != run_episode(4, HIGH).policy_turns


def test_user_reveals_only_facts_it_holds() -> None:
    for seed in range(20):
        e = run_episode(seed, HIGH)
        held = {str(v).lower() for v in e.task.user_facts.values()}
        for m in e.visible:
            if m["role"] != "user":
                continue
            for email in re.findall(r"[\w.+-]+@[\w-]+\.\w+", m["content"]):
                assert email.lower() in held
            for value in extract_facts(m["content"]).values():
                assert value.lower() in held, (value, m["content"])


def test_malformed_arguments_happen_under_noise_only() -> None:
    def malformed(noise: NoiseModel) -> int:
        n = 0
        for seed in range(15):
            for m in run_episode(seed, noise).chat:
                for c in m.get("tool_calls") or []:
                    try:
                        json.loads(c["function"]["arguments"])
                    except json.JSONDecodeError:
                        n += 1
        return n

    assert malformed(OFF) == 0
    assert malformed(HIGH) > 0


# ------------------------------------------------------------------ user
def test_user_opens_with_the_goal_not_every_fact() -> None:
    for seed in range(20):
        t = user(user_ctx([], turn=0), seed)
        assert "blue lamp" in t.message and not t.done and not t.gave_up
        assert "ada.berg12@example.com" not in t.message or "blue lamp" in t.message  # never more than one up front
    brief = dict(user_ctx([], turn=0), instruction=(
        "You are a busy professional. I need to cancel my order. Things you know and can share when asked: "
        "your email is ada.berg12@example.com; your product title is blue lamp. Keep it short."))
    for seed in range(10):
        t = user(brief, seed)
        assert t.message.endswith("I need to cancel my order.") or "ada.berg12" in t.message or "blue lamp" in t.message
        assert not ("ada.berg12" in t.message and "blue lamp" in t.message)
        assert "busy professional" not in t.message and "Things you know" not in t.message


def test_user_answers_what_is_asked() -> None:
    conv = [{"role": "user", "content": "Cancel my order for the blue lamp."},
            {"role": "assistant", "content": "Could you tell me your email, so I can cancel the order?"}]
    t = user(user_ctx(conv))
    assert "ada.berg12@example.com" in t.message and not t.done
    assert extract_facts(t.message)["email"] == "ada.berg12@example.com"
    both = [conv[0], {"role": "assistant", "content": "Could you tell me your email and the product title?"}]
    t = user(user_ctx(both))
    assert "ada.berg12@example.com" in t.message and "blue lamp" in t.message


def test_user_does_not_invent_facts() -> None:
    conv = [{"role": "user", "content": "Cancel my order."},
            {"role": "assistant", "content": "Could you tell me your order id?"}]
    for seed in range(10):
        t = user(user_ctx(conv, facts={"email": "ada.berg12@example.com"}), seed)
        assert not re.search(r"\b[a-z]{2,8}_[0-9a-f]{3,}\b", t.message)
        assert "don't" in t.message.lower()


def test_user_done_fail_and_give_up() -> None:
    base = [{"role": "user", "content": "Cancel my order for the blue lamp."}]
    done = user(user_ctx(base + [{"role": "assistant", "content": "Done: I have cancelled the order orde_1a2b."}]))
    assert done.done and not done.gave_up
    failed = user(user_ctx(base + [{"role": "assistant", "content": "I'm sorry, the order could not be cancelled."}]))
    assert not failed.done and not failed.gave_up
    twice = base + [{"role": "assistant", "content": "Sorry, I couldn't do it."}, {"role": "user", "content": "Try again."},
                    {"role": "assistant", "content": "Sorry, that failed again."}]
    assert user(user_ctx(twice)).gave_up
    assert user(user_ctx(base + [{"role": "assistant", "content": "Let me check."}], turn=9, max_turns=10)).gave_up
    vague = [user(user_ctx(base + [{"role": "assistant", "content": "Could you tell me your email?"}]), s, HIGH)
             for s in range(40)]
    assert any("ada.berg12" not in t.message for t in vague) and any("ada.berg12" in t.message for t in vague)


# ------------------------------------------------------------------ policy
def test_returns_convention() -> None:
    assert parse_returns("Cancel an order. Returns: order_id, status, total.") == (["order_id", "status", "total"], False)
    assert parse_returns("List orders. Returns a list of: order_id, status.") == (["order_id", "status"], True)
    assert parse_returns("List orders. Returns a list of orders: order_id and status") == (["order_id", "status"], True)
    assert parse_returns("List orders. Returns a list of order_id, status") == (["order_id", "status"], True)


def test_policy_asks_then_chains_lookups() -> None:
    conv = [{"role": "system", "content": "You are the shop's agent. Use the tools."},
            {"role": "user", "content": "Cancel my order for the blue lamp."}]
    t = policy(conv)
    assert not t.tool_calls and "email" in t.content and t.content.endswith("?")
    conv += [{"role": "assistant", "content": t.content}, {"role": "user", "content": "Sure, my email is ada.berg12@example.com."}]
    t = policy(conv, turn=2)
    assert [(c.name, json.loads(c.arguments)) for c in t.tool_calls] == [("find_customer_by_email", {"email": "ada.berg12@example.com"})]
    assert t.tool_calls[0].id == "call_2_0"


def test_policy_reports_after_the_goal_and_on_errors() -> None:
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1_0", "type": "function", "function": {"name": "cancel_order", "arguments": '{"order_id": "orde_1a2b"}'}}]}
    conv = [{"role": "user", "content": "Please cancel my order orde_1a2b."}]
    t = policy(conv)
    assert t.content == 'Just to confirm: shall I cancel the order with order id: "orde_1a2b"?' and not t.tool_calls
    conv += [{"role": "assistant", "content": t.content}, {"role": "user", "content": "Yes, please go ahead."}]
    t = policy(conv)
    assert [(c.name, json.loads(c.arguments)) for c in t.tool_calls] == [("cancel_order", {"order_id": "orde_1a2b"})]
    ok = policy(conv + [call, {"role": "tool", "tool_call_id": "call_1_0", "content": '{"order_id": "orde_1a2b", "status": "cancelled"}'}])
    assert "cancelled" in ok.content and not ok.tool_calls
    assert user(user_ctx([conv[0], {"role": "assistant", "content": ok.content}])).done
    err = policy(conv + [call, {"role": "tool", "tool_call_id": "call_1_0", "content": '{"error": "order orde_1a2b is shipped"}'}])
    assert not err.tool_calls and "shipped" in err.content  # the same failing call is not repeated


def test_through_the_sim_backend() -> None:
    """The roles answer through SimBackend (rendered context, JSON text) and decode as the output types."""
    backend = SimBackend(noise=OFF)
    ctx = user_ctx([], turn=0)
    text, *_ = backend.answer(render_messages("Play the user.", ctx, "Your turn."), msgspec.json.schema(UserTurn), "UserTurn", 7)
    assert "blue lamp" in msgspec.json.decode(text, type=UserTurn).message
    pctx = {"conversation": [{"role": "user", "content": "Cancel my order orde_1a2b."},
                             {"role": "assistant", "content": 'Just to confirm: shall I cancel the order with order id: "orde_1a2b"?'},
                             {"role": "user", "content": "Yes, please do."}], "tools": tool_schemas(DOMAIN), "turn": 1}
    text, *_ = backend.answer(render_messages("Act.", pctx, "Your turn."), msgspec.json.schema(PolicyTurn),
                              "PolicyTurn", 7, tool_schemas(DOMAIN))
    turn = msgspec.json.decode(text, type=PolicyTurn)
    assert turn.tool_calls and turn.tool_calls[0].name == "cancel_order"


def test_policy_is_deterministic_and_uses_only_call_rng() -> None:
    conv = [{"role": "user", "content": "Please cancel my order orde_1a2b."}]
    state = random.getstate()
    a = [policy(conv, seed, HIGH) for seed in range(20)]
    assert random.getstate() == state  # the global RNG is never touched
    assert a == [policy(conv, seed, HIGH) for seed in range(20)]


def test_id_kinds_and_long_prefixes() -> None:
    from scaleenv._agents.sim.text import extract_ids, kind_fits, similar
    assert extract_ids("my id is ticket_purchase_596d, orde_1a2b") == ["ticket_purchase_596d", "orde_1a2b"]
    assert not kind_fits("attendee_id", "ticket_purchase_596d") and kind_fits("attendee_id", "attendee_2988")
    assert kind_fits("ticket_purchase_id", "tic_0003") and not kind_fits("client_id", "ada@example.com")
    assert similar("cancel", "cancelled") and not similar("subscriber", "subscription")


def test_policy_retries_cleanly_after_a_slip() -> None:
    conv = [{"role": "user", "content": "Please cancel my order orde_1a2b."},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1_0", "type": "function", "function": {"name": "cancel_order", "arguments": '{"order_id": "or'}}]},
            {"role": "tool", "tool_call_id": "call_1_0", "content": '{"error": "arguments are not a JSON object: ..."}'}]
    for seed in range(20):
        t = policy(conv, seed, NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=1.0))
        if t.tool_calls:
            assert [(c.name, json.loads(c.arguments)) for c in t.tool_calls] == [("cancel_order", {"order_id": "orde_1a2b"})]


# ------------------------------------------------------------------ several requests
def test_two_requests_one_after_the_other() -> None:
    """The user raises the second request once the first is settled, never before; the policy
    starts over on it (its own goal and record) while the user's email carries over."""
    assert success_rate(OFF, SEEDS, goals=2) >= 0.8
    for seed in range(10):
        ep = run_episode(seed, OFF, goals=2, max_turns=20)
        said = [m["content"] for m in ep.visible if m["role"] == "user"]
        first = next(i for i, t in enumerate(said) if ep.task.requests[0] in t)
        second = [i for i, t in enumerate(said) if ep.task.requests[1] in t]
        assert first == 0 and second and second[0] > first
        # Before the second request, the assistant reported the first one done.
        before = [m["content"] for m in ep.visible if m["role"] == "assistant"][second[0] - 1]
        assert before.startswith("Done"), before
        if ep.success:
            assert ep.user_turns[-1]["done"] and not any(t["done"] for t in ep.user_turns[:-1])


def test_more_requests_lower_the_success_rate_under_noise() -> None:
    noisy = NoiseModel()
    assert success_rate(noisy, SEEDS, goals=2) <= success_rate(noisy, SEEDS)


def test_user_gives_only_the_facts_of_the_request_at_hand() -> None:
    ctx = user_ctx([{"role": "user", "content": "Cancel my order for the blue lamp."},
                    {"role": "assistant", "content": "Done: I have cancelled the order."},
                    {"role": "user", "content": "Thanks! Also, please cancel my red chair order."},
                    {"role": "assistant", "content": "Could you tell me your product title?"}])
    ctx["requests"] = ["Cancel my order for the blue lamp.", "Also, please cancel my red chair order."]
    ctx["request_facts"] = [{"product_title": "blue lamp", "order_number": "A-17"}, {"product_title": "red chair"}]
    reply = user(ctx)
    assert "red chair" in reply.message and "blue lamp" not in reply.message and not reply.done
    ctx["conversation"][-1] = {"role": "assistant", "content": "Could you tell me your order number?"}
    assert "A-17" not in user(ctx).message  # another request's fact: not this one's
    ctx["conversation"][-1] = {"role": "assistant", "content": "Done: I have cancelled the order."}
    assert user(ctx).done  # the last request settled
    ctx["conversation"] = ctx["conversation"][:2]
    nxt = user(ctx)
    assert ctx["requests"][1] in nxt.message and not nxt.done  # the first settled: the next request


def test_policy_request_at_hand_starts_after_a_settled_one() -> None:
    from scaleenv._agents.sim.tools import parse_conversation
    conv = parse_conversation([
        {"role": "user", "content": "Cancel my order for the blue lamp."},
        {"role": "assistant", "content": "Could you tell me your email?"},
        {"role": "user", "content": "ada@example.com"},
        {"role": "assistant", "content": "Done: I have cancelled the order."},
        {"role": "user", "content": "Thanks! Also, please cancel my red chair order."},
    ])
    assert sim_policy.request_start(conv) == 4
    assert sim_policy.request_start(parse_conversation(conv_only := [{"role": "user", "content": "hi"}])) == 0 and conv_only



# ------------------------------------------------------------------ a later request's own records
def _settled_first_request() -> list[dict]:
    """A first request settled on order orde_1a2b (the customer's email given on the way)."""
    return [
        {"role": "user", "content": "Please cancel my order orde_1a2b. My email is ada.berg12@example.com."},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1_0", "type": "function", "function": {"name": "cancel_order", "arguments": '{"order_id": "orde_1a2b"}'}}]},
        {"role": "tool", "tool_call_id": "call_1_0", "content": '{"order_id": "orde_1a2b", "status": "cancelled"}'},
        {"role": "assistant", "content": "Done: I have cancelled the order. Details: order id: orde_1a2b, status: cancelled."},
    ]


def test_a_later_request_asks_for_its_own_record_before_reusing_an_earlier_one() -> None:
    """"Cancel my other order" after one was settled: the earlier order's id is not taken for it
    (the failure the multi-goal tasks showed: an earlier record used for a later goal)."""
    conv = _settled_first_request() + [{"role": "user", "content": "Thanks! Also, please cancel my order for the red chair."}]
    t = policy(conv, turn=3)
    assert not t.tool_calls and "order id" in t.content and t.content.endswith("?"), t


def test_a_later_request_looks_its_record_up_when_the_user_cannot_give_its_id() -> None:
    """Told "I don't have that" for the later request, the policy looks the record up from what
    this request gave, and never falls back on the earlier request's record."""
    conv = _settled_first_request() + [
        {"role": "user", "content": "Thanks! Also, please cancel my order for the red chair."},
        {"role": "assistant", "content": "Could you tell me your order id, so I can cancel the order?"},
        {"role": "user", "content": "I don't have that. But my email is bo.chen7@example.com, if that helps."},
    ]
    t = policy(conv, turn=4)
    calls = [(c.name, json.loads(c.arguments)) for c in t.tool_calls]
    assert calls == [("find_customer_by_email", {"email": "bo.chen7@example.com"})], t
    assert all("orde_1a2b" not in c.arguments for c in t.tool_calls)


def test_a_decline_in_an_earlier_request_does_not_stop_asking_in_a_later_one() -> None:
    conv = [
        {"role": "user", "content": "Please cancel my order for the blue lamp."},
        {"role": "assistant", "content": "Could you tell me your order id, so I can cancel the order?"},
        {"role": "user", "content": "I don't have that. Sorry, I don't know that."},
        {"role": "assistant", "content": "Done: I have cancelled the order. Details: order id: orde_1a2b, status: cancelled."},
        {"role": "user", "content": "Thanks! Also, please cancel my order for the red chair."},
    ]
    t = policy(conv, turn=3)
    assert not t.tool_calls and "order id" in t.content, t


def _airline_tools() -> list[dict]:
    """Tools as the sim's airline domain writes them (names and descriptions copied from a run)."""
    from scaleenv._store.specs import DomainSpec, FieldSpec, ParamSpec, ToolSpec

    def p(name: str, ref: str | None = None) -> ParamSpec:
        return ParamSpec(name=name, type="str", description=name.replace("_", " "), ref=ref)

    def spec(name: str, description: str, params: list[ParamSpec], returns: list[str], mutates: bool) -> ToolSpec:
        return ToolSpec(name=name, description=description, params=params, mutates=mutates,
                        returns=[FieldSpec(name=r, type="str") for r in returns], reads=[], writes=[])
    tools = [
        spec("register_crew_member", "Register a crew member; it starts as 'active'.",
             [p("airport_id", "airports"), p("name"), p("email"), p("city"), p("tier")], ["crew_member_id", "status"], True),
        spec("find_crew_member_by_email", "Find a crew member by email.", [p("email")], ["crew_member_id", "name", "status"], False),
        spec("get_crew_member", "Get one crew member with all its details.", [p("crew_member_id", "crew")],
             ["crew_member_id", "name", "email", "status"], False),
        spec("record_refund", "Record a refund; it starts as 'pending'.", [p("booking_id", "bookings"), p("amount"), p("method")],
             ["refund_id", "status"], True),
        spec("add_seat_assignment", "Add a seat assignment.", [p("booking_id", "bookings"), p("flight_id", "flights")],
             ["seat_assignment_id"], True),
        spec("get_seat_assignment", "Get one seat assignment with all its details.", [p("seat_assignment_id", "seats")],
             ["seat_assignment_id", "booking_id", "flight_id"], False),
    ]
    return tool_schemas(DomainSpec(name="airline_booking", description="Flights.", tables=[], tools=tools))


@pytest.mark.parametrize(("request_text", "goal"), [
    ('While I\'m here, please make a new crew (name: "Bram Costa", email: zoe.moreau73@example.com, city: Austin, '
     'tier: silver). It\'s a bit urgent.', "register_crew_member"),
    ("While I'm here, i need to make a new refund (amount: 450.38, method: cash) for the same booking as my seat "
     "seat_assignment_add4.", "record_refund"),
])
def test_goal_choice_ignores_where_references_come_from_and_the_values_given(request_text: str, goal: str) -> None:
    """"Make a new refund ... for the same booking as my seat ...": the refund is what is made;
    neither the record the references come from nor the field names in brackets (an email)
    decide the tool (both chose the wrong tool before, in a run's airline domain)."""
    from scaleenv._agents.sim.tools import parse_conversation, parse_tools
    conv = parse_conversation([{"role": "user", "content": request_text}])
    planner = sim_policy.Planner(call=sim_call("policy", {}, 0, OFF, PolicyTurn), tools=parse_tools(_airline_tools()),
                                 conv=conv)
    planner.read()
    assert planner.choose_goal().name == goal
