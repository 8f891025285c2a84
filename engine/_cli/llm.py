"""``scaleenv sim-server``: the offline simulated LLM behind the OpenAI chat-completions API.

Point any OpenAI-compatible client (or ``scaleenv run --llm openai:URL --model
scaleenv-sim-1``) at it; its answers are those the in-process sim gives for the same
requests. Runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from typing import TYPE_CHECKING

from scaleenv._cli import EXIT_OK, UsageError, described
from scaleenv._cli.netopts import Network, add_network_options, network_setup
from scaleenv._serve.limits import SIM_SERVER_LIMITS

if TYPE_CHECKING:
    from scaleenv._agents.sim import LatencyModel


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``scaleenv sim-server``."""
    p = subparsers.add_parser(
        "sim-server", parents=[common], help="serve the sim LLM over the OpenAI chat-completions API",
        **described("Serve the seeded sim LLM at http://HOST:PORT/v1 (POST /v1/chat/completions, "
                    "GET /v1/models). Honours response_format json_schema (strict: always schema-valid "
                    "JSON), vLLM structured_outputs, seed, tools, n and stream (server-sent events). Clients "
                    "authenticate with their API key: with --token (or SCALEENV_TOKEN) "
                    "set, the key must be one of the tokens (openai: api_key=TOKEN or OPENAI_API_KEY).",
                    "  scaleenv sim-server --port 8000\n"
                    "  scaleenv run --llm openai:http://127.0.0.1:8000/v1 --model scaleenv-sim-1   # in another shell\n"
                    "  scaleenv sim-server --replay run.lmdb --latency --latency-median 1 --latency-sigma 0.75"
                    "   # recorded answers, cheaply"),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one (default %(default)s)")
    p.add_argument("--noise", type=float, default=None,
                   help="mistake rate of the simulated roles, 0..1 (default 0.15; malformed/schema noise is 0.2x it)")
    p.add_argument("--latency", action="store_true", help="sleep like real inference (log-normal per call)")
    p.add_argument("--latency-median", type=float, default=None, metavar="SECONDS",
                   help="with --latency: median seconds per call, whatever its length (default: 0.05 s + 0.5 ms per token)")
    p.add_argument("--latency-sigma", type=float, default=None, metavar="SIGMA",
                   help="with --latency: log-normal spread (default 0.3; 0.75 gives a tail to ~10x the median)")
    p.add_argument("--unconstrained", action="store_true",
                   help="ignore response_format/structured_outputs, as a server without constrained decoding: "
                        "malformed and schema-violating answers get through (at the --noise rates)")
    p.add_argument("--model", default=None, help="model name to report (default scaleenv-sim-1)")
    p.add_argument("--replay", metavar="LOG", default=None,
                   help="serve the answers recorded in LOG (a run's log) instead of running the sim: each request "
                        "is answered by the recorded call with its seed, encoded once at start, after the "
                        "--latency sleep (a lean server for benchmarks of the engine against HTTP; no --noise, "
                        "--unconstrained, stream or n; an unrecorded request gets 404; --header-timeout and --body-timeout do not "
                        "apply)")
    add_network_options(p, limits=SIM_SERVER_LIMITS, arguments=False)
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import trio

    from scaleenv._agents.sim import LatencyModel, NoiseModel, SimBackend
    from scaleenv._serve.sim_http import SimServer, serve_sim

    if args.noise is not None and not 0 <= args.noise <= 1:
        raise UsageError("--noise must be between 0 and 1")
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if args.latency_median is not None and not args.latency_median > 0:
        raise UsageError(f"--latency-median must be a positive number of seconds, got {args.latency_median}")
    if args.latency_sigma is not None and not 0 <= args.latency_sigma <= 3:
        raise UsageError(f"--latency-sigma must be between 0 and 3, got {args.latency_sigma}")
    if (args.latency_median is not None or args.latency_sigma is not None) and not args.latency:
        raise UsageError("--latency-median and --latency-sigma need --latency")
    if args.replay is not None:
        for given, option in ((args.noise is not None, "--noise"), (args.unconstrained, "--unconstrained")):
            if given:
                raise UsageError(f"{option} does not apply to --replay (the answers are recorded)")
    net = network_setup(args, "scaleenv sim-server", limits=SIM_SERVER_LIMITS)
    noise = NoiseModel() if args.noise is None else NoiseModel(
        malformed=0.2 * args.noise, schema_violation=0.2 * args.noise, mistakes=args.noise)
    latency = LatencyModel(enabled=args.latency)
    if args.latency_median is not None:
        latency = LatencyModel(enabled=True, base_s=args.latency_median, per_token_s=0.0, sigma=latency.sigma)
    if args.latency_sigma is not None:
        latency = LatencyModel(enabled=True, base_s=latency.base_s, per_token_s=latency.per_token_s,
                               sigma=args.latency_sigma)
    if args.replay is not None:
        return _serve_replay(args, net, latency)
    sim = SimBackend(noise=noise, latency=latency)
    if args.model:
        sim.model = args.model
    server = SimServer(sim=sim, constrain=not args.unconstrained)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_sim, args.host, args.port, server=server, auth=net.auth,
                                               limits=net.limits, ssl_context=net.ssl_context))
            net.announce()
            # the one line a user needs, on stderr (stdout stays free for --json tools)
            sys.stderr.write(f"scaleenv sim-server: serving {sim.model} at {net.scheme}://{args.host}:{port}/v1 "
                             f"({net.auth.describe()})\n")
            sys.stderr.flush()

    try:
        trio.run(main)
    except ExceptionGroup as group:
        failed = group.subgroup(lambda e: isinstance(e, OSError))
        if failed is None:
            raise
        exc: BaseException = failed
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    return EXIT_OK


def _serve_replay(args: argparse.Namespace, net: Network, latency: LatencyModel) -> int:
    """``sim-server --replay LOG``: the recorded answers of LOG (:mod:`scaleenv._serve.replay_http`)."""
    import asyncio

    from scaleenv._agents.llm.recorded import read_calls
    from scaleenv._serve.replay_http import ReplayAnswers, ReplayServer, serve_replay
    from scaleenv._store.errors import LogError
    from scaleenv._store.events.llm import UnresolvableCall

    if not os.path.isfile(os.path.join(args.replay, "data.mdb")):
        raise UsageError(f"--replay {args.replay}: no log there (a log is a directory holding data.mdb)")
    try:
        calls = read_calls(args.replay)
    except (LogError, UnresolvableCall) as exc:
        raise UsageError(f"--replay {args.replay}: {exc}") from None
    if not calls:
        raise UsageError(f"--replay {args.replay}: the log records no model calls")
    table = ReplayAnswers.of(calls, latency=latency, model=args.model or "", source=args.replay)
    server = ReplayServer(table, auth=net.auth, limits=net.limits)

    def listening(port: int) -> None:
        net.announce()
        sys.stderr.write(f"scaleenv sim-server: serving {table.model} at {net.scheme}://{args.host}:{port}/v1 "
                         f"({net.auth.describe()}), replaying {len(table.answers)} answers from {args.replay}\n")
        sys.stderr.flush()

    try:
        asyncio.run(serve_replay(server, args.host, args.port, ssl_context=net.ssl_context, on_listening=listening))
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    return EXIT_OK
