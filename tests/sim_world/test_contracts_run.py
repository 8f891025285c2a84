"""Issue "Tool contracts", checked on a real sim synthesis (`scaleenv synth --domains 8 --seed 1 --llm sim`).

Done when: every verified tool has a non-empty contract; every pre-condition of a
verified tool has at least one violating case that was run; every domain's graph has
state edges.
"""

from __future__ import annotations

from pathlib import Path

from scaleenv._model.contracts import render
from scaleenv._runner import project, summary
from scaleenv._store.events.synth import TestCasesProposed, TestsRun, ToolAccepted
from scaleenv._store.log import Log


def check_log(path: str | Path) -> dict:
    """The done-when facts measured on a run's log (also usable as a script on any log)."""
    accepted: dict[str, ToolAccepted] = {}
    proposed: dict[str, TestCasesProposed] = {}
    ran: dict[str, set[str]] = {}
    with Log.open(path, readonly=True) as log:
        for r in log.read():
            e = r.event
            if isinstance(e, ToolAccepted):
                accepted[r.stream] = e
            elif isinstance(e, TestCasesProposed):
                proposed[r.stream] = e
            elif isinstance(e, TestsRun):
                ran.setdefault(r.stream, set()).update(x.name for x in e.results)
        domains = summary(project(log))["domains"]
    empty = [f"{a.domain}/{a.tool}" for a in accepted.values() if not a.spec.contract]
    pres, unviolated = 0, []
    for stream, a in accepted.items():
        cases = proposed[stream].cases if stream in proposed else []
        for i, c in enumerate(a.spec.contract):
            if c.when != "pre":
                continue
            pres += 1
            if not any(k.condition == i and k.expect == "error" and k.name in ran.get(stream, ()) for k in cases):
                unviolated.append(f"{a.domain}/{a.tool}: {render(c)}")
    return {
        "verified": len(accepted),
        "empty_contracts": empty,
        "pre_conditions": pres,
        "unviolated": unviolated,
        "state_edges": {d["name"]: d["state_edges"] for d in domains},
    }


def test_synth_8_seed_1_meets_the_contract_facts(synth8: Path) -> None:
    facts = check_log(synth8)
    assert facts["verified"] >= 60, facts
    assert facts["empty_contracts"] == [], facts
    assert facts["pre_conditions"] > facts["verified"], facts
    assert facts["unviolated"] == [], facts
    assert len(facts["state_edges"]) == 8 and all(n > 0 for n in facts["state_edges"].values()), facts
