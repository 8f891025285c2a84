"""The run's configuration: every parameter that determines a run's events, with its range.

:class:`RunConfig` is the schema. Each field carries its valid range and its help text
(``msgspec.Meta``); the CLI's options, defaults and ``--help`` are generated from it
(:func:`fields`), and every value is checked (:func:`make`) before anything is written.

A log holds one run: its config is stored in the log's metadata when the run starts.
On a later command, :func:`reconcile` takes the stored value of every field not given,
lets the counts grow (domains, tasks per domain, episodes per task: more work on the same
run) and refuses any other difference, naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import attrs
import msgspec
from msgspec import Meta

U63 = (1 << 63) - 1


class ConfigError(ValueError):
    """A configuration value out of range, or one that differs from the log's run."""


class RunConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The parameters that determine a run's events (stored in the log's metadata)."""

    seed: Annotated[int, Meta(ge=0, le=U63, description="run seed: every stream's randomness derives from it")] = 1
    preset: Annotated[Literal["default", "paper"], Meta(
        description="the domains' briefs: default (a seeded mix of the built-in catalogue) or paper (the paper's 16)")] = "default"
    domains: Annotated[int, Meta(ge=1, le=1_000_000, description="domains to synthesize")] = 6
    min_tools: Annotated[int, Meta(ge=5, le=200, description="fewest tools a domain's brief asks for")] = 25
    max_tools: Annotated[int, Meta(ge=5, le=200, description="most tools a domain's brief asks for")] = 32
    tasks_per_domain: Annotated[int, Meta(ge=1, le=100_000, description="tasks instantiated per domain (each from a seed goal)",
                                          extra={"flags": ["--per-domain"]})] = 10
    task_counts: list[Annotated[int, Meta(ge=0, le=100_000)]] = []
    """Tasks per domain slot (the paper preset's table 8); empty: ``tasks_per_domain`` for every slot."""
    episodes_per_task: Annotated[int, Meta(ge=0, le=100_000,
                                           description="attempts per task, as RL group sampling needs")] = 4
    graph_judge: Annotated[bool, Meta(description="a judge role reviews the dependency graph's candidate edges")] = False
    max_repair_rounds: Annotated[int, Meta(ge=0, le=50, description="repair rounds before a tool is rejected",
                                           extra={"flags": ["--repair-rounds"]})] = 3
    schema_rounds: Annotated[int, Meta(ge=1, le=20, description="design rounds before a domain is given up")] = 3
    chain_min: Annotated[int, Meta(ge=1, le=64, description="shortest chain of a goal (tool calls)")] = 2
    chain_max: Annotated[int, Meta(ge=1, le=64, description="longest chain of a goal (tool calls)")] = 4
    distractors: Annotated[int, Meta(ge=0, le=1000, description="look-alike records tried per goal of a task")] = 2
    min_goals: Annotated[int, Meta(ge=1, le=32, description="fewest goals (user requests) per task")] = 4
    max_goals: Annotated[int, Meta(ge=1, le=32, description="most goals per task (beyond the fewest, the gate decides)")] = 8
    min_env_tools: Annotated[int, Meta(ge=1, le=500, description="fewest tools a task's environment supports (|H|)")] = 20
    gate_tau: Annotated[float, Meta(ge=0.0, le=1.0, description="the gate adds another goal while its p is at least this")] = 0.35
    gate_k: Annotated[int, Meta(ge=1, le=64, description=(
        "rollouts (oracle) or candidate chains (realize) that estimate the gate's feasibility g(D)"))] = 2
    gate_feasibility: Annotated[Literal["oracle", "realize"], Meta(description=(
        "the gate's feasibility g(D): oracle (success rate of an oracle policy told the solution over "
        "--gate-k rollouts on candidate goals over unused tools) or realize (share of --gate-k candidate "
        "chains that run on the state)"))] = "oracle"
    background_rows: Annotated[int, Meta(ge=0, le=100_000, description="background records per table in a task's state")] = 24
    max_turns: Annotated[int, Meta(ge=1, le=10_000, description="user turns per episode")] = 40
    max_tool_calls: Annotated[int, Meta(ge=1, le=100_000, description="tool calls per episode")] = 80
    test_rows: Annotated[int, Meta(ge=1, le=1000, description="records per table in a tool's test database")] = 4
    episode_timeout_s: Annotated[float, Meta(ge=1.0, le=86_400.0,
                                             description="wall-clock bound per episode, seconds (a safety net)")] = 300.0

    def __post_init__(self) -> None:
        if self.chain_min > self.chain_max:
            raise ConfigError(f"--chain-min {self.chain_min} is above --chain-max {self.chain_max}")
        if self.min_tools > self.max_tools:
            raise ConfigError(f"--min-tools {self.min_tools} is above --max-tools {self.max_tools}")
        if self.min_goals > self.max_goals:
            raise ConfigError(f"--min-goals {self.min_goals} is above --max-goals {self.max_goals}")

    def tasks_for(self, slot: int) -> int:
        """How many tasks domain ``slot`` gets."""
        return self.task_counts[slot] if slot < len(self.task_counts) else self.tasks_per_domain


GROWABLE = frozenset({"domains", "tasks_per_domain", "episodes_per_task"})

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {"preset": "paper", "domains": 16, "min_tools": 25, "max_tools": 70,
              "task_counts": [512, 512, 256, 256, 128, 128, 128, 128, 64, 64, 64, 64, 64, 64, 64, 64]},
}
"""What ``--preset NAME`` sets; any option given beside it wins (``--preset paper --domains 2``).
The paper preset is the paper's training mixture: its 16 domains with 25-70 tools each and
the tasks per domain of its table 8 (2,560 in all)."""


def with_preset(given: dict[str, Any]) -> dict[str, Any]:
    """``given`` with its preset's values filled in where it sets nothing itself.

    Setting ``tasks_per_domain`` replaces a preset's per-slot ``task_counts``."""
    preset = given.get("preset")
    if preset is None:
        return given
    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    values = {**PRESETS[preset], **given}
    if "tasks_per_domain" in given and "task_counts" not in given:
        values.pop("task_counts", None)
    return values
"""Counts that may grow on an existing run (more of the same work); they never shrink."""


@attrs.frozen
class Field:
    """One configuration field as the CLI shows it."""

    name: str
    type: type
    default: Any
    description: str
    ge: float | None
    le: float | None
    aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> tuple[str, ...]:
        """The option's flags: its own, then its aliases (``--repair-rounds``)."""
        return (self.flag, *self.aliases)

    def range_text(self) -> str:
        """``LO..HI`` as the user types numbers (``1..1000000``; the largest seed as ``2**63-1``)."""
        def show(v: float | None) -> str:
            if v is None:
                return ""
            if v == U63:
                return "2**63-1"
            return str(int(v)) if float(v).is_integer() else f"{v:g}"

        lo, hi = show(self.ge), show(self.le)
        return f"{lo}..{hi}" if lo or hi else ""


def fields() -> list[Field]:
    """Every field of :class:`RunConfig`, with its type, default, help and range."""
    out = []
    for f in msgspec.structs.fields(RunConfig):
        meta = next((m for m in getattr(f.type, "__metadata__", ()) if isinstance(m, Meta)), Meta())
        base = f.type.__origin__ if hasattr(f.type, "__metadata__") else f.type
        if base not in (int, float, str, bool) and getattr(base, "__origin__", None) is not Literal:
            continue  # structured fields come from presets, not options
        ge = meta.ge if meta.ge is not None else meta.gt
        aliases = tuple((meta.extra or {}).get("flags", ()))
        out.append(Field(f.name, base, f.default, meta.description or "", ge, meta.le, aliases))
    return out


def make(values: dict[str, Any]) -> RunConfig:
    """A RunConfig from ``values`` (missing fields take their defaults), every range checked.

    Raises :class:`ConfigError` naming the field, its range and the value given.
    """
    try:
        return msgspec.convert(values, RunConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, values)) from None


def _explain(exc: msgspec.ValidationError, values: dict[str, Any]) -> str:
    text = str(exc)
    name = text.rsplit("$.", 1)[-1].strip("` ") if "$." in text else ""
    spec = next((f for f in fields() if f.name == name), None)
    if spec is None:
        return text
    return f"{spec.flag} must be {spec.type.__name__} in {spec.range_text()}, got {values.get(name)!r}"


LEGACY: dict[str, Any] = {"gate_feasibility": "realize"}
"""Fields added after runs were already stored, with the value that reproduces what a run
stored without the field did (its default for new runs may differ): a resumed, verified or
served old log keeps behaving as it was made."""


def from_stored(stored: dict[str, Any]) -> RunConfig:
    """The RunConfig of a run config as stored in a log (fields it lacks: :data:`LEGACY`, then defaults).

    Raises :class:`ConfigError` naming the field if the stored values are out of range.
    """
    return make({**LEGACY, **stored})


def reconcile(stored: dict[str, Any] | None, given: dict[str, Any]) -> RunConfig:
    """The run's config for a command that sets ``given`` on a log whose run is ``stored``.

    A field not given takes the stored value (or the default on a new log); a given value
    must equal the stored one, except the counts in :data:`GROWABLE`, which may grow.
    Raises :class:`ConfigError` naming the first field that differs.
    """
    given = with_preset(given)
    if stored is None:
        return make(given)
    base = from_stored(stored)
    merged = msgspec.to_builtins(base)
    for name, value in given.items():
        old = merged.get(name)
        if value == old:
            continue
        if name in GROWABLE and value > old:
            merged[name] = value
            continue
        flag = "--" + name.replace("_", "-")
        if name in GROWABLE:
            raise ConfigError(f"{flag} {value} is below the {old} this log's run already has; "
                              "counts may grow on a run, never shrink (use another --log for a smaller run)")
        raise ConfigError(f"{flag} {value!r} differs from this log's run ({old!r}, fixed when the run began); "
                          "leave it out to keep the run's value, or use another --log")
    return make(merged)
