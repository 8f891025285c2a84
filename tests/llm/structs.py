"""Output types the LLM tests ask for."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from scaleenv._store.events.episodes import ToolCallRequest


class Address(msgspec.Struct, frozen=True):
    city: str
    zip_code: Annotated[str, msgspec.Meta(min_length=5, max_length=5)]


class Person(msgspec.Struct, frozen=True):
    name: str
    age: Annotated[int, msgspec.Meta(ge=0, le=120)]
    email: str | None
    tags: list[str]
    address: Address
    kind: Literal["customer", "agent"]
    score: float


class Plan(msgspec.Struct, frozen=True):
    steps: list[str]
    done: bool
    notes: dict[str, int] = {}
    priority: int | None = None


class Pair(msgspec.Struct, frozen=True):
    """All fields required: any dropped field or wrong type is a schema violation."""

    label: str
    count: int


class PolicyTurn(msgspec.Struct, frozen=True):
    """The rollout policy's output shape: a message and/or tool calls."""

    content: str = ""
    tool_calls: list[ToolCallRequest] = []


class Tiny(msgspec.Struct, frozen=True):
    """Bounded fields only, so even a model with random weights ends within a few tokens."""

    name: Annotated[str, msgspec.Meta(max_length=8)]
    kind: Literal["a", "b"]
    ok: bool
    tags: Annotated[list[Literal["x", "y"]], msgspec.Meta(max_length=3)]
