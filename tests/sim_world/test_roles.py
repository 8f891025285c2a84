"""The role simulators behind the sim backend: output types, determinism, mistakes."""

from __future__ import annotations

import random

import msgspec

from scaleenv._agents.llm.port import render_messages, schema_for
from scaleenv._agents.sim import NoiseModel, SimBackend
from scaleenv._agents.sim.world.codegen import applicable_bugs, generate
from scaleenv._agents.sim.world.states import make_state
from scaleenv._agents.synth import answers
from scaleenv._agents.sim.world.testplan import plan_cases
from scaleenv._agents.synth.design import outline_problems
from scaleenv._agents.synth.stage1 import tool_context
from scaleenv._model.briefs import CATALOGUE, Brief
from scaleenv._model.specs_check import validate_domain
from scaleenv._store.specs import DomainOutline, DomainSpec

from .helpers import composed, failures

CLEAN = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=0.15)


def ask(role: str, context: dict, out_type: type, seed: int, noise: NoiseModel = CLEAN):
    backend = SimBackend(noise=noise)
    schema, name = schema_for(out_type)
    messages = render_messages("instructions", context, "task")
    text, *_ = backend.answer(messages, schema, name, seed, role=role)
    return msgspec.json.decode(text, type=out_type), text


def builtins(spec: DomainSpec) -> dict:
    return msgspec.json.decode(msgspec.json.encode(spec))


def _brief(i: int, tools: int = 40) -> dict:
    b = CATALOGUE[i % len(CATALOGUE)]
    return {"name": b.name, "description": b.description, "keywords": list(b.keywords), "tools": tools, "variety": i}


def test_architect_outlines_then_designs_each_group_and_feedback_fixes_mistakes() -> None:
    noisy = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=0.5)
    broken = 0
    for seed in range(30):
        brief = _brief(seed)
        outline, text = ask("architect", {"brief": brief, "taken": [], "round": 0, "feedback": []}, DomainOutline, seed, noisy)
        assert ask("architect", {"brief": brief, "taken": [], "round": 0, "feedback": []}, DomainOutline, seed, noisy)[1] == text
        problems = outline_problems(outline, Brief(**{k: (tuple(v) if k == "keywords" else v) for k, v in brief.items() if k != "variety"}))
        if problems:
            broken += 1
            outline, _ = ask("architect", {"brief": brief, "taken": [], "round": 1, "feedback": problems}, DomainOutline,
                             seed + 1000, noisy)
            assert outline_problems(outline, Brief(brief["name"], brief["description"], tuple(brief["keywords"]), 40)) == []
        tools = []
        for group in outline.groups:
            design, _ = ask("architect", {"brief": brief, "outline": msgspec.to_builtins(outline), "group": group.name,
                                          "round": 1, "feedback": []}, answers.ToolGroupDesign, seed, NoiseModel.off())
            assert [t.name for t in design.tools] == [t.name for t in group.tools]
            tools.extend(design.tools)
        schema, _ = ask("database", {"brief": brief, "tools": msgspec.to_builtins(tools), "round": 1, "feedback": []},
                        answers.SchemaDesign, seed, NoiseModel.off())
        spec = DomainSpec(name=outline.name, description=outline.description, tables=schema.tables, tools=tools)
        assert validate_domain(spec) == [], spec.name
        assert 25 <= len(tools) <= 70 and 5 <= len(schema.tables) <= 22
    assert 5 <= broken <= 25  # rate 0.5 * 0.5 = 25%: some, not most


def test_database_agent_forgets_a_column_then_the_feedback_brings_it_back() -> None:
    noisy = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=1.0)
    spec = composed(12)
    ctx = {"brief": _brief(12), "tools": msgspec.to_builtins(spec.tools), "round": 0, "feedback": []}
    forgot, _ = ask("database", ctx, answers.SchemaDesign, 3, noisy)
    problems = validate_domain(DomainSpec(name=spec.name, description="", tables=forgot.tables, tools=spec.tools))
    assert problems
    fixed, _ = ask("database", {**ctx, "round": 1, "feedback": problems}, answers.SchemaDesign, 4, noisy)
    assert validate_domain(DomainSpec(name=spec.name, description="", tables=fixed.tables, tools=spec.tools)) == []


def test_coder_writes_correct_code_or_one_bug() -> None:
    d = composed(4)
    state = make_state(d, random.Random(2))
    always = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=1.0)
    for tool in d.tools:
        ctx = tool_context(d, tool, round=0)
        clean, text = ask("coder", ctx, answers.CodeAnswer, 5, NoiseModel.off())
        assert clean.code == generate(d, tool).code
        assert ask("coder", ctx, answers.CodeAnswer, 5, NoiseModel.off())[1] == text
        if applicable_bugs(d, tool):
            buggy, _ = ask("coder", ctx, answers.CodeAnswer, 5, always)
            assert buggy.code != clean.code
        plan, _ = ask("tester", tool_context(d, tool, state=state), answers.TestPlan, 9, NoiseModel.off())
        cases = [msgspec.to_builtins(c) for c in plan.cases]
        assert failures(clean.code, tool, state, cases) == []


def test_reviewer_catches_some_bugs_and_accepts_clean_code() -> None:
    d = composed(10)
    objected = accepted_clean = total = 0
    for i, tool in enumerate(d.tools):
        for kind in applicable_bugs(d, tool):
            code = generate(d, tool, kind, random.Random(i)).code
            ans, _ = ask("reviewer", tool_context(d, tool, code=code, round=0), answers.ReviewAnswer, i)
            total += 1
            objected += not ans.accept
        clean, _ = ask("reviewer", tool_context(d, tool, code=generate(d, tool).code, round=0), answers.ReviewAnswer, i,
                       NoiseModel.off())
        accepted_clean += clean.accept
    assert accepted_clean == len(d.tools)
    assert 0.4 * total <= objected < total


def test_tester_mistakes_are_wrong_expectations() -> None:
    d = composed(6)
    state = make_state(d, random.Random(4))
    tool = next(t for t in d.tools if t.mutates and any(c.when == "pre" for c in t.contract))
    always = NoiseModel(malformed=0.0, schema_violation=0.0, mistakes=1.0)
    wrong = 0
    for seed in range(30):
        plan, _ = ask("tester", tool_context(d, tool, state=state), answers.TestPlan, seed, always)
        cases = [msgspec.to_builtins(c) for c in plan.cases]
        wrong += bool(failures(generate(d, tool).code, tool, state, cases))  # the correct code fails a case
    assert 3 <= wrong <= 20  # rate 1.0 * 0.3


def test_debugger_blames_the_right_side() -> None:
    d = composed(7)
    state = make_state(d, random.Random(1))
    tool = next(t for t in d.tools if "forgot_update" in applicable_bugs(d, t))
    buggy = generate(d, tool, "forgot_update", random.Random(1)).code
    correct = generate(d, tool).code
    case = next(c for c in plan_cases(d, tool, state, random.Random(1)) if c["expect"] == "ok")
    failing = [{"case": case["name"], "args": case["args"], "expect": "ok", "outcome": "ok",
                "failure": "post-condition failed", "traceback": "", "state": state}]
    on_tool = [ask("debugger", tool_context(d, tool, code=buggy, round=1, failures=failing), answers.DebugAnswer, s)[0]
               for s in range(40)]
    assert sum(a.verdict == "tool" for a in on_tool) >= 30  # mistakes: 0.15 * 0.5 wrong verdicts
    assert sum(a.verdict == "tool" and a.code == correct for a in on_tool) >= 15
    wrong_test = [{**failing[0], "expect": "error", "failure": "expected a clean error, but the call succeeded"}]
    on_test = [ask("debugger", tool_context(d, tool, code=correct, round=1, failures=wrong_test), answers.DebugAnswer, s)[0]
               for s in range(40)]
    fixed = [a for a in on_test if a.verdict == "test"]
    assert len(fixed) >= 30 and all(a.case_fixes[0].action == "expect_ok" for a in fixed)


def test_task_writer_hides_tool_names() -> None:
    d = composed(12)  # job seeking
    state = make_state(d, random.Random(3))
    apps = d.table("applications")
    app = next(iter(state["applications"]))
    applicant = state["applications"][app]["applicant_id"]
    email = state["applicants"][applicant]["email"]
    move = next(t for t in d.tools if t.params and t.params[0].name == apps.primary_key and t.mutates
                and any(c.op == "eq" and c.left.endswith(".status") and c.when == "post" for c in t.contract))
    ctx = {"domain": builtins(d),
           "steps": [{"tool": f"get_{apps.primary_key[:-3]}", "args": {apps.primary_key: app}},
                     {"tool": move.name, "args": {apps.primary_key: app}}],
           "user_facts": {"email": email, apps.primary_key: app}, "goal_tool": move.name, "targets": {}}
    texts = set()
    for seed in range(12):
        ans, text = ask("task_writer", ctx, answers.InstructionAnswer, seed)
        assert ask("task_writer", ctx, answers.InstructionAnswer, seed)[1] == text
        assert app in ans.instruction
        assert not any(t.name in ans.instruction for t in d.tools)
        texts.add(ans.instruction)
    assert len(texts) >= 4


def test_task_writer_says_whose_record_a_lookup_by_email_finds() -> None:
    """A lookup by an email the customer holds is "my account"; one by an email only an earlier
    record gives (an instructor's, found from the customer's progress mark) is not the
    customer's account, and the request says which kind of record it is about."""
    from scaleenv._agents.sim.world.task_writer import phrase
    d = composed(12)
    find = next(t for t in d.tools if t.name.startswith("find_") and "_by_" in t.name)
    email = "tariq.berg3@example.com"
    assert phrase(d, find, {"email": email}) == "find my account"
    assert phrase(d, find, {"email": email}, frozenset({email})) == "find my account"
    other = phrase(d, find, {"email": email}, frozenset({"progress_mark_092b"}))
    noun = find.name.removeprefix("find_").split("_by_")[0].replace("_", " ")
    assert other == f"find out the details of the {noun}"


def test_task_writer_leaves_out_values_of_nothing() -> None:
    """An argument passed as null is not something the customer asks for ("body: None")."""
    from scaleenv._agents.sim.world.task_writer import phrase
    d = composed(12)
    make = next(t for t in d.tools if t.mutates and len([p for p in t.params if p.ref is None]) >= 2
                and t.name.split("_")[0] in ("create", "add", "register", "place", "submit", "record", "book", "post", "open"))
    plain = [p.name for p in make.params if p.ref is None]
    text = phrase(d, make, {plain[0]: None, plain[1]: "Blue Lamp"})
    assert "None" not in text and "Blue Lamp" in text
