"""``scaleenv ui``: a read-only web app over a run's log, following it live while a run writes it."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

from scaleenv.cli import EXIT_OK, UsageError

EXAMPLES = """examples:
  scaleenv ui --log run.lmdb                     # then open http://127.0.0.1:8300/
  scaleenv run --log run.lmdb --seed 1 & scaleenv ui --log run.lmdb   # watch a run as it writes
  scaleenv ui --log run.lmdb --port 0 --json     # any free port; prints {"url": ...} once listening
  curl -s 127.0.0.1:8300/api/run                 # every page's data as JSON under /api/..."""


async def _stop_on_signal(scope: Any) -> None:
    """SIGINT/SIGTERM stop the server (it holds nothing to save: it never writes)."""
    import signal

    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            sys.stderr.write(f"scaleenv ui: {signal.Signals(signum).name}: stopping\n")
            scope.cancel()
            return


def _ui(args: argparse.Namespace) -> int:
    import trio

    from scaleenv.store.errors import LogError
    from scaleenv.store.log import Log
    from scaleenv.ui.app import serve_ui

    from scaleenv.cli.serve import _listen_error

    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if not Path(args.log).exists():
        raise UsageError(f"no log at {args.log} (pass --log PATH; a run creates one: scaleenv run --log {args.log})")
    try:
        event_log = Log.open(args.log, readonly=True, create=False)
    except LogError as exc:
        raise UsageError(str(exc)) from exc

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
            # authorize=None: the hook for bearer-token auth (scaleenv.serve.auth) is wired here.
            port = await nursery.start(partial(serve_ui, event_log, args.host, args.port, authorize=None))
            url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{port}/"
            if args.json:
                print(json.dumps({"url": url, "port": port, "log": str(args.log)}), flush=True)
            else:
                print(url, flush=True)
            sys.stderr.write(f"scaleenv ui: {args.log} at {url} (read-only; follows the log live; Ctrl-C stops)\n")
            sys.stderr.flush()

    with event_log:
        try:
            trio.run(main)
        except (OSError, BaseExceptionGroup) as group:
            _listen_error(group, args.host, args.port)
    return EXIT_OK


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ui", parents=[common], help="a read-only web view of a run: domains, tool graphs, audits, tasks, episode replays",
                       description="Serve a local, read-only web app over the log: the run's figures and charts, each domain's "
                                   "schema, tools and dependency graph, each tool's audit trail, each task, and each episode "
                                   "step by step. It follows the log while a run writes it and never writes to it.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8300, help="TCP port (default 8300; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; the log's contents are not protected otherwise)")
    p.set_defaults(handler=_ui)
