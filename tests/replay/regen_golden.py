"""Regenerate the golden logs in tests/replay/golden (run on purpose, review the diff).

    .venv/bin/python tests/replay/regen_golden.py

Runs the sim pipeline at a fixed seed (1 domain, 2 tasks, 2 episodes per task) and dumps
the log as JSON lines (golden/run.<newest generation>.jsonl; add a generation to
goldens.GENERATIONS first when older logs must keep folding as they did). Each stage's golden log is the prefix of it
that the log held when the stage ended (its line count is in expected.json: one file,
no duplication). Every prefix is reloaded into a fresh LMDB log to prove the round trip
keeps every digest, and golden/expected.json is written.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scaleenv._replay.logcopy import dump_jsonl  # noqa: E402
from scaleenv._config import RunConfig  # noqa: E402
from scaleenv._runner import EngineOptions, open_run, rollouts, stage1, stage2  # noqa: E402
from scaleenv._store.log import Log  # noqa: E402
from tests.replay.goldens import CONFIG, EXPECTED, GOLDEN_DIR, GOLDEN_LOG, STAGES, expected_of, load_prefix  # noqa: E402


def main() -> int:
    GOLDEN_DIR.mkdir(exist_ok=True)
    expected: dict[str, object] = {"config": CONFIG}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "run.lmdb")
        config = RunConfig(**CONFIG)
        options = EngineOptions(progress=False, sync=False, concurrency=4)

        ends: dict[str, int] = {}

        async def run() -> None:
            async with open_run(path, config, options) as ctx:
                for name, stage in zip(STAGES, (stage1, stage2, rollouts)):
                    await stage(ctx)
                    ends[name] = ctx.log.last_seq()

        trio.run(run)
        with Log.open(path, readonly=True) as lg:
            # Within a stage, trio's interleaving of streams varies from run to run: sort each
            # stage's records by (stream, n) so the file is byte-stable (digests are per stream).
            records = list(lg.read())
            ordered = []
            start = 0
            for name in STAGES:
                ordered += sorted(records[start:ends[name]], key=lambda r: (r.stream, r.n))
                start = ends[name]
            dump_jsonl(ordered, GOLDEN_LOG, stable=True)
        for name in STAGES:
            dest = Path(tmp) / f"reload-{name}.lmdb"
            load_prefix(GOLDEN_LOG, ends[name], dest)
            with Log.open(dest, readonly=True) as lg:
                exp = expected_of(lg)
            exp["lines"] = ends[name]
            expected[name] = exp
            print(f"{name}: {exp['events']} events, {len(exp['stream_digests'])} streams", file=sys.stderr)
        print(f"{GOLDEN_LOG}: {GOLDEN_LOG.stat().st_size} bytes", file=sys.stderr)
        with Log.open(path, readonly=True) as lg:
            live = expected_of(lg)
        last = expected[STAGES[-1]]
        assert isinstance(last, dict) and last["stream_digests"] == live["stream_digests"], "JSON round trip changed a digest"
    EXPECTED.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
