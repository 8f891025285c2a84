"""The data a synthesized environment is made of: database schema, tool schemas, contracts.

These Structs are what the architect role produces (and what the LLM is constrained to
emit), what events carry, and what every later stage reads. They are plain data: the
rules that check them live in ``scaleenv.model.specs_check`` and the contract evaluator in
``scaleenv.model.contracts``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

FieldType = Literal["str", "int", "float", "bool", "list[str]"]

# A JSON scalar as it may appear in a record or a contract literal.
Scalar = str | int | float | bool | None

# Table name -> record key -> record (field -> value). Keys are always strings.
DbState = dict[str, dict[str, dict[str, Any]]]


class FieldSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One column of a table, or one field of a tool's return value."""

    name: str
    type: FieldType
    description: str = ""
    # Foreign key: the name of the table whose primary key this field holds.
    ref: str | None = None
    # The closed set of values this field may take (statuses, tiers, categories).
    enum: list[str] | None = None


class TableSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    description: str
    primary_key: str
    fields: list[FieldSpec]

    def field(self, name: str) -> FieldSpec | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


class ParamSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    type: FieldType
    description: str
    required: bool = True
    # The table whose primary key this parameter holds, when it names a record.
    ref: str | None = None


ConditionOp = Literal[
    "exists",        # left is a record path: table[key]
    "absent",        # left is a record path that must not exist
    "eq", "ne",      # left == / != right
    "in", "not_in",  # left in / not in a literal list (right)
    "ge", "gt", "le", "lt",
    "increases_by",  # post only: left after == left before + right (right read before the call)
    "decreases_by",  # post only: left after == left before - right
    "unchanged",     # post only: left after == left before
    "some_eq",       # some record has left (table[*].field) == right: a lookup that must find something
    "none_eq",       # no record has left (table[*].field) == right: e.g. an email not yet taken
]


class Condition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One pre- or post-condition of a tool, as data the engine evaluates.

    Terms are strings in a tiny grammar (parsed by ``scaleenv.model.contracts``):
    ``$param`` (an argument), ``$result.field`` (a field of the tool's return value, in
    post-conditions), ``table[TERM]`` (a record), ``table[TERM].field`` (a field of a
    record), ``table[*].field`` (that field of every record, with some_eq/none_eq), or a
    JSON literal (``"cancelled"``, ``3``, ``true``).
    Examples: ``exists orders[$order_id]``,
    ``orders[$order_id].status in ["pending", "processing"]``,
    ``after: users[orders[$order_id].user_id].balance increases_by orders[$order_id].total``,
    ``some customers[*].email == $email``, ``after: orders[$result.order_id].status == "pending"``.
    """

    when: Literal["pre", "post"]
    op: ConditionOp
    left: str
    right: str | list[Scalar] | None = None
    # A short human explanation (shown in errors and audits).
    why: str = ""


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    description: str
    params: list[ParamSpec]
    returns: list[FieldSpec]
    # True when the tool returns a list of objects with the ``returns`` fields.
    returns_list: bool = False
    reads: list[str]
    writes: list[str]
    mutates: bool
    contract: list[Condition] = []

    def param(self, name: str) -> ParamSpec | None:
        for p in self.params:
            if p.name == name:
                return p
        return None


class DomainSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A domain's whole design: what the architect role returns."""

    name: str
    description: str
    tables: list[TableSpec]
    tools: list[ToolSpec]

    def table(self, name: str) -> TableSpec | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None

    def tool(self, name: str) -> ToolSpec | None:
        for t in self.tools:
            if t.name == name:
                return t
        return None
