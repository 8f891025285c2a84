"""scaleenv: synthesize verifiable tool-use environments from scratch (ScaleEnv) and run
agents in them, on an event-sourced trio engine.

The public API (everything else is internal and may change):

Configure and run the pipeline
    :class:`RunConfig` (what to build: the parameters that determine the events),
    :class:`EngineOptions` (how to run it: backend, concurrency; never changes a digest),
    :func:`run` (blocking: run stages on a log, get the summary),
    :func:`open_run` (async context manager: a run's context) with the stages in
    :data:`STAGES` (``synth``, ``tasks``, ``rollout``), :func:`summary`.
Read a log
    :class:`Log` (open an LMDB event log, read it, check it), :func:`fold` (records to a
    :class:`RunView`), :func:`project` (a whole log folded), :func:`projected` (the same from
    the newest checkpoint the log holds, episodes as summaries; ``lean=True`` for a planner), :func:`fold_episode` (one
    episode's events to its view: what the policy and the user saw, counts, state).
Serve environments
    :class:`Environments` and :func:`open_environments` (episodes driven step by step by an
    outside policy, as events in the log).
Export trajectories
    :func:`episode_rows` (one row per finished episode, OpenAI chat format),
    :func:`export_log` (rows to JSON lines or parquet).

Example::

    import scaleenv

    result = scaleenv.run("run.lmdb", scaleenv.RunConfig(seed=1, domains=2))
    with scaleenv.Log.open("run.lmdb", readonly=True) as log:
        view = scaleenv.fold(log.read())

Names are imported when first used, so ``import scaleenv`` stays cheap for the parts of
scaleenv that need only one subpackage (the sandbox's worker processes, the CLI).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "RunConfig": "scaleenv._config",
    "ConfigError": "scaleenv._config",
    "EngineOptions": "scaleenv._runner",
    "run": "scaleenv._runner",
    "open_run": "scaleenv._runner",
    "STAGES": "scaleenv._runner",
    "summary": "scaleenv._runner",
    "project": "scaleenv._runner",
    "Log": "scaleenv._store",
    "fold": "scaleenv._replay.projection",
    "projected": "scaleenv._replay.checkpoint",
    "RunView": "scaleenv._replay.projection",
    "fold_episode": "scaleenv._replay.episode",
    "Environments": "scaleenv._serve.environments",
    "open_environments": "scaleenv._serve.environments",
    "episode_rows": "scaleenv._replay.export",
    "export_log": "scaleenv._replay.export",
}
_RENAMED = {"fold_episode": "fold"}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from scaleenv._config import ConfigError, RunConfig
    from scaleenv._replay.episode import fold as fold_episode
    from scaleenv._replay.export import episode_rows, export_log
    from scaleenv._replay.checkpoint import projected
    from scaleenv._replay.projection import RunView, fold
    from scaleenv._runner import STAGES, EngineOptions, open_run, project, run, summary
    from scaleenv._serve.environments import Environments, open_environments
    from scaleenv._store import Log


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scaleenv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
