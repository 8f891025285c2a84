"""Stage 1 events: domain design, tool code, review, procedural tests, repair, verdict, graph.

Streams: ``domain/<domain>`` carries the design, the graph and the domain's verdict;
``tool/<domain>.<tool>`` carries one tool's whole history (its audit trail).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from ..specs import DbState, DomainOutline, DomainSpec, TableSpec, ToolSpec
from .base import Event


class DomainProposed(Event, tag="domain.proposed"):
    domain: str
    description: str
    round: int


class DomainOutlined(Event, tag="domain.outlined"):
    """The architect's outline of the domain: its entities and its tools grouped by workflow."""

    round: int
    outline: DomainOutline


class ToolsDesigned(Event, tag="domain.tools_designed"):
    """The architect's tools for one group of the outline (one round of the tool design)."""

    group: str
    round: int
    tools: list[ToolSpec]
    digest_nested: ClassVar[bool] = True


class SchemaDerived(Event, tag="domain.schema_derived"):
    """The database agent's tables, derived from the tools: columns, keys, constraints, reward policies."""

    round: int
    tables: list[TableSpec]
    digest_nested: ClassVar[bool] = True


class SchemaRejected(Event, tag="domain.schema_rejected"):
    """The architect's design broke a rule; the problems go back to it as feedback."""

    domain: str
    round: int
    problems: list[str]


class SchemaDefined(Event, tag="domain.schema_defined"):
    """The validated design: tables, tools and their contracts."""

    spec: DomainSpec
    digest_nested: ClassVar[bool] = True


class CodeProposed(Event, tag="tool.code_proposed"):
    """A version of a tool's code (round 0 from the coder, later rounds from the repairer)."""

    domain: str
    tool: str
    round: int
    author: str
    code: str
    code_digest: str


class CodeCheckFailed(Event, tag="tool.code_check_failed"):
    """The code does not parse or leaves the allowed subset (exact errors)."""

    tool: str
    round: int
    issues: list[str]


class ReviewGiven(Event, tag="tool.review"):
    tool: str
    round: int
    accepted: bool
    objections: list[str] = []


class RecordExpectation(msgspec.Struct, frozen=True, kw_only=True):
    """After the call, ``table[key].field`` must equal ``value`` (field None: the record must exist; deleted: must not)."""

    table: str
    key: str
    field: str | None = None
    value: Any = None
    deleted: bool = False


class TestCase(msgspec.Struct, frozen=True, kw_only=True):
    """One procedural test of a tool: a call against a database state, and what must happen."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    name: str
    source: Literal["tester", "contract"]
    args: dict[str, Any]
    state: DbState
    expect: Literal["ok", "error"]
    expect_changes: list[RecordExpectation] = []
    # For contract-derived cases: which condition (index in the contract) the case exercises.
    condition: int | None = None
    note: str = ""


class TestCasesProposed(Event, tag="tool.tests_proposed"):
    __test__: ClassVar[bool] = False  # not a pytest test class

    tool: str
    cases: list[TestCase]


class CaseFix(msgspec.Struct, frozen=True, kw_only=True):
    """A change to one test case the debug role asked for: the case was wrong, not the tool."""

    case: str
    action: Literal["drop", "expect_ok", "expect_error"]
    reason: str = ""


class ToolDebugged(Event, tag="tool.debugged"):
    """The debug role's verdict on failing tests: the tool is wrong (a new version follows) or the tests are."""

    tool: str
    round: int
    verdict: Literal["tool", "test"]
    reason: str = ""


class TestCasesRepaired(Event, tag="tool.tests_repaired"):
    """The test cases after the debug role's fixes (the cases it found wrong dropped or relabelled)."""

    __test__: ClassVar[bool] = False  # not a pytest test class

    tool: str
    round: int
    fixes: list[CaseFix]
    cases: list[TestCase]


class CaseResult(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    passed: bool
    outcome: Literal["ok", "tool_error", "exception", "timeout", "memory", "crashed", "output_too_large", "policy", "bad_args",
                     "integrity"]
    message: str = ""
    traceback: str = ""
    # Why the case failed its expectation (empty when passed).
    failure: str = ""


class TestsRun(Event, tag="tool.tests_run"):
    __test__: ClassVar[bool] = False  # not a pytest test class

    tool: str
    round: int
    code_digest: str
    results: list[CaseResult]
    passed: int
    failed: int


class ToolAccepted(Event, tag="tool.accepted"):
    domain: str
    tool: str
    spec: ToolSpec
    digest_nested: ClassVar[bool] = True
    code: str
    code_digest: str
    rounds: int


class ToolRejected(Event, tag="tool.rejected"):
    domain: str
    tool: str
    reasons: list[str]
    rounds: int


class GraphEdgeAdded(Event, tag="graph.edge_added"):
    """An edge of the tool dependency graph: ``src`` can feed ``dst``.

    kind "data": an output field of src supplies a parameter of dst (``feeds`` lists
    (field, param) pairs); kind "state": a post-condition of src establishes part of a
    pre-condition of dst; kind "shared": src writes a table dst reads (``feeds`` names it).
    """

    domain: str
    src: str
    dst: str
    kind: Literal["data", "state", "shared"]
    feeds: list[tuple[str, str]] = []
    why: str = ""


class GraphEdgeJudged(Event, tag="graph.edge_judged"):
    """The dependency judge's verdict on a candidate edge: kept (recorded as an edge next) or dropped."""

    src: str
    dst: str
    kind: Literal["data", "state", "shared"]
    keep: bool
    reason: str


class DomainSynthesized(Event, tag="domain.synthesized"):
    """Terminal event of a domain stream: stage 1 is done for this domain."""

    domain: str
    verified: list[str]
    rejected: list[str]


class DomainFailed(Event, tag="domain.failed"):
    """The domain could not be designed (e.g. the architect never produced a valid schema)."""

    domain: str
    reason: str


SYNTH_EVENTS = (
    DomainProposed, DomainOutlined, ToolsDesigned, SchemaDerived, SchemaRejected, SchemaDefined, CodeProposed,
    CodeCheckFailed, ReviewGiven, TestCasesProposed, ToolDebugged, TestCasesRepaired, TestsRun, ToolAccepted,
    ToolRejected, GraphEdgeJudged, GraphEdgeAdded, DomainSynthesized, DomainFailed,
)
