"""Golden logs, Temporal-style: old recorded runs must fold to the same digests forever.

A change to an event type or to a fold that breaks (or silently changes the meaning of)
old logs fails here, naming the first differing event. Regenerate on purpose with
``.venv/bin/python tests/replay/regen_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaleenv._replay.digests import projection_digests
from scaleenv._replay.projection import fold
from scaleenv._store.log import Log
from scaleenv._store.record import StreamDigest, event_digest_builtins, run_digest
from tests.replay.goldens import GENERATIONS, STAGES, expected_path, golden_log, load_prefix

EXPECT = {gen: json.loads(expected_path(gen).read_text()) for gen in GENERATIONS}


def _first_difference(lg: Log, chains: dict[str, list[str]]) -> str:
    for stream, chain in sorted(chains.items()):
        d = StreamDigest()
        for r in lg.read_stream(stream):
            d.update(r)
            if r.n >= len(chain) or d.hexdigest()[:16] != chain[r.n]:
                return (f"stream {stream!r} first differs at n={r.n} ({r.type}, actor {r.actor!r}): "
                        f"{str(event_digest_builtins(r.event))[:300]}")
        if d.count != len(chain):
            return f"stream {stream!r} has {d.count} events, the golden log {len(chain)}"
    return "(no event differs; the stream set differs)"


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("stage", STAGES)
def test_golden_log_folds_to_recorded_digests(generation: str, stage: str, tmp_path: Path) -> None:
    exp = EXPECT[generation][stage]
    load_prefix(golden_log(generation), exp["lines"], tmp_path / "log.lmdb")
    with Log.open(tmp_path / "log.lmdb", readonly=True) as lg:
        view = fold(lg.read())
        streams = view.stream_digests()
        if streams != exp["stream_digests"]:
            pytest.fail(f"{stage}: event digests changed: " + _first_difference(lg, exp["event_chains"]))
        assert run_digest(streams) == exp["run_digest"]
        assert view.events == exp["events"]
        got = projection_digests(view)
        changed = sorted(k for k in set(got) | set(exp["projection_digests"]) if got.get(k) != exp["projection_digests"].get(k))
        assert not changed, f"{stage}: the fold of the golden log changed for {changed}"


@pytest.mark.parametrize("generation", GENERATIONS)
def test_golden_stages_cover_the_pipeline(generation: str) -> None:
    kinds = [{s.split("/", 1)[0] for s in EXPECT[generation][stage]["stream_digests"]} for stage in STAGES]
    assert kinds[0] >= {"domain", "tool"} and "task" in kinds[1] and "episode" in kinds[2]
