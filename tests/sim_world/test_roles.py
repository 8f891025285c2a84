"""The role simulators behind the sim backend: output types, determinism, mistakes."""

from __future__ import annotations

import random

import msgspec

from scaleenv.agents.llm.port import render_messages, schema_for
from scaleenv.agents.sim import NoiseModel, SimBackend
from scaleenv.agents.sim.world.codegen import applicable_bugs, generate
from scaleenv.agents.sim.world.states import make_state
from scaleenv.agents.sim.world.vocab import COMBOS, build_domain
from scaleenv.agents.synth import answers
from scaleenv.store.specs import DomainSpec

from .helpers import failures
from .test_vocab import spec_problems

CLEAN = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=0.15)


def ask(role: str, context: dict, out_type: type, seed: int, noise: NoiseModel = CLEAN):
    backend = SimBackend(noise=noise)
    schema, name = schema_for(out_type)
    messages = render_messages("instructions", context, "task")
    text, *_ = backend.answer(messages, schema, name, seed, role=role)
    return msgspec.json.decode(text, type=out_type), text


def builtins(spec: DomainSpec) -> dict:
    return msgspec.json.decode(msgspec.json.encode(spec))


def test_architect_mistakes_then_feedback_fixes() -> None:
    noisy = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=0.5)
    broken = 0
    for seed in range(40):
        ctx = {"slot": seed % 5, "variety_seed": 3, "round": 0, "feedback": []}
        spec, text = ask("architect", ctx, DomainSpec, seed, noisy)
        assert ask("architect", ctx, DomainSpec, seed, noisy)[1] == text  # same seed, same answer
        problems = spec_problems(spec)
        if problems:
            broken += 1
            fixed, _ = ask("architect", {**ctx, "round": 1, "feedback": problems}, DomainSpec, seed + 1000, noisy)
            assert spec_problems(fixed) == [] and fixed.name == spec.name
    assert 3 <= broken <= 20  # rate 0.5 * 0.5 = 25%: some, not most


def test_coder_writes_correct_code_or_one_bug() -> None:
    d = build_domain(COMBOS[40])
    state = make_state(d, random.Random(2))
    always = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=1.0)
    for tool in d.tools:
        ctx = {"domain": builtins(d), "tool": tool.name, "round": 0}
        clean, text = ask("coder", ctx, answers.CodeAnswer, 5, NoiseModel.off())
        assert clean.code == generate(d, tool).code
        assert ask("coder", ctx, answers.CodeAnswer, 5, NoiseModel.off())[1] == text
        if applicable_bugs(d, tool):
            buggy, _ = ask("coder", ctx, answers.CodeAnswer, 5, always)
            assert buggy.code != clean.code
        plan, _ = ask("tester", {"domain": builtins(d), "tool": tool.name, "state": state}, answers.TestPlan, 9, NoiseModel.off())
        cases = [msgspec.to_builtins(c) for c in plan.cases]
        assert failures(clean.code, tool, state, cases) == []


def test_reviewer_catches_some_bugs_and_accepts_clean_code() -> None:
    d = build_domain(COMBOS[100])
    objected = accepted_clean = total = 0
    for i, tool in enumerate(d.tools):
        for kind in applicable_bugs(d, tool):
            code = generate(d, tool, kind, random.Random(i)).code
            ans, _ = ask("reviewer", {"domain": builtins(d), "tool": tool.name, "code": code, "round": 0}, answers.ReviewAnswer, i)
            total += 1
            if not ans.accept:
                objected += 1
                assert all("condition" in o or "lookup" in o or "list" in o or "key" in o for o in ans.objections)
        clean, _ = ask("reviewer", {"domain": builtins(d), "tool": tool.name, "code": generate(d, tool).code, "round": 0},
                       answers.ReviewAnswer, i, NoiseModel.off())
        accepted_clean += clean.accept
    assert accepted_clean == len(d.tools)
    assert 0.4 * total <= objected < total


def test_tester_mistakes_are_wrong_expectations() -> None:
    d = build_domain(COMBOS[60])
    state = make_state(d, random.Random(4))
    tool = d.tools[5]
    always = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=1.0)
    wrong = 0
    for seed in range(30):
        plan, _ = ask("tester", {"domain": builtins(d), "tool": tool.name, "state": state}, answers.TestPlan, seed, always)
        cases = [msgspec.to_builtins(c) for c in plan.cases]
        wrong += bool(failures(generate(d, tool).code, tool, state, cases))  # the correct code fails a case
    assert 3 <= wrong <= 20  # rate 1.0 * 0.3


def test_repairer_fixes_or_sometimes_not() -> None:
    d = build_domain(COMBOS[7])
    tool = d.tools[5]
    buggy = generate(d, tool, "forgot_update", random.Random(1)).code
    ctx = {"domain": builtins(d), "tool": tool.name, "code": buggy, "round": 1,
           "failures": [{"case": "valid_1", "failure": "post-condition failed", "traceback": ""}], "objections": []}
    fixed = [ask("repairer", ctx, answers.CodeAnswer, s)[0].code == generate(d, tool).code for s in range(60)]
    # REPAIR_FAIL_SCALE 3.0 at the default 0.15: a repair fails ~45% of the time.
    assert 22 <= sum(fixed) <= 44


def test_task_writer_hides_tool_names() -> None:
    d = build_domain(COMBOS[7])
    state = make_state(d, random.Random(3))
    order = next(iter(state["orders"]))
    customer = state["orders"][order]["customer_id"]
    ctx = {"domain": builtins(d),
           "steps": [{"tool": "find_customer_by_email", "args": {"email": state["customers"][customer]["email"]}},
                     {"tool": "list_customer_orders", "args": {"customer_id": customer}},
                     {"tool": "cancel_order", "args": {"order_id": order}}],
           "user_facts": {"email": state["customers"][customer]["email"], "order_id": order},
           "goal_tool": "cancel_order", "targets": {}}
    texts = set()
    for seed in range(12):
        ans, text = ask("task_writer", ctx, answers.InstructionAnswer, seed)
        assert ask("task_writer", ctx, answers.InstructionAnswer, seed)[1] == text
        assert "cancel" in ans.instruction and order in ans.instruction
        assert not any(t.name in ans.instruction for t in d.tools)
        texts.add(ans.instruction)
    assert len(texts) >= 4
