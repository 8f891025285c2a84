"""Integrity enforced by the sandbox: sessions opened with constraints check every call
that succeeded and roll back one that breaks them (real worker processes)."""

from __future__ import annotations

import os
import signal
from typing import Any

import trio

from scaleenv._model.integrity import constraints_of
from scaleenv._model.judge import judge
from scaleenv._replay import episode as episode_fold
from scaleenv._sandbox import CallOutcome, Limits, SandboxPool, ToolFailure
from scaleenv._store.events.episodes import ToolExecuted
from scaleenv._store.events.synth import TestCase
from scaleenv._store.specs import DomainSpec, FieldSpec, TableSpec, ToolSpec

F = FieldSpec
ADD_VISIT = ToolSpec(name="add_visit", description="book a visit", params=[], returns=[], reads=["visits"],
                     writes=["visits"], mutates=True)
SPEC = DomainSpec(name="clinic", description="a clinic", tools=[ADD_VISIT], tables=[
    TableSpec(name="patients", description="", primary_key="patient_id", fields=[
        F(name="patient_id", type="str"), F(name="name", type="str", required=True),
        F(name="tier", type="str", enum=["basic", "plus"])]),
    TableSpec(name="visits", description="", primary_key="visit_id", fields=[
        F(name="visit_id", type="str"), F(name="patient_id", type="str", ref="patients", required=True),
        F(name="slot", type="str", unique=True), F(name="fee", type="float", minimum=0)]),
])
CONSTRAINTS = constraints_of(SPEC)

TOOLS = {
    "add_visit": '''
def add_visit(db, visit_id, patient_id, slot, fee=0.0):
    db["visits"][visit_id] = {"visit_id": visit_id, "patient_id": patient_id, "slot": slot, "fee": fee}
    return {"visit_id": visit_id}
''',
    "remove_patient": '''
def remove_patient(db, patient_id):
    del db["patients"][patient_id]
    return {"patient_id": patient_id}
''',
    "set_tier": '''
def set_tier(db, patient_id, tier):
    db["patients"][patient_id]["tier"] = tier
    return {"patient_id": patient_id}
''',
}


def clinic() -> dict[str, dict[str, dict[str, Any]]]:
    return {"patients": {"p1": {"patient_id": "p1", "name": "Ada", "tier": "basic"},
                         "p2": {"patient_id": "p2", "name": "Bram", "tier": "plus"}},
            "visits": {"v1": {"visit_id": "v1", "patient_id": "p2", "slot": "mon-10", "fee": 20.0}}}


async def test_a_violating_call_is_rolled_back_and_names_its_violations(pool: SandboxPool) -> None:
    await pool.open_session("s", TOOLS, clinic(), constraints=CONSTRAINTS)
    outcome = await pool.call("s", "add_visit", {"visit_id": "v2", "patient_id": "p9", "slot": "mon-10", "fee": -5})
    assert not outcome.ok and outcome.error is not None and outcome.error.kind == "integrity"
    assert outcome.error.violations == [
        "visits[v2].fee = -5 is below its minimum 0",
        "visits[v2].patient_id = 'p9' points at no record of patients",
        "visits[v2].slot = 'mon-10' duplicates visits[v1] (slot is unique)",
    ]
    assert outcome.error.message == "add_visit broke 3 integrity constraints: " + "; ".join(outcome.error.violations)
    assert outcome.delta == []
    assert await pool.get_state("s") == clinic() == pool.shadow_state("s")
    fine = await pool.call("s", "add_visit", {"visit_id": "v2", "patient_id": "p1", "slot": "tue-9"})
    assert fine.ok and [c.key for c in fine.delta] == ["v2"]
    enum = await pool.call("s", "set_tier", {"patient_id": "p1", "tier": "gold"})
    assert enum.error is not None and enum.error.violations == ["patients[p1].tier = 'gold' is not one of 'basic', 'plus'"]
    # The same calls in a session without constraints behave as before integrity existed.
    await pool.open_session("free", TOOLS, clinic())
    assert (await pool.call("free", "add_visit", {"visit_id": "v2", "patient_id": "p9", "slot": "mon-10"})).ok
    assert (await pool.call("free", "remove_patient", {"patient_id": "p2"})).ok


async def _wait_for_restart(pool: SandboxPool, count: int) -> None:
    with trio.fail_after(60):  # a bound on a hang, not a timing assertion
        while pool.restarts() < count or -1 in pool.worker_pids():
            await trio.sleep(0.01)


async def test_integrity_holds_across_calls_and_a_worker_restart() -> None:
    async with SandboxPool(workers=1, limits=Limits(timeout_s=5.0)) as pool:
        await pool.open_session("s", TOOLS, clinic(), constraints=CONSTRAINTS)
        assert (await pool.call("s", "add_visit", {"visit_id": "v2", "patient_id": "p1", "slot": "tue-9"})).ok
        # The unique index the worker built now holds tue-9 (moved by the committed delta).
        dup = await pool.call("s", "add_visit", {"visit_id": "v3", "patient_id": "p1", "slot": "tue-9"})
        assert dup.error is not None and dup.error.violations == [
            "visits[v3].slot = 'tue-9' duplicates visits[v2] (slot is unique)"]
        [pid] = pool.worker_pids()
        os.kill(pid, signal.SIGKILL)
        await _wait_for_restart(pool, 1)
        # The replacement loads the session from the parent's shadow (with its constraints).
        again = await pool.call("s", "add_visit", {"visit_id": "v3", "patient_id": "p1", "slot": "tue-9"})
        assert again.error is not None and again.error.kind == "integrity"
        still = await pool.call("s", "remove_patient", {"patient_id": "p2"})
        assert still.error is not None and still.error.violations == [
            "patients[p2] was deleted but visits[v1].patient_id still references it"]
        assert (await pool.call("s", "remove_patient", {"patient_id": "p1"})).error is not None  # v2 points at p1
        state = await pool.get_state("s")
        assert sorted(state["visits"]) == ["v1", "v2"] and sorted(state["patients"]) == ["p1", "p2"]


async def test_run_once_and_sessions_sharing_code_with_different_constraints() -> None:
    """Constraints belong to the code set a worker keeps: a session reusing the code sent
    for another enforces its own constraints (or none)."""
    bad = {"visit_id": "v2", "patient_id": "p9", "slot": "x"}
    async with SandboxPool(workers=1) as pool:
        once = await pool.run_once(TOOLS, clinic(), "add_visit", bad, constraints=CONSTRAINTS)
        assert once.error is not None and once.error.kind == "integrity"
        assert (await pool.run_once(TOOLS, clinic(), "add_visit", bad)).ok
        for name, constraints in (("a", CONSTRAINTS), ("b", None), ("c", CONSTRAINTS), ("d", None)):
            await pool.open_session(name, TOOLS, clinic(), constraints=constraints)
            outcome = await pool.call(name, "add_visit", bad)
            assert outcome.ok is (constraints is None), name


def test_an_integrity_failure_fails_a_test_case_naming_it_and_is_the_environments_fault_in_an_episode() -> None:
    violations = ["visits[v2].patient_id = 'p9' points at no record of patients"]
    outcome = CallOutcome(ok=False, error=ToolFailure(kind="integrity", message="add_visit broke 1 integrity "
                                                      f"constraint: {violations[0]}", violations=violations))
    case = TestCase(name="c", source="tester", args={}, state=clinic(), expect="ok")
    result = judge(SPEC, ADD_VISIT, case, outcome)
    assert not result.passed and result.outcome == "integrity"
    assert result.failure == f"expected success, got integrity: add_visit broke 1 integrity constraint: {violations[0]}"
    view = episode_fold.start(clinic())
    episode_fold.apply(view, ToolExecuted(call_id="c1", tool="add_visit", args={}, ok=False, error_kind="integrity",
                                          error=outcome.error.message))
    assert view.env_failures == 1
