"""The output types of the synthesizer roles (what each role's model is constrained to).

Each is a msgspec Struct: its JSON schema is the generation constraint, msgspec decoding
is the validation (``forbid_unknown_fields`` catches typos in model output).

Role contexts (the structured context each role's request carries; sim role simulators
read exactly these keys):

- architect, outline round  {"brief": {name, description, keywords, tools}, "taken": [names of the
             other slots' domains], "round": int, "feedback": [str]} -> DomainOutline
- architect, tool round  {"brief": {...}, "outline": DomainOutline, "group": str, "round": int,
             "feedback": [str]} -> ToolGroupDesign (the tools of that group)
- database  {"brief": {...}, "tools": [ToolSpec], "round": int, "previous": [TableSpec] (the
             rejected tables, if any), "feedback": [str]} -> SchemaDesign
- debugger  {"domain": {"name", "tables": [the tables the tool touches]}, "tool": ToolSpec, "code": str,
             "failures": [{"case", "args", "expect", "outcome", "failure", "traceback"}], "round": int}
             -> DebugAnswer
- graph_judge  {"domain": str, "tools": {name: ToolSpec}, "candidates": [{"src", "dst", "kind", "why"}]}
             -> GraphJudgeAnswer
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

from typing import Annotated, Any, Literal

import msgspec

from scaleenv._store.events.synth import CaseFix
from scaleenv._store.specs import TableSpec, ToolSpec


class ToolGroupDesign(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The tools of one group of the outline."""

    tools: list[ToolSpec]


class SchemaDesign(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The database agent's tables: every table and column the tools read and write."""

    tables: list[TableSpec]


class DebugAnswer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which side of a failing test is wrong: the tool (give its whole new code) or the tests
    (say, per wrong case, whether to drop it or expect the other outcome)."""

    verdict: Literal["tool", "test"]
    reason: str
    code: str = ""
    case_fixes: list[CaseFix] = []


class EdgeVerdict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    src: str
    dst: str
    keep: bool
    reason: str


class GraphJudgeAnswer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    verdicts: list[EdgeVerdict]


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
    requests: list[str] = []


class ChainAnswer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A goal's chain as a program of tool calls (see the chain writer's instructions)."""

    program: str
    summary: str = ""


class GateAnswer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How compatible one more chain is with the task so far, 0 to 1 (continue when >= tau)."""

    p: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    reason: str = ""
