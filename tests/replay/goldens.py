"""Golden logs: small recorded runs (JSON lines) and what folding them must give.

The golden run is ``golden/run.<gen>.jsonl`` (a fixed-seed sim run, one per generation
of the pipeline); each stage's golden log is the prefix of it the log held when that
stage ended (``lines`` in expected.<gen>.json), and ``golden/expected.<gen>.json`` holds, per stage, every
stream's per-event chain digests (16 hex chars each; the last is the stream digest's
prefix), the full stream digests, the run digest and the projection digests.
JSON lines rather than LMDB files: diff-friendly in review, independent of LMDB's page
layout, and a loader rebuilds a real LMDB log from them in milliseconds.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import trio

from scaleenv._replay.digests import projection_digests
from scaleenv._replay.logcopy import append_all, read_jsonl
from scaleenv._replay.projection import fold
from scaleenv._store.log import Log
from scaleenv._store.record import StreamDigest, run_digest

GOLDEN_DIR = Path(__file__).parent / "golden"
GENERATIONS = ("v1", "v2", "v3")
"""Every golden run ever recorded (``run.<gen>.jsonl`` and ``expected.<gen>.json``). An
older generation is kept when the pipeline changes what a run records: its log must
still fold to the digests it had (old logs stay readable); regen writes the newest.
v2 is a log of format 2; v3 of format 3 (policy calls record the tools they offered),
with the answer's shape in every JSON-answer prompt."""
CURRENT = GENERATIONS[-1]


def golden_log(generation: str = CURRENT) -> Path:
    return GOLDEN_DIR / f"run.{generation}.jsonl"


def expected_path(generation: str = CURRENT) -> Path:
    return GOLDEN_DIR / f"expected.{generation}.json"


EXPECTED = expected_path()
GOLDEN_LOG = golden_log()
STAGES = ("synth", "tasks", "rollout")
SEED = 5
CONFIG = {"seed": SEED, "domains": 1, "tasks_per_domain": 2, "episodes_per_task": 2}


def expected_of(event_log: Log) -> dict[str, Any]:
    """Everything the golden test compares, computed from a log."""
    chains: dict[str, list[str]] = {}
    digests: dict[str, StreamDigest] = {}
    for r in event_log.read():
        d = digests.setdefault(r.stream, StreamDigest())
        d.update(r)
        chains.setdefault(r.stream, []).append(d.hexdigest()[:16])
    view = fold(event_log.read())
    streams = view.stream_digests()
    return {
        "events": view.events,
        "run_digest": run_digest(streams),
        "stream_digests": dict(sorted(streams.items())),
        "event_chains": dict(sorted(chains.items())),
        "projection_digests": projection_digests(view),
    }


def load_prefix(jsonl: Path, lines: int, dest: str | os.PathLike[str]) -> int:
    """Build a real LMDB log at ``dest`` from the first ``lines`` records of a dump."""
    with Log.open(dest, sync=False) as event_log:
        return trio.run(append_all, event_log, itertools.islice(read_jsonl(jsonl), lines))


def golden_points(generation: str = CURRENT) -> dict[str, int]:
    """Record counts at which the golden run is in a named state, found by event type (so a
    regenerated golden moves them with it): ``kept1``/``kept2`` just after the first/second
    ``task.kept`` (``kept2`` is the end of stage 2), ``running`` inside the first episode,
    ``ep1``..``ep4`` just after each episode's ``episode.reward`` (``ep4``: the whole log),
    ``running2`` inside the second episode."""
    tags = [(type(p.event).__struct_config__.tag, p.stream) for p in read_jsonl(golden_log(generation))]
    kept = [i + 1 for i, (t, _) in enumerate(tags) if t == "task.kept"]
    started = [i + 1 for i, (t, _) in enumerate(tags) if t == "episode.started"]
    rewards = [i + 1 for i, (t, _) in enumerate(tags) if t == "episode.reward"]
    assert len(kept) == 2 and len(started) == len(rewards) == 4 and rewards[-1] == len(tags), "the golden run's shape changed"
    return {"kept1": kept[0], "kept2": kept[1], "running": (started[0] + rewards[0]) // 2,
            "ep1": rewards[0], "running2": (started[1] + rewards[1]) // 2, "ep2": rewards[1],
            "ep3": rewards[2], "ep4": rewards[3]}
