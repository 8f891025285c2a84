"""``scaleenv replay | diff | regrade``: look back at a run, re-execute it, compare runs, re-score.

- ``replay --episode ID [--step K] [--interactive] [--llm-calls]``: an episode at step K
  (conversation, environment state with distractors marked, diff from K-1);
- ``replay --snapshot-every N``: store state snapshots of every episode (maintenance);
- ``replay --check-snapshots``: recompute every snapshot's digest chain from the start;
- ``replay --verify``: re-execute every recorded tool call in the sandbox; exit 1 on a divergence;
- ``diff LOG_A LOG_B``: per-stream digests of two runs and the first differing event;
- ``regrade``: re-score finished episodes with the current reward code; append RewardGiven where changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO


from scaleenv._cli import EXIT_FAILED, EXIT_OK, SEQ_MAX, UsageError, check_workers, described
from scaleenv._logs import get_logger

log = get_logger("scaleenv._replay")

EXAMPLES = """examples:
  scaleenv replay --log run.lmdb --episode d00/t003/g1 --step 4
  printf 'n\\nn\\np\\ng 7\\nq\\n' | scaleenv replay --log run.lmdb --episode d00/t003/g1 --interactive
  scaleenv replay --log run.lmdb --snapshot-every 16      # then seeks fold at most 16 events
  scaleenv replay --log run.lmdb --verify --json          # re-execute every tool call
  scaleenv diff a.lmdb b.lmdb
  scaleenv regrade --log run.lmdb --dry-run"""


def _dump(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _open(path: str, *, readonly: bool = True) -> Any:
    from scaleenv._store.errors import LogError
    from scaleenv._store.log import Log

    try:
        return Log.open(path, readonly=readonly, create=False)
    except LogError as exc:
        raise UsageError(str(exc)) from exc


# ------------------------------------------------------------------ replay


def _write_snapshots(args: argparse.Namespace, streams: list[str] | None) -> dict[str, Any]:
    from scaleenv._replay.snapshots import build_snapshots
    from scaleenv._store.errors import LogLocked

    try:
        event_log = _open(args.log, readonly=False)
    except UsageError as exc:
        if isinstance(exc.__cause__, LogLocked):
            log.warning("a writer holds the log; snapshots not written", log=args.log, error=str(exc.__cause__))
            return {"written": False, "reason": str(exc.__cause__)}
        raise
    with event_log:
        p = build_snapshots(event_log, args.snapshot_every, streams)
    return {"written": True, "every": args.snapshot_every, "streams": p.streams, "snapshots": p.snapshots,
            "events_folded": p.events}


def _replay(args: argparse.Namespace) -> int:
    if args.snapshot_every is not None and not 1 <= args.snapshot_every <= SEQ_MAX:
        raise UsageError(f"--snapshot-every must be in 1..2**63-1, got {args.snapshot_every}")
    if args.interactive and args.json:
        raise UsageError("--interactive steps in the terminal; use --step K with --json")
    if args.verify:
        check_workers(args.sandbox_workers, concurrency=args.concurrency)
        return _verify(args)
    if args.check_snapshots:
        return _check_snapshots(args)
    if args.episode is None:
        if args.snapshot_every is None:
            raise UsageError("say what to replay: --episode ID, --verify, --snapshot-every N or --check-snapshots")
        with _open(args.log):  # bad path -> exit 2 before taking the lock
            pass
        out = _write_snapshots(args, None)
        print(_dump(out) if args.json else
              (f"{out['snapshots']} snapshots of {out['streams']} episodes (every {out['every']} events)"
               if out["written"] else f"no snapshots written: {out['reason']}"))
        return EXIT_OK
    return _episode(args)


def _episode(args: argparse.Namespace) -> int:
    from scaleenv._replay.timeline import EpisodeReplay, UnknownEpisode, render

    from scaleenv._replay.timeline import resolve

    snap_info = None
    if args.snapshot_every is not None:
        # LMDB allows one open environment per process: resolve, close, then write.
        with _open(args.log) as event_log:
            try:
                stream = resolve(event_log, args.episode)
            except UnknownEpisode as exc:
                raise UsageError(str(exc)) from None
        snap_info = _write_snapshots(args, [stream])
    with _open(args.log) as event_log:
        try:
            replay = EpisodeReplay.load(event_log, args.episode, use_snapshots=not args.no_snapshots)
        except UnknownEpisode as exc:
            raise UsageError(str(exc)) from None
        if args.interactive:
            return _interactive(replay, args, sys.stdin, sys.stdout)
        k = replay.last_step if args.step is None else args.step
        if k < 0 or k > replay.last_step:
            raise UsageError(f"--step must be between 0 and {replay.last_step} for {replay.episode_id}")
        view = replay.at(k, llm_calls=args.llm_calls)
        if args.json:
            if snap_info is not None:
                view["snapshots"] = snap_info
            print(_dump(view))
        else:
            sys.stdout.write(render(view, replay, llm_calls=args.llm_calls))
    return EXIT_OK


INTERACTIVE_HELP = "commands: n (next step), p (previous), g K (go to step K), q (quit)"


def _interactive(replay: Any, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    from scaleenv._replay.timeline import render

    k = 0 if args.step is None else replay.clamp(args.step)

    def show() -> None:
        stdout.write(render(replay.at(k, llm_calls=args.llm_calls), replay, llm_calls=args.llm_calls))
        stdout.write(f"-- step {k}/{replay.last_step}. {INTERACTIVE_HELP}\n")
        stdout.flush()

    show()
    for line in stdin:
        cmd = line.strip().split()
        if not cmd:
            continue
        op = cmd[0].lower()
        if op in ("q", "quit"):
            break
        if op in ("n", "next"):
            k = replay.clamp(k + 1)
        elif op in ("p", "prev"):
            k = replay.clamp(k - 1)
        elif op in ("g", "goto") and len(cmd) == 2 and cmd[1].lstrip("-").isdigit():
            k = replay.clamp(int(cmd[1]))
        else:
            stdout.write(f"?? {line.strip()!r}. {INTERACTIVE_HELP}\n")
            continue
        show()
    return EXIT_OK


def _check_snapshots(args: argparse.Namespace) -> int:
    from scaleenv._replay.snapshots import check_all

    with _open(args.log) as event_log:
        problems = check_all(event_log)
    if args.json:
        print(_dump({"ok": not problems, "problems": [{"stream": p.stream, "n": p.n, "reason": p.reason} for p in problems]}))
    else:
        for p in problems:
            print(f"{p.stream}#{p.n}: {p.reason}")
        print("snapshots ok" if not problems else f"{len(problems)} bad snapshot(s)")
    return EXIT_OK if not problems else EXIT_FAILED


def _verify(args: argparse.Namespace) -> int:
    import trio

    from scaleenv._replay.verify import verify_log

    with _open(args.log) as event_log:
        report = trio.run(lambda: verify_log(event_log, workers=args.sandbox_workers, concurrency=args.concurrency))
    out = report.to_json()
    out["recorded"] = record_findings(args, report.to_check())
    if args.json:
        print(_dump(out))
    else:
        for d in report.divergences:
            print(str(d))
        for e in report.errors:
            print(f"could not verify {e['stream']}: {e['error']}")
        kinds = ", ".join(f"{v} {k}" for k, v in out["by_kind"].items())
        print(f"{report.checked} calls re-executed ({kinds}; {report.skipped} never reached the sandbox) "
              f"in {report.seconds:.2f}s ({report.calls_per_s:.0f}/s): "
              + ("no divergence" if out["ok"] else f"{len(report.divergences)} divergent stream(s)"))
    return EXIT_OK if out["ok"] else EXIT_FAILED


def record_findings(args: argparse.Namespace, check: Any) -> bool:
    """Record a check's findings in the log unless ``--no-record``; a log another process
    writes is left as it is, with a warning (the findings are still printed)."""
    from scaleenv._replay.checks import record_check

    if not args.record:
        return False
    reason = record_check(args.log, check)
    if reason is not None:
        log.warning("the findings were not recorded: the log could not be opened for writing (a writer holds it, or "
                    "it is read-only); check again once it is free, or pass --no-record", log=args.log, error=reason)
    return reason is None


# ------------------------------------------------------------------ diff


def _diff(args: argparse.Namespace) -> int:
    from scaleenv._replay.logdiff import diff_logs, render

    from pathlib import Path

    if Path(args.log_a).resolve() == Path(args.log_b).resolve():
        with _open(args.log_a) as a:  # one log against itself (LMDB allows one handle per process)
            d = diff_logs(a, a)
    else:
        with _open(args.log_a) as a, _open(args.log_b) as b:
            d = diff_logs(a, b)
    if args.json:
        print(_dump(d.to_json()))
    else:
        sys.stdout.write(render(d, args.log_a, args.log_b))
    return EXIT_OK if d.equal else EXIT_FAILED


# ------------------------------------------------------------------ regrade


def _regrade(args: argparse.Namespace) -> int:
    import trio

    from scaleenv._replay.regrade import append_rewards, changes, regrade_view
    from scaleenv._model.reward import REWARD_VERSION
    from scaleenv._store.errors import LogLocked

    with _open(args.log) as ro:
        found, checked = changes(regrade_view(ro), ro)
    appended = 0
    note = ""
    if found and not args.dry_run:
        try:
            event_log = _open(args.log, readonly=False)
        except UsageError as exc:
            if not isinstance(exc.__cause__, LogLocked):
                raise
            raise UsageError(f"{exc}; run regrade when the run has finished") from None
        with event_log:
            # Re-check under the writer lock: the log may have moved since the first read.
            found, checked = changes(regrade_view(event_log), event_log)
            appended = trio.run(append_rewards, event_log, found)
    elif found:
        note = "dry run: nothing appended"
    out = {"reward_version": REWARD_VERSION, "episodes_checked": checked, "changed": len(found),
           "appended": appended, "episodes": [g.to_json() for g in found]}
    if args.json:
        print(_dump(out))
    else:
        for g in found:
            print(f"{g.episode}: {'; '.join(g.reasons)}")
        print(f"{checked} finished episodes re-scored with {REWARD_VERSION}: {len(found)} changed, "
              f"{appended} RewardGiven appended" + (f" ({note})" if note else ""))
    return EXIT_OK


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("replay", parents=[common], help="replay an episode step by step; verify a run by re-executing its tool calls",
                       description=__doc__.replace("``", ""), epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episode", metavar="ID", help="episode id, e.g. d00/t003/g1 (or episode/d00/t003/g1)")
    p.add_argument("--step", type=int, default=None, metavar="K", help="show step K (default: the last step)")
    p.add_argument("--interactive", action="store_true", help="step with n/p/g K/q lines on stdin")
    p.add_argument("--llm-calls", action="store_true", help="show the LLM calls (role, attempt) before each step")
    p.add_argument("--no-snapshots", action="store_true", help="fold from the start; ignore stored snapshots")
    p.add_argument("--snapshot-every", type=int, default=None, metavar="N",
                   help="store a state snapshot every N events of each episode (needs the log not held by a writer)")
    p.add_argument("--check-snapshots", action="store_true", help="recompute every snapshot's digest chain")
    p.add_argument("--verify", action="store_true", help="re-execute every recorded tool call in the sandbox and compare")
    p.add_argument("--sandbox-workers", type=int, default=2, help="sandbox worker processes for --verify (default 2)")
    p.add_argument("--concurrency", type=int, default=16, help="streams verified at once (default 16)")
    p.add_argument("--record", action=argparse.BooleanOptionalAction, default=True,
                   help="--verify records what it found in the log's check/verify stream, which `scaleenv ui` "
                        "shows on the episode pages (default; needs the log not held by a writer, else a warning). "
                        "--no-record only reads the log")
    p.set_defaults(handler=_replay)

    d = sub.add_parser("diff", parents=[common], help="compare two runs stream by stream; exit 1 if they differ",
                       **described("Compare two logs stream by stream: per-stream digests, and the first differing "
                                   "event of each differing stream. Exit 1 if they differ.",
                                   "  scaleenv diff a.lmdb b.lmdb\n"
                                   "  scaleenv diff a.lmdb b.lmdb --json     # one JSON object"))
    d.add_argument("log_a", metavar="LOG_A")
    d.add_argument("log_b", metavar="LOG_B")
    d.set_defaults(handler=_diff)

    g = sub.add_parser("regrade", parents=[common], help="re-score finished episodes with the current reward code",
                       **described("Re-score finished episodes with the current reward code; append a RewardGiven "
                                   "to each whose score or reward version changed (needs the log not held by a writer).",
                                   "  scaleenv regrade --log run.lmdb --dry-run   # list what would change\n"
                                   "  scaleenv regrade --log run.lmdb"))
    g.add_argument("--dry-run", action="store_true", help="list the changes; append nothing")
    g.set_defaults(handler=_regrade)
