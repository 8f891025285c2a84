"""The rule-based reward: compare final database states (and required answers). No LLM.

Strict by default: 1 when the episode's final state equals the task's expected final
state (canonical comparison, table by table) and every required answer was told to
the user; else 0. The partial-credit breakdown is recorded beside it.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from scaleenv.store.specs import DbState

from .state import diff_states, same

REWARD_VERSION = "strict-1"


@attrs.frozen
class Score:
    reward: float
    breakdown: dict[str, float]
    diff: list[str]
    version: str = REWARD_VERSION


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def score(expected: DbState, actual: DbState, expected_answers: Iterable[str], said: Iterable[str]) -> Score:
    diff = diff_states(expected, actual)
    tables = sorted(set(expected) | set(actual))
    matching = sum(same(expected.get(t, {}), actual.get(t, {})) for t in tables)
    spoken = _norm(" ".join(said))
    answers = list(expected_answers)
    found = [a for a in answers if _norm(str(a)) in spoken]
    missing = [a for a in answers if a not in found]
    state_ok = not diff
    answers_ok = not missing
    breakdown = {
        "state": 1.0 if state_ok else 0.0,
        "tables_matching": matching / len(tables) if tables else 1.0,
        "answers": len(found) / len(answers) if answers else 1.0,
    }
    lines = list(diff) + [f"answer not given to the user: {a!r}" for a in missing]
    return Score(reward=1.0 if state_ok and answers_ok else 0.0, breakdown=breakdown, diff=lines)
