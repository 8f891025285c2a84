"""The output types of the synthesizer roles (what each role's model is constrained to).

Each is a msgspec Struct: its JSON schema is the generation constraint, msgspec decoding
is the validation (``forbid_unknown_fields`` catches typos in model output).

Role contexts (the structured context each role's request carries; sim role simulators
read exactly these keys):

- architect  {"slot": int, "variety_seed": int, "round": int, "feedback": [str]}
             -> DomainSpec (scaleenv.store.specs)
- coder      {"domain": DomainSpec, "tool": str, "round": 0}        -> CodeAnswer
- reviewer   {"domain": DomainSpec, "tool": str, "code": str, "round": int} -> ReviewAnswer
- tester     {"domain": DomainSpec, "tool": str, "state": DbState}   -> TestPlan
- repairer   {"domain": DomainSpec, "tool": str, "code": str, "round": int,
              "failures": [{"case": str, "failure": str, "traceback": str}],
              "objections": [str]}                                    -> RepairAnswer
- task_writer {"domain": DomainSpec, "steps": [{"tool", "args"}], "user_facts": {...},
              "goal_tool": str, "targets": {...}}                     -> InstructionAnswer
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class CodeAnswer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: str
    notes: str = ""


class RepairAnswer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The repairer's new version of a tool's code, and what it says about the failures."""

    code: str
    notes: str = ""


class ReviewAnswer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    accept: bool
    objections: list[str] = []


class ExpectedChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    table: str
    key: str
    field: str | None = None
    value: Any = None
    deleted: bool = False


class PlannedCase(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A test case the tester writes against the state it was given."""

    name: str
    args: dict[str, Any]
    expect: Literal["ok", "error"]
    expect_changes: list[ExpectedChange] = []
    note: str = ""


class TestPlan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cases: list[PlannedCase]


class InstructionAnswer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    instruction: str
    persona: str = ""
