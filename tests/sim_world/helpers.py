"""Run generated tool code with plain exec (tests only; the real sandbox is scaleenv._sandbox)."""

from __future__ import annotations

import copy
from typing import Any

from scaleenv._model.contracts import check_post


class ToolError(Exception):
    pass


def load(code: str, name: str) -> Any:
    env: dict[str, Any] = {"ToolError": ToolError}
    exec(compile(code, f"<tool:{name}>", "exec"), env)
    return env[name]


def call(code: str, name: str, db: dict, args: dict) -> tuple[str, Any]:
    fn = load(code, name)
    try:
        return "ok", fn(db, **args)
    except ToolError as exc:
        return "error", str(exc)
    except Exception as exc:  # a crash: never what a case expects
        return "exception", repr(exc)


def failures(code: str, tool: Any, state: dict, cases: list[dict]) -> list[str]:
    """Which planned cases the code fails (expectation, record changes, post-conditions)."""
    out = []
    for case in cases:
        db = copy.deepcopy(state)
        outcome, result = call(code, tool.name, db, case["args"])
        if outcome != case["expect"]:
            out.append(f"{case['name']}: expected {case['expect']}, got {outcome} {result!r}")
            continue
        if outcome == "error":
            if db != state:
                out.append(f"{case['name']}: the db changed on error")
            continue
        for ch in case.get("expect_changes", []):
            rec = db[ch["table"]].get(ch["key"])
            if ch.get("deleted"):
                good = rec is None
            elif ch.get("field") is None:
                good = rec is not None
            else:
                good = rec is not None and rec.get(ch["field"]) == ch["value"]
            if not good:
                out.append(f"{case['name']}: change {ch} not made")
        bad = check_post(tool, case["args"], state, db, result)
        if bad:
            out.append(f"{case['name']}: post {[v.detail for v in bad]}")
    return out


def composed(i: int, tools: int = 40, seed: int = 1) -> Any:
    """The sim's design for catalogue brief ``i`` (modulo its size) at ``tools`` tools."""
    from scaleenv._agents.sim.world.composer import compose
    from scaleenv._model.briefs import CATALOGUE

    return compose(CATALOGUE[i % len(CATALOGUE)]._replace(tools=tools), seed).spec
