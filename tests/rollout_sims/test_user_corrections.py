"""The sim user corrects and refuses (issue 16 item 7), the sim policy takes it, and both stay bounded.

Scripted policies (fixed assistant messages, whatever the user says) drive the sim user
through the test harness's shop: one that confirms a look-alike order, one that asks for
an internal id or a password, one that offers a change nobody asked for; the sim policy
then shows what it does with a correction and a refusal.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import msgspec

from scaleenv._agents.rollout.answers import PolicyTurn, UserTurn
from scaleenv._agents.sim import policy as sim_policy, user as sim_user
from scaleenv._agents.sim.backend import NoiseModel
from scaleenv._agents.sim.dialogue import confirm_message, confirmed_args, contradiction, proposed_action
from scaleenv._seeding import derive_seed
from tests.rollout_sims.harness import DOMAIN, Task, make_task, run_episode, sim_call, tool_schemas

OFF = NoiseModel.off()
FACTS = {"email": "ada.berg12@example.com", "product_title": "blue lamp"}


def _user(conversation: list[dict], *, facts: dict | None = None, seed: int = 0, max_turns: int = 40,
          instruction: str = "Cancel my order for the blue lamp.") -> UserTurn:
    ctx = {"instruction": instruction, "persona": "", "user_facts": facts if facts is not None else FACTS,
           "conversation": conversation, "turn": sum(1 for m in conversation if m["role"] == "assistant"),
           "max_turns": max_turns}
    return msgspec.convert(sim_user.simulate_user(sim_call("user", ctx, seed, OFF, UserTurn)), UserTurn)


def _chat(*pairs: str) -> list[dict]:
    """user, assistant, user, assistant... messages."""
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(pairs)]


def _scripted(task: Task, say: Callable[[int], str], *, max_turns: int = 40, seed: int = 0) -> list[UserTurn]:
    """The sim user against a policy that says ``say(turn)`` whatever it hears: the user's turns
    until it ends the conversation or the turn limit does."""
    visible: list[dict] = []
    turns: list[UserTurn] = []
    for turn in range(max_turns + 1):
        ctx = {"instruction": task.instruction, "user_facts": task.user_facts, "persona": "",
               "requests": task.requests, "request_facts": task.request_facts,
               "conversation": copy.deepcopy(visible), "turn": turn, "max_turns": max_turns}
        u = msgspec.convert(sim_user.simulate_user(sim_call("user", ctx, derive_seed(seed, "user", turn), OFF, UserTurn)),
                            UserTurn)
        turns.append(u)
        visible.append({"role": "user", "content": u.message})
        if u.done or u.gave_up or turn == max_turns:
            break
        visible.append({"role": "assistant", "content": say(turn)})
    return turns


def _look_alike(task: Task) -> tuple[str, str]:
    """An order of the task's customer other than the target, and its product's title."""
    db = task.db
    cust = db["orders"][task.target]["customer_id"]
    other = next(o for o, r in sorted(db["orders"].items()) if r["customer_id"] == cust and o != task.target)
    return other, db["products"][db["orders"][other]["product_id"]]["title"]


# ------------------------------------------------------------------ correct
def test_a_policy_confirming_a_look_alike_is_corrected_with_the_right_fact() -> None:
    task = make_task(random.Random(5))
    other, title = _look_alike(task)
    right = task.user_facts["product_title"]
    wrong = confirm_message("cancel the order", {"order_id": other}, f"status: pending, title: {title}")
    turns = _scripted(task, lambda turn: wrong, max_turns=3)
    assert turns[1].reason == "correct" and not turns[1].done
    assert turns[1].message.startswith("No") and right in turns[1].message and title not in turns[1].message
    # The right record gets a plain yes.
    good = confirm_message("cancel the order", {"order_id": task.target}, f"status: pending, title: {right}")
    ok = _scripted(task, lambda turn: good, max_turns=2)[1]
    assert ok.reason == "" and ok.message.startswith("Yes")


def test_a_report_or_a_wrong_quantity_is_corrected_too() -> None:
    facts = {"email": "ada.berg12@example.com", "quantity": 2}
    said = "Done: I have updated the order. Details: order id: orde_1a2b, quantity: 3."
    turn = _user(_chat("Change the quantity of my order.", said), facts=facts)
    assert turn.reason == "correct" and "quantity is 2" in turn.message and not turn.done
    # The same value as the user's (25 and 25.0), or a new value the user asked for, is no contradiction.
    assert contradiction("Done. Details: quantity: 2.0.", facts, "") is None
    assert contradiction("Done. Details: email: new@example.com.", {"email": "old@example.com"},
                         "change my email to new@example.com") is None
    # A list naming the right record among others contradicts nothing; "name" alone is not "customer name".
    assert contradiction("Here: title: red chair; title: blue lamp.", FACTS, "") is None
    assert contradiction("Here: name: Blue Lamp Co.", {"customer_name": "Ada Berg"}, "") is None
    # A record's timestamp says nothing about which record it is; the user's own id settles it.
    assert contradiction("Found: order id: orde_1a2b, created on: 2024-02-20.", {"created_on": "2024-01-16"}, "") is None
    assert contradiction("Found: order id: orde_1a2b, title: red chair.", {**FACTS, "order_id": "orde_1a2b"}, "") is None


def test_a_policy_that_keeps_proposing_the_wrong_record_ends_by_the_cap() -> None:
    task = make_task(random.Random(5))
    other, title = _look_alike(task)
    wrong = confirm_message("cancel the order", {"order_id": other}, f"title: {title}")
    turns = _scripted(task, lambda turn: wrong, max_turns=40)
    reasons = [t.reason for t in turns]
    assert reasons.count("correct") == sim_user.MAX_CORRECTIONS
    assert turns[-1].gave_up and len(turns) == sim_user.MAX_CORRECTIONS + 2  # opening, corrections, giving up


# ------------------------------------------------------------------ refuse
def test_asked_for_an_internal_id_the_user_declines_and_offers_what_it_has() -> None:
    turn = _user(_chat("Cancel my order for the blue lamp.", "Could you tell me your order id, so I can cancel the order?"))
    assert turn.reason == "refuse_info" and "order id" in turn.message
    assert "blue lamp" in turn.message or "ada.berg12@example.com" in turn.message  # what it can give instead


def test_a_password_is_never_given_even_when_held() -> None:
    facts = {**FACTS, "password": "hunter22"}
    turn = _user(_chat("Cancel my order for the blue lamp.", "Could you tell me your password, so I can cancel the order?"),
                 facts=facts)
    assert turn.reason == "refuse_info" and "hunter22" not in turn.message and "password" in turn.message


def test_a_policy_that_keeps_asking_for_an_internal_id_ends_bounded() -> None:
    task = make_task(random.Random(5))
    turns = _scripted(task, lambda turn: f"Could you tell me your order id (attempt {turn})?", max_turns=40)
    assert [t.reason for t in turns].count("refuse_info") <= sim_user.MAX_REFUSALS
    assert turns[-1].gave_up and len(turns) <= sim_user.MAX_REFUSALS + 2


def test_an_action_the_user_did_not_ask_for_is_refused() -> None:
    offer = "Done: I have cancelled the order. Would you also like me to update the customer's email?"
    turn = _user(_chat("Cancel my order for the blue lamp.", offer))
    assert turn.reason == "refuse_action" and turn.message.startswith("No") and not turn.done
    # Proposed on its own (not "also"), the action the user came for gets a yes.
    assert _user(_chat("Cancel my order for the blue lamp.", "Shall I cancel the order now?")).message.startswith("Yes")
    assert proposed_action("Shall I cancel the order now?") == ("cancel the order now", False)
    # Looking something up is never refused; an unasked change offered on its own is.
    assert not _user(_chat("Cancel my order for the blue lamp.", "Should I look up your orders first?")).reason
    assert _user(_chat("Cancel my order for the blue lamp.", "Shall I delete your account?")).reason == "refuse_action"


def test_a_policy_that_keeps_offering_extras_ends_bounded() -> None:
    task = make_task(random.Random(5))
    turns = _scripted(task, lambda turn: f"Would you also like me to delete the customer {turn}?", max_turns=40)
    assert [t.reason for t in turns].count("refuse_action") == sim_user.MAX_REFUSALS
    assert turns[-1].gave_up


# ------------------------------------------------------------------ the sim policy's side
def _policy(conversation: list[dict], seed: int = 0) -> PolicyTurn:
    ctx = {"conversation": conversation, "tools": tool_schemas(DOMAIN), "turn": 1}
    return msgspec.convert(sim_policy.simulate_policy(sim_call("policy", ctx, seed, OFF, PolicyTurn)), PolicyTurn)


def _call(n: int, name: str, args: dict, result: Any) -> list[dict]:
    cid = f"call_{n}"
    return [{"role": "assistant", "content": "", "tool_calls": [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]},
        {"role": "tool", "tool_call_id": cid, "content": json.dumps(result)}]


def test_after_a_correction_the_policy_redoes_the_step_with_the_right_record() -> None:
    orders = [{"order_id": "orde_aaaa", "product_id": "prod_0001", "status": "pending"},
              {"order_id": "orde_bbbb", "product_id": "prod_0002", "status": "pending"}]
    conv = [{"role": "user", "content": "Cancel my order for the blue lamp. My email is ada.berg12@example.com."},
            *_call(1, "find_customer_by_email", {"email": "ada.berg12@example.com"}, {"customer_id": "cust_0001", "name": "Ada"}),
            *_call(2, "list_customer_orders", {"customer_id": "cust_0001"}, orders),
            *_call(3, "get_product", {"product_id": "prod_0001"}, {"product_id": "prod_0001", "title": "red chair", "price": 1.0}),
            *_call(4, "get_product", {"product_id": "prod_0002"}, {"product_id": "prod_0002", "title": "blue lamp", "price": 2.0})]
    # As if it had picked the look-alike: the user corrects, and the next confirmation is of the other order.
    wrong = confirm_message("cancel the order", {"order_id": "orde_aaaa"}, "title: red chair")
    correction = _user([conv[0], {"role": "assistant", "content": wrong}])
    assert correction.reason == "correct"
    conv += [{"role": "assistant", "content": wrong}, {"role": "user", "content": correction.message}]
    again = _policy(conv)
    assert confirmed_args(again.content, "cancel the order", ["order_id"]) == {"order_id": "orde_bbbb"}
    assert "blue lamp" in again.content
    conv += [{"role": "assistant", "content": again.content}, {"role": "user", "content": "Yes, please go ahead."}]
    act = _policy(conv)
    assert [(c.name, json.loads(c.arguments)) for c in act.tool_calls] == [("cancel_order", {"order_id": "orde_bbbb"})]
    # Said no to after it was made: the change on the wrong record does not count as done.
    done = conv + _call(5, "cancel_order", {"order_id": "orde_aaaa"}, {"order_id": "orde_aaaa", "status": "cancelled"})
    report = _policy(done[:-6] + done[-2:])  # (without the confirmations)
    assert report.content.startswith("Done")
    redo = _policy(done[:-6] + done[-2:] + [{"role": "assistant", "content": report.content},
                                            {"role": "user", "content": "No, that's wrong: my product title is blue lamp."}])
    assert "orde_bbbb" in redo.content or any("orde_bbbb" in c.arguments for c in redo.tool_calls)


def test_after_an_id_refusal_the_policy_falls_back_to_lookups() -> None:
    conv = [{"role": "user", "content": "Cancel my order for the blue lamp. My email is ada.berg12@example.com."}]
    ask = _policy(conv)
    assert ask.content.startswith("Could you tell me your order id") and not ask.tool_calls
    refusal = _user(conv + [{"role": "assistant", "content": ask.content}])
    assert refusal.reason == "refuse_info" and "order id" in refusal.message
    conv += [{"role": "assistant", "content": ask.content}, {"role": "user", "content": refusal.message}]
    nxt = _policy(conv)
    assert [c.name for c in nxt.tool_calls] == ["find_customer_by_email"]  # looks it up instead of asking again


def test_sim_episodes_correct_and_refuse_deterministically() -> None:
    """Over seeded shop episodes at a raised noise, corrections happen, some corrected
    episodes still succeed, offers are refused, and a seed replays to the same turns."""
    noise = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=0.25)
    reasons: dict[str, int] = {}
    corrected_ok = 0
    first: int | None = None
    for seed in range(40):
        e = run_episode(seed, noise, max_turns=20)
        got = [t.get("reason", "") for t in e.user_turns]
        for r in got:
            reasons[r] = reasons.get(r, 0) + 1
        if "correct" in got:
            corrected_ok += e.success
            first = seed if first is None else first
        assert got.count("correct") <= sim_user.MAX_CORRECTIONS
    assert reasons.get("correct", 0) >= 2 and reasons.get("refuse_action", 0) >= 1 and corrected_ok >= 1
    assert first is not None
    a, b = run_episode(first, noise, max_turns=20), run_episode(first, noise, max_turns=20)
    assert a.user_turns == b.user_turns and a.policy_turns == b.policy_turns and a.chat == b.chat
