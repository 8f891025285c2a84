"""``scaleenv ui``: a read-only web app over a run's log, following it live while a run writes it.

Who may read it follows the other servers' rule (:mod:`scaleenv._cli.netopts`): tokens from
``--token``/``SCALEENV_TOKEN``, no network address without one unless ``--insecure``, TLS
with ``--tls-cert``/``--tls-key``; a browser logs in once at ``/login`` (:mod:`scaleenv._ui.gate`)."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

from scaleenv._cli import EXIT_OK, UsageError
from scaleenv._cli.netopts import add_auth_options, network_setup

EXAMPLES = """examples:
  scaleenv ui --log run.lmdb                     # then open http://127.0.0.1:8300/
  scaleenv run --log run.lmdb --seed 1 & scaleenv ui --log run.lmdb   # watch a run as it writes
  scaleenv ui --log run.lmdb --port 0 --json     # any free port; prints {"url": ...} once listening
  curl -s 127.0.0.1:8300/api/run                 # every page's data as JSON under /api/...
  export SCALEENV_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
  scaleenv ui --log run.lmdb --host 0.0.0.0      # from elsewhere: a browser logs in at /login with the token
  curl -s -H "Authorization: Bearer $SCALEENV_TOKEN" http://HOST:8300/api/run"""


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

    from scaleenv._store.errors import LogError
    from scaleenv._store.log import Log
    from scaleenv._ui.app import serve_ui
    from scaleenv._ui.gate import Gate

    from scaleenv._cli.serve import _listen_error

    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    net = network_setup(args, "scaleenv ui")  # before the log is opened: a refused start touches nothing
    gate = Gate(net.auth, secure=net.ssl_context is not None) if net.auth.required else None
    if not Path(args.log).exists():
        raise UsageError(f"no log at {args.log} (pass --log PATH; a run creates one: scaleenv run --log {args.log})")
    try:
        event_log = Log.open(args.log, readonly=True, create=False)
    except LogError as exc:
        raise UsageError(str(exc)) from exc

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
            port = await nursery.start(partial(serve_ui, event_log, args.host, args.port, authorize=gate,
                                               ssl_context=net.ssl_context))
            url = f"{net.scheme}://{'[' + args.host + ']' if ':' in args.host else args.host}:{port}/"
            if args.json:
                print(json.dumps({"url": url, "port": port, "log": str(args.log), "auth": net.auth.required,
                                  "tls": net.ssl_context is not None}), flush=True)
            else:
                print(url, flush=True)
            net.announce()
            door = f"log in at {url}login with a token; " if gate is not None else ""
            sys.stderr.write(f"scaleenv ui: {args.log} at {url} ({net.auth.describe()}; {door}read-only; follows the "
                             "log live; Ctrl-C stops)\n")
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
                   help="address to listen on (default 127.0.0.1: this machine only, and only under a loopback Host "
                        "name; any other address needs --token or $SCALEENV_TOKEN, or --insecure)")
    add_auth_options(p)
    p.set_defaults(handler=_ui)
