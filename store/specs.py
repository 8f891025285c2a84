"""The data a synthesized environment is made of: database schema, tool schemas, contracts.

These Structs are what the architect role produces (and what the LLM is constrained to
emit), what events carry, and what every later stage reads. They are plain data: the
rules that check them live in ``scaleenv._model.specs_check`` and the contract evaluator in
``scaleenv._model.contracts``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec

FieldType = Literal["str", "int", "float", "bool", "list[str]"]

FieldKind = Literal[
    "id",            # a record's key or a reference to one
    "person_name",   # "Amara Okafor"
    "org_name",      # "Northwind Logistics"
    "title",         # a short name of a thing: a job title, a course, a product
    "text",          # free text: a note, a description, a review
    "email", "phone", "url", "city", "address",
    "date",          # "2024-03-15"
    "datetime",      # "2024-03-15 09:30:00"
    "money",         # an amount in the domain's currency
    "count",         # a number of things (stock, seats, attendees)
    "quantity",      # an amount asked for (units in an order)
    "rating",        # a score on a small scale (1..5)
    "percent",
    "number",        # any other number
    "code",          # an identifier people type: a SKU, a ticker, a flight number
    "label",         # a short word from an open set (a tag, a color)
    "flag",          # a yes/no
]
"""What a column's values are, beyond their type: drives the data generated for it."""

RewardPolicy = Literal["exact", "semantic", "exempt"]
"""How the reward compares a column: ``exact`` (equal, canonically: 25 == 25.0),
``semantic`` (free text that must mean the same: a deterministic text similarity) or
``exempt`` (not compared: generated ids, stamps a tool sets itself, optional extras)."""


class Evolving:
    """Mixin for spec structs that gained fields after log format 2.

    ``added`` lists ``(field, default)``; a digest leaves such a field out while it holds its
    default, so records made before it existed keep their digests (as ``Event.digest_added``).
    """

    added: ClassVar[tuple[tuple[str, object], ...]] = ()

# A JSON scalar as it may appear in a record or a contract literal.
Scalar = str | int | float | bool | None

# Table name -> record key -> record (field -> value). Keys are always strings.
DbState = dict[str, dict[str, dict[str, Any]]]


class FieldSpec(msgspec.Struct, Evolving, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One column of a table, or one field of a tool's return value (or parameter's shape)."""

    name: str
    type: FieldType
    description: str = ""
    # Foreign key: the name of the table whose primary key this field holds.
    ref: str | None = None
    # The closed set of values this field may take (statuses, tiers, categories).
    enum: list[str] | None = None
    # What the values are (drives generated data); None: inferred from the name and type.
    kind: FieldKind | None = None
    # No two records of the table share a value of this column.
    unique: bool = False
    # Every record holds a value (not null).
    required: bool = False
    # The range of a number column (inclusive), when it has one.
    minimum: float | None = None
    maximum: float | None = None
    # How the reward compares this column; None: exact.
    reward: RewardPolicy | None = None

    added: ClassVar[tuple[tuple[str, object], ...]] = (
        ("kind", None), ("unique", False), ("required", False), ("minimum", None), ("maximum", None), ("reward", None))


class TableSpec(msgspec.Struct, Evolving, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    description: str
    primary_key: str
    fields: list[FieldSpec]

    def field(self, name: str) -> FieldSpec | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


class ParamSpec(msgspec.Struct, Evolving, frozen=True, kw_only=True, forbid_unknown_fields=True):
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
    # post only, on a tool returning a list: the result lists exactly the records of the
    # table (left: table[*].field) that pass every selects_* filter of the tool; a filter
    # whose right side is an argument left out (None) does not filter.
    "selects_eq",        # field == right
    "selects_contains",  # right appears in the field's text (case-insensitive)
    "selects_ge",        # field >= right
    "selects_le",        # field <= right
]


class Condition(msgspec.Struct, Evolving, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One pre- or post-condition of a tool, as data the engine evaluates.

    Terms are strings in a tiny grammar (parsed by ``scaleenv._model.contracts``):
    ``$param`` (an argument), ``$result.field`` (a field of the tool's return value, in
    post-conditions), ``table[TERM]`` (a record), ``table[TERM].field`` (a field of a
    record), ``table[*].field`` (that field of every record, with some_eq/none_eq), or a
    JSON literal (``"cancelled"``, ``3``, ``true``).
    Examples: ``exists orders[$order_id]``,
    ``orders[$order_id].status in ["pending", "processing"]``,
    ``after: users[orders[$order_id].user_id].balance increases_by orders[$order_id].total``,
    ``some customers[*].email == $email``, ``after: orders[$result.order_id].status == "pending"``,
    ``after: books[*].category selects == $category`` (the result lists the books of that category),
    ``after: $result.count == count(orders[*].status == $status)``.
    """

    when: Literal["pre", "post"]
    op: ConditionOp
    left: str
    right: str | list[Scalar] | None = None
    # A short human explanation (shown in errors and audits).
    why: str = ""


class ToolSpec(msgspec.Struct, Evolving, frozen=True, kw_only=True, forbid_unknown_fields=True):
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


class DomainSpec(msgspec.Struct, Evolving, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A domain's whole design: its tools (the architect's) and its tables (the database agent's)."""

    name: str
    description: str
    tables: list[TableSpec]
    tools: list[ToolSpec]
    keywords: list[str] = []

    added: ClassVar[tuple[tuple[str, object], ...]] = (("keywords", []),)

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


Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
"""A snake_case identifier (tables, columns, tools, parameters, domains)."""


class PlannedEntity(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A kind of record the domain keeps (a table to be), as the outline names it."""

    name: Name
    purpose: str


class PlannedTool(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Name
    purpose: str


class ToolGroup(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A workflow or entity group of the domain and the tools it needs (designed in one round)."""

    name: Name
    purpose: str
    tools: list[PlannedTool]


class DomainOutline(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The architect's first round: the domain's entities and its tools, grouped by workflow."""

    name: Name
    description: str
    keywords: list[str]
    entities: list[PlannedEntity]
    groups: list[ToolGroup]


def drop_added(value: Any, builtins: Any) -> Any:
    """Drop from ``builtins`` (``value`` as ``msgspec.to_builtins`` gives it) every field an
    :class:`Evolving` struct inside ``value`` added and holds at its default; returns ``builtins``.

    What digests cover: data written before a field existed keeps its digest."""
    if isinstance(value, msgspec.Struct):
        for name, default in getattr(type(value), "added", ()):
            if getattr(value, name) == default:
                builtins.pop(name, None)
        for name in value.__struct_fields__:
            inner = getattr(value, name)
            if isinstance(inner, msgspec.Struct | list) and name in builtins:
                drop_added(inner, builtins[name])
    elif isinstance(value, list):
        for item, b in zip(value, builtins):
            if isinstance(item, msgspec.Struct | list):
                drop_added(item, b)
    return builtins


def spec_builtins(value: Any) -> Any:
    """``value`` as builtins without the added fields at their defaults (see :func:`drop_added`)."""
    return drop_added(value, msgspec.to_builtins(value))
