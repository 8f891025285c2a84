"""Stage 1 concurrency: with the sim's latency model on, N domains vs 1 domain.

Domains (and the tools inside each) are trio tasks, so with model latency dominating,
synthesizing N domains should take far less than N times one domain. Prints both wall
times and the ratio; `--json` prints one object on its last line.

    python bench/synth.py [--domains 8] [--base-latency 0.05] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import trio

from scaleenv.config import RunConfig
from scaleenv.runner import EngineOptions, open_run, project, stage1, summary


def synth_seconds(path: Path, domains: int, seed: int) -> tuple[float, dict]:
    options = EngineOptions(latency=True, sync=False, progress=False)

    async def main() -> dict:
        async with open_run(str(path), RunConfig(seed=seed, domains=domains), options) as ctx:
            await stage1(ctx)
            return summary(project(ctx.log))

    start = time.perf_counter()
    result = trio.run(main)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="scaleenv-bench-synth-"))
    try:
        one, r1 = synth_seconds(tmp / "one", 1, args.seed)
        many, rn = synth_seconds(tmp / "many", args.domains, args.seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    calls_one = sum(d["llm_calls"] for d in r1["domains"])
    calls_many = sum(d["llm_calls"] for d in rn["domains"])
    ratio = many / one
    print(f"1 domain:   {one:6.2f} s  ({calls_one} LLM calls, latency model on)")
    print(f"{args.domains} domains:  {many:6.2f} s  ({calls_many} LLM calls)")
    print(f"time ratio {args.domains} domains / 1 domain: {ratio:.2f}x (serial would be ~{args.domains}x;"
          f" work ratio {calls_many / max(1, calls_one):.2f}x)")
    if args.json:
        print(json.dumps({"bench": "synth", "domains": args.domains, "one_domain_s": one, "many_domains_s": many,
                          "ratio": ratio, "llm_calls_one": calls_one, "llm_calls_many": calls_many}))


if __name__ == "__main__":
    main()
