"""``scaleenv rerun``: re-run every agent against a log's recorded model outputs and compare.

The agents (architect, coder, tester, task writer, user, policy...) run again from the
top in "verify" mode: every event they emit is compared with the recorded one at the
same stream position, nothing is appended, and the first divergence of each stream is
reported as Temporal reports non-determinism (stream, position, expected, got).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import trio

from scaleenv._cli import EXIT_FAILED, EXIT_OK, check_workers, described
from scaleenv._errors import UsageError
from scaleenv._cli.replay import record_findings
from scaleenv._cli.run import raise_for_cli
from scaleenv._replay.checks import CheckReport, rerun_divergence
from scaleenv._runner import EngineOptions, open_verify, rollouts, stage1, stage2
from scaleenv._streams import EPISODE, is_check, is_served


def _served(stream: str) -> bool:
    return stream.startswith(EPISODE) and is_served(stream)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    check_workers(args.sandbox_workers, concurrency=args.concurrency)
    if not Path(args.log).exists():
        raise UsageError(f"no log at {args.log}")
    options = EngineOptions(
        llm=args.llm or f"recorded:{args.log}", model=args.model, concurrency=args.concurrency,
        llm_concurrency=args.concurrency, sandbox_workers=args.sandbox_workers, progress=not args.quiet,
    )

    async def main() -> tuple[dict[str, Any], CheckReport]:
        async with open_verify(args.log, options) as ctx:
            for stage in (stage1, stage2, rollouts):
                await stage(ctx)
            # Episodes served to an outside policy cannot be re-run (the policy is not ours);
            # `scaleenv replay --verify` re-executes their tool calls instead.
            recorded = {s: n for s, n in ctx.log.streams() if not _served(s) and not is_check(s)}
            ran = {s.id for s in ctx.streams_run}
            checked = sum(s.next_n for s in ctx.streams_run)
            first = sorted(ctx.divergences, key=lambda d: (d.stream, d.n))
            return {
                "divergences": len(first),
                "checked": checked,
                "streams_checked": len(ran),
                "streams_not_rerun": sorted(set(recorded) - ran)[:50],
                "first": [{"stream": d.stream, "n": d.n, "detail": str(d)} for d in first[:50]],
            }, CheckReport(checker="rerun", divergences=[rerun_divergence(d) for d in first], streams=len(ran),
                           checked=checked)

    try:
        result, check = trio.run(main)
    except Exception as exc:  # noqa: BLE001 - as `scaleenv run` sorts them
        raise_for_cli(exc)
    result["recorded"] = record_findings(args, check)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for d in result["first"]:
            print(f"DIVERGENCE {d['detail']}\n")
        print(f"checked {result['checked']} events in {result['streams_checked']} streams: "
              f"{result['divergences']} divergence(s)"
              + (f"; {len(result['streams_not_rerun'])} recorded streams were not re-run" if result["streams_not_rerun"] else ""))
    return EXIT_FAILED if result["divergences"] or result["streams_not_rerun"] else EXIT_OK


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "rerun", parents=[common],
        help="re-run the agents against a log's recorded model outputs; report the first divergence per stream",
        **described(__doc__ or "", "  scaleenv rerun --log run.lmdb\n"
                                   "  scaleenv rerun --log run.lmdb --json       # the divergences as one JSON object"),
    )
    p.add_argument("--llm", default=None, help="backend for requests the log does not hold (default: recorded:<the log>)")
    p.add_argument("--model", default=None)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--sandbox-workers", type=int, default=2)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--record", action=argparse.BooleanOptionalAction, default=True,
                   help="record the divergences found in the log's check/rerun stream, which `scaleenv ui` shows on "
                        "the episode pages (default; needs the log not held by a writer, else a warning). "
                        "--no-record only reads the log")
    p.set_defaults(handler=handle)
