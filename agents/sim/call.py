"""What a role simulator is given (:class:`SimCall`), the noise and latency models, and the
registry of role simulators (:func:`register_role`).

Role simulators import this module and register themselves; the backend imports the
role simulators (:mod:`scaleenv._agents.sim.roles`) and dispatches to them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import attrs
import msgspec

from .schema_instance import instance


class NoiseModel(msgspec.Struct, frozen=True, kw_only=True):
    """Rates of the sim's failures (0 disables each)."""

    malformed: float = 0.03
    schema_violation: float = 0.03
    # Role-level mistakes, each role interprets it (a bug in code, a wrong record picked).
    mistakes: float = 0.15

    @classmethod
    def off(cls) -> NoiseModel:
        return cls(malformed=0.0, schema_violation=0.0, mistakes=0.0)


class LatencyModel(msgspec.Struct, frozen=True, kw_only=True):
    """Log-normal latency per call: median ``base_s + per_token_s * tokens``, spread ``sigma``."""

    enabled: bool = False
    base_s: float = 0.05
    per_token_s: float = 0.0005
    sigma: float = 0.3

    def sample(self, rng: random.Random, tokens: int) -> float:
        if not self.enabled:
            return 0.0
        median = self.base_s + self.per_token_s * tokens
        return median * math.exp(rng.gauss(0.0, self.sigma))


@attrs.define
class SimCall:
    """Everything a role simulator may look at, and its seeded randomness."""

    role: str
    context: dict[str, Any]
    schema: dict[str, Any]
    schema_name: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    attempt: int
    rng: random.Random
    noise: NoiseModel

    def mistake(self, scale: float = 1.0) -> bool:
        """Whether to make a role-level mistake this time (rate ``noise.mistakes * scale``)."""
        return self.rng.random() < self.noise.mistakes * scale

    def schema_instance(self) -> Any:
        return instance(self.schema, self.rng)


RoleSimulator = Callable[[SimCall], Any]
_ROLES: dict[str, RoleSimulator] = {}
_ROLE_OF_ANSWER: dict[str, str] = {}


def register_role(name: str, answers: str | tuple[str, ...] | None = None) -> Callable[[RoleSimulator], RoleSimulator]:
    """Register a role simulator for role ``name``; ``answers`` names the output type the role
    answers with (a schema name, e.g. ``"CodeAnswer"``), so that a request that names no role
    (one over HTTP from any client) is answered by the role that type belongs to."""
    def deco(fn: RoleSimulator) -> RoleSimulator:
        _ROLES[name] = fn
        for answer in (answers,) if isinstance(answers, str) else (answers or ()):
            _ROLE_OF_ANSWER[answer] = name
        return fn

    return deco


def registered_roles() -> dict[str, RoleSimulator]:
    """Every role simulator registered so far, by role name."""
    return dict(_ROLES)


def answer_types() -> dict[str, str]:
    """The output type each registered role answers with: schema name -> role."""
    return dict(_ROLE_OF_ANSWER)


def role_of_request(schema_name: str, tools: Any) -> str:
    """The role a request is for when it does not say: offered tools mean the policy (as for
    any chat model with tools); otherwise the role whose answers have the requested type
    ("" when no registered role does: the sim then answers with an instance of the schema)."""
    if tools:
        return "policy"
    return _ROLE_OF_ANSWER.get(schema_name, "")
