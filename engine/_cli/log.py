"""``scaleenv log info|dump|tail|check``: look inside a run's event log.

All four open the log read-only (they work while a run is writing it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from scaleenv._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, described

_json = msgspec.json.Encoder()


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``scaleenv log ...``."""
    # `common` goes on each action (not on "log" too): argparse would otherwise let the
    # action's defaults overwrite options given before it.
    p = subparsers.add_parser(
        "log", help="inspect the event log: info, dump, tail, check",
        **described("Inspect a run's event log (read-only; safe while a run is writing it).",
                    "  scaleenv log info --log run.lmdb\n"
                    "  scaleenv log dump --log run.lmdb --stream episode/d00/t003/g1 --limit 20\n"
                    "  scaleenv log tail --log run.lmdb --until-finished\n"
                    "  scaleenv log check --log run.lmdb"),
    )
    sub = p.add_subparsers(dest="log_command", metavar="ACTION", required=True)

    info = sub.add_parser("info", parents=[common],
                          help="counts by event type and stream prefix, size, format versions",
                          **described("Count the log's events by type and by stream prefix; print its size, its "
                                      "format versions and the run's configuration.",
                                      "  scaleenv log info --log run.lmdb\n"
                                      "  scaleenv log info --log run.lmdb --prefix-depth 2 --json"))
    info.add_argument("--prefix-depth", type=int, default=1, metavar="K",
                      help="group streams by their first K '/'-separated parts (default %(default)s)")
    info.set_defaults(handler=_info)

    dump = sub.add_parser("dump", parents=[common], help="print events as JSON lines",
                          **described("Print stored events as JSON lines (seq, stream, n, cause, actor, type, "
                                      "event), in global order or one stream's order.",
                                      "  scaleenv log dump --log run.lmdb --from 100 --limit 10\n"
                                      "  scaleenv log dump --log run.lmdb --stream episode/d00/t003/g1 --whole-calls"))
    dump.add_argument("--stream", metavar="S", help="only this stream, in stream order")
    dump.add_argument("--from", dest="from_seq", type=int, default=1, metavar="SEQ",
                      help="start at this global seq (default 1)")
    dump.add_argument("--limit", type=int, default=None, metavar="N", help="stop after N events")
    dump.add_argument("--whole-calls", action="store_true",
                      help="print each llm.called with its whole conversation, schema and offered tools (the "
                           "log stores what a call shares with earlier calls of its stream as a reference: base_n, "
                           "schema_n, tools_n)")
    dump.set_defaults(handler=_dump)

    tail = sub.add_parser("tail", parents=[common],
                          help="follow the log live, printing new events as JSON lines (Ctrl-C stops)",
                          **described("Follow the log live, printing each new event as a JSON line as soon as it "
                                      "is committed (by any process). It waits for new events until Ctrl-C, even "
                                      "when no run is writing the log (it says so on stderr); --until-finished exits "
                                      "once no process holds the log open for writing and everything is printed.",
                                      "  scaleenv log tail --log run.lmdb                       # while a run writes it\n"
                                      "  scaleenv log tail --log run.lmdb --from 1 --until-finished"))
    tail.add_argument("--from", dest="from_seq", type=int, default=None, metavar="SEQ",
                      help="start at this seq (default: only events after the current end)")
    tail.add_argument("--poll", type=float, default=0.1, metavar="SECONDS",
                      help="how often to look for new commits (default %(default)s)")
    tail.add_argument("--until-finished", action="store_true",
                      help="exit (status 0) once no process holds the log open for writing and every "
                           "event is printed; without it, tail waits for new events until Ctrl-C, "
                           "even on a finished run")
    tail.set_defaults(handler=_tail)

    check = sub.add_parser("check", parents=[common],
                           help="scan every record; list each damaged one by seq, each run of missing seqs once (exit 1 if any)",
                           **described("Scan every record and the stream index: list each damaged record by seq "
                                       "and each run of missing seqs once; exit 1 if anything is damaged. A "
                                       "truncated or otherwise damaged LMDB file is refused in one line (exit 1).",
                                       "  scaleenv log check --log run.lmdb\n"
                                       "  scaleenv log check --log run.lmdb --json"))
    check.set_defaults(handler=_check)


def _open(args: argparse.Namespace) -> Any:
    from scaleenv._store import Log, LogError

    from scaleenv._cli import UsageError

    try:
        return Log.open(args.log, readonly=True)
    except LogError as exc:
        raise UsageError(str(exc)) from exc


def _record_json(r: Any) -> bytes:
    return _json.encode({"seq": r.seq, "stream": r.stream, "n": r.n,
                         "cause": None if r.cause is None else str(r.cause), "actor": r.actor,
                         "wall_ns": r.wall_ns, "type": r.type, "event": r.event})


def _emit_line(b: bytes) -> None:
    sys.stdout.buffer.write(b + b"\n")


def _info(args: argparse.Namespace) -> int:
    from scaleenv._cli import UsageError
    from scaleenv._store import LogError

    from scaleenv._replay.checkpoint import project

    if args.prefix_depth < 1:
        raise UsageError(f"--prefix-depth must be 1 or more, got {args.prefix_depth}")
    with _open(args) as log:
        by_type: Counter[str] = Counter()
        undecodable: list[str] = []
        try:  # counts from the newest projection checkpoint and the records after it
            by_type.update(project(log, digests=False).types)
        except LogError:  # a record it cannot read: count record by record, listing those
            by_type.clear()
            for chunk in log.read_raw(1):
                for seq, raw in chunk:
                    try:
                        by_type[log.codec.decode(raw, seq).type] += 1
                    except LogError as exc:
                        by_type["<unreadable>"] += 1
                        if len(undecodable) < 20:
                            undecodable.append(str(exc))
        by_prefix: Counter[str] = Counter()
        nstreams = 0
        for sid, length in log.streams():
            nstreams += 1
            by_prefix["/".join(sid.split("/")[: args.prefix_depth])] += length
        meta = log.meta_items()
        out = {
            "path": str(log.path), "last_seq": log.last_seq(), "events": log.count(),
            "streams": nstreams, "size_bytes": log.size_on_disk(),
            "map_size": log.env.info()["map_size"],
            "format": {k.removeprefix("scaleenv."): v for k, v in meta.items()
                       if k.startswith("scaleenv.")},
            "config": {k: v for k, v in meta.items() if not k.startswith("scaleenv.")},
            "events_by_type": dict(sorted(by_type.items())),
            "events_by_stream_prefix": dict(sorted(by_prefix.items())),
            "unreadable": undecodable,
        }
    if args.json:
        print(json.dumps(out, default=str))
        return EXIT_OK
    print(f"log        {out['path']}")
    print(f"events     {out['events']} (last seq {out['last_seq']}) in {nstreams} streams")
    print(f"size       {out['size_bytes']:,} bytes on disk (map {out['map_size']:,})")
    print("format     " + ", ".join(f"{k}={v}" for k, v in out["format"].items()))
    if out["config"]:
        print("config     " + ", ".join(f"{k}={v}" for k, v in out["config"].items()))
    print("by type:")
    for k, v in out["events_by_type"].items():
        print(f"  {v:>10}  {k}")
    print("by stream prefix:")
    for k, v in out["events_by_stream_prefix"].items():
        print(f"  {v:>10}  {k}")
    for u in undecodable:
        print(f"unreadable: {u}")
    return EXIT_OK


def _dump(args: argparse.Namespace) -> int:
    import msgspec

    from scaleenv._cli import UsageError, check_seq

    from scaleenv._store import LogError
    from scaleenv._store.events.llm import CallResolver, LlmCalled, UnresolvableCall

    if args.limit is not None and args.limit < 0:
        raise UsageError(f"--limit must be 0 or more, got {args.limit}")
    check_seq("--from", args.from_seq)
    count = 0
    calls = CallResolver() if args.whole_calls else None
    with _open(args) as log:
        # Whole calls need the calls before --from: read from the start, print from --from.
        it = (log.read_stream(args.stream) if args.stream else log.read(1 if calls else args.from_seq))
        try:
            for r in it:
                if args.limit is not None and count >= args.limit:
                    break
                if calls is not None and isinstance(r.event, LlmCalled):
                    r = msgspec.structs.replace(r, event=calls.resolve(r.stream, r.n, r.event))
                if r.seq < args.from_seq:
                    continue
                _emit_line(_record_json(r))
                count += 1
                if args.limit is not None and count >= args.limit:
                    break
        except (LogError, UnresolvableCall) as exc:
            sys.stdout.flush()
            print(f"scaleenv log dump: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"error": str(exc), "exit": EXIT_FAILED}), flush=True)
            return EXIT_FAILED
    return EXIT_OK


def _tail(args: argparse.Namespace) -> int:
    import math

    import trio

    from scaleenv._cli import UsageError, check_seq

    if not (math.isfinite(args.poll) and args.poll > 0):
        raise UsageError(f"--poll must be a positive number of seconds, got {args.poll}")
    check_seq("--from", args.from_seq)
    with _open(args) as log:
        start = args.from_seq if args.from_seq is not None else log.last_seq() + 1
        if not writer_active(log.path) and not args.until_finished:
            print(f"scaleenv log tail: no process is writing {log.path}; waiting for new events "
                  "(Ctrl-C stops; --until-finished exits instead)", file=sys.stderr, flush=True)

        async def follow() -> None:
            nxt = start
            while True:
                writing = writer_active(log.path)  # before reading: what it wrote by then is read below
                for chunk in log.read_raw(nxt):
                    for seq, raw in chunk:
                        _emit_line(_record_json(log.codec.decode(raw, seq)))
                        nxt = seq + 1
                    sys.stdout.flush()
                    await trio.lowlevel.checkpoint()
                if args.until_finished and not writing:
                    return
                await trio.sleep(args.poll)

        try:
            trio.run(follow)
        except KeyboardInterrupt:
            return EXIT_OK
    return EXIT_OK


def writer_active(log_dir: Path) -> bool:
    """Whether a process holds the log's writer lock (``flock`` on ``writer.lock``), seen
    without taking it: from ``/proc/locks`` on Linux, else from the pid the writer left in
    the file (empty once it closed; a dead pid after a crash)."""
    lock = log_dir / "writer.lock"
    try:
        st = os.stat(lock)
    except OSError:
        return False
    try:
        with open("/proc/locks") as f:
            table = f.read()
    except OSError:
        try:
            pid = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            return False
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    me = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        parts = line.split()
        if "->" not in parts and len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == me:
            return True
    return False


def _check(args: argparse.Namespace) -> int:
    with _open(args) as log:
        damaged = log.check()
        last = log.last_seq()
    if args.json:
        print(json.dumps({"ok": not damaged, "last_seq": last, "damaged": [
            {"seq": d.seq, "reason": d.reason} | ({} if d.through is None else {"through": d.through})
            for d in damaged]}))
    else:
        for d in damaged:
            print(f"seq {d.seq}: {d.reason}")
        print(f"{len(damaged)} problem(s) found in the records up to seq {last}" if damaged
              else f"ok: {last} records intact")
    return EXIT_FAILED if damaged else EXIT_OK


__all__ = ["EXIT_USAGE", "register"]
