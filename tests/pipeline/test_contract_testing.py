"""Contract-derived procedural tests catch code that ignores its contract."""

from __future__ import annotations

import random
from pathlib import Path

import trio

from scaleenv._agents.synth.stage1 import _run_cases, contract_cases  # noqa: F401
from scaleenv._model.dbgen import generate_state
from scaleenv._model.integrity import Constraints, constraints_of
from scaleenv._sandbox import SandboxPool
from scaleenv._store.events.synth import TestsRun, ToolAccepted, ToolRejected
from scaleenv._store.log import Log
from tests.shop import CODE, SHOP


class _Ctx:
    def __init__(self, pool: SandboxPool) -> None:
        self.sandbox = pool

    def constraints(self, slot: str, spec: object) -> Constraints:
        return constraints_of(spec)  # type: ignore[arg-type]


def _results(code: str) -> list:
    tool = SHOP.tool("cancel_order")
    rng = random.Random(5)
    cases = contract_cases(SHOP, tool, generate_state(SHOP, rng), rng)  # type: ignore[arg-type]

    async def main() -> list:
        async with SandboxPool(workers=1) as pool:
            return await _run_cases(_Ctx(pool), "d00", SHOP, tool, code, cases)  # type: ignore[arg-type]

    return trio.run(main)


def test_correct_code_passes_every_contract_case() -> None:
    results = _results(CODE["cancel_order"])
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]
    assert {r.name for r in results} >= {"contract/valid/0", "contract/violate/0", "contract/violate/1"}


def test_code_that_skips_a_precondition_check_is_caught() -> None:
    skipping = CODE["cancel_order"].replace(
        '''    if order["status"] not in ["pending", "processing"]:
        raise ToolError("order " + order_id + " is " + order["status"] + " and cannot be cancelled")
''', "")
    assert skipping != CODE["cancel_order"]
    failed = [r for r in _results(skipping) if not r.passed]
    assert [r.name for r in failed] == ["contract/violate/1"]
    assert "expected a clean error" in failed[0].failure and "status in" in failed[0].failure


def test_code_that_breaks_a_postcondition_is_caught() -> None:
    no_refund = CODE["cancel_order"].replace('customer["balance"] + order["total"]', 'customer["balance"]')
    failed = [r for r in _results(no_refund) if not r.passed]
    assert failed and all("post-condition failed" in r.failure for r in failed)


def test_sim_run_repairs_or_rejects_tools_caught_by_contract_cases(synth8: Path) -> None:
    """On a real sim synthesis, contract cases catch first drafts, which are then repaired or rejected."""
    path = synth8
    caught: dict[str, str] = {}
    with Log.open(path, readonly=True) as log:
        for r in log.read():
            e = r.event
            if isinstance(e, TestsRun) and e.round == 0 and any(
                not x.passed and x.name.startswith("contract/") for x in e.results
            ):
                caught[r.stream] = "caught"
            elif isinstance(e, ToolAccepted | ToolRejected) and r.stream in caught:
                caught[r.stream] = "accepted" if isinstance(e, ToolAccepted) else "rejected"
    assert caught, "no first draft was caught by a contract case"
    assert all(v in ("accepted", "rejected") for v in caught.values())
    assert "accepted" in caught.values()  # some were repaired
