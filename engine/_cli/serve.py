"""``scaleenv serve`` and ``scaleenv serve-mcp``: a run's environments for an outside policy.

``serve`` puts every kept task of the log behind an HTTP/1.1 JSON API (an RL trainer
opens episodes, calls tools, talks to the simulated user, ends and gets the reward;
GET /openapi.json describes it); ``serve-mcp`` serves episodes as MCP servers (one over
stdio, any number over streamable HTTP). Either way every call is an event in the log,
in an ``episode/<task>/s<k>`` stream, so served episodes replay, verify and export like
local ones. The simulated user runs on ``--llm`` (default sim).

Listening on anything but a loopback address needs a token (--token or SCALEENV_TOKEN);
each episode belongs to the token that opened it.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import Any

from scaleenv._cli import EXIT_OK, UsageError, check_workers, described
from scaleenv._cli.netopts import add_network_options, network_setup

EXAMPLES = """examples:
  scaleenv run --log envs.lmdb --seed 1
  export SCALEENV_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
  scaleenv serve --log envs.lmdb --port 8100
  curl -s localhost:8100/v1/tasks -H "Authorization: Bearer $SCALEENV_TOKEN"
  curl -s -XPOST localhost:8100/v1/episodes -H "Authorization: Bearer $SCALEENV_TOKEN" -d '{"task_id": "d00/t001"}'
      # -> "episode_id": "d00/t001/s0-<capability>"; use it as E below
  curl -s -XPOST localhost:8100/v1/episodes/$E/tool -H "Authorization: Bearer $SCALEENV_TOKEN" \
       -d '{"name": "get_attendee", "arguments": {"attendee_id": "a1"}}'
  curl -s -XPOST localhost:8100/v1/episodes/$E/message -H "Authorization: Bearer $SCALEENV_TOKEN" -d '{"content": "Done."}'
  curl -s -XPOST localhost:8100/v1/episodes/$E/end -H "Authorization: Bearer $SCALEENV_TOKEN"
  scaleenv export --log envs.lmdb --out episodes.jsonl    # (after stopping the server) served episodes too"""


def _engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the simulated user and the engine")
    g.add_argument("--llm", default="sim", help="backend of the simulated user: sim (default), openai:URL, vllm:URL, ...")
    g.add_argument("--model", default=None, help="model name for openai:/vllm: backends")
    g.add_argument("--noise", type=float, default=None, help="sim only: mistake rate of the simulated user, 0..1")
    g.add_argument("--latency", action="store_true", help="sim only: sleep like real inference")
    g.add_argument("--llm-concurrency", type=int, default=64, help="model calls in flight (default 64)")
    g.add_argument("--sandbox-workers", type=int, default=2, help="sandbox worker processes (default 2)")
    g.add_argument("--no-sync", action="store_true", help="do not fsync each commit (faster; an OS crash may lose the last ones)")
    g.add_argument("--idle-timeout", type=float, default=600.0,
                   help="end an episode nobody has touched for this many seconds (reason timeout; default 600)")


def _options(args: argparse.Namespace) -> Any:
    from scaleenv._runner import EngineOptions

    if args.noise is not None and not 0 <= args.noise <= 1:
        raise UsageError("--noise must be between 0 and 1")
    check_workers(args.sandbox_workers, llm_concurrency=args.llm_concurrency)
    if args.idle_timeout <= 0:
        raise UsageError("--idle-timeout must be positive")
    return EngineOptions(llm=args.llm, model=args.model, noise=args.noise, latency=args.latency,
                         llm_concurrency=args.llm_concurrency, sandbox_workers=args.sandbox_workers,
                         sync=not args.no_sync, progress=False)


def _listen_error(group: BaseException, host: str, port: int) -> None:
    if isinstance(group, BaseExceptionGroup):
        failed = group.subgroup(lambda e: isinstance(e, OSError))
        if failed is None:
            raise group
        exc: BaseException = failed
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
    else:
        exc = group
    raise UsageError(f"cannot listen on {host}:{port}: {exc}") from exc


async def _stop_on_signal(scope: Any) -> None:
    """SIGINT/SIGTERM stop the server cleanly: open episodes are ended and recorded first."""
    import signal

    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            sys.stderr.write(f"scaleenv: {signal.Signals(signum).name}: ending open episodes and stopping\n")
            scope.cancel()
            return


def _serve(args: argparse.Namespace) -> int:
    import trio

    from scaleenv._serve.http import serve_environments
    from scaleenv._serve.environments import open_environments

    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if args.max_episodes < 1:
        raise UsageError("--max-episodes must be at least 1")
    net = network_setup(args, "scaleenv serve")
    options = _options(args)

    async def main() -> None:
        async with open_environments(args.log, options, idle_timeout=args.idle_timeout, max_open=args.max_episodes,
                                     limits=net.limits) as envs:
            if not envs.kept_tasks():
                raise UsageError(f"{args.log} holds no kept task to serve (run: scaleenv run --log {args.log})")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
                port = await nursery.start(partial(serve_environments, envs, args.host, args.port, auth=net.auth,
                                                   limits=net.limits, ssl_context=net.ssl_context))
                tasks = len(envs.kept_tasks())
                url = f"{net.scheme}://{_url_host(args.host)}:{port}/v1"
                if args.json:
                    print(json.dumps({"url": url, "port": port, "tasks": tasks, "auth": net.auth.required,
                                      "tls": net.ssl_context is not None}), flush=True)
                net.announce()
                sys.stderr.write(f"scaleenv serve: {tasks} tasks of {args.log} at {url} ({net.auth.describe()}; "
                                 "GET /v1/tasks; POST /v1/episodes; GET /openapi.json)\n")
                sys.stderr.flush()

    try:
        trio.run(main)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except (OSError, BaseExceptionGroup) as group:
        _listen_error(group, args.host, args.port)
    return EXIT_OK


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _serve_mcp(args: argparse.Namespace) -> int:
    import trio

    try:
        from scaleenv._serve import mcp as serve_mcp
    except ImportError as exc:
        raise UsageError(f"serve-mcp needs the mcp extra: pip install 'scaleenv[mcp]' ({exc})") from None
    from scaleenv._serve.environments import ServeError, open_environments

    if args.transport == "stdio" and args.task is None:
        raise UsageError("serve-mcp --transport stdio needs --task (the one episode it serves)")
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    net = network_setup(args, "scaleenv serve-mcp") if args.transport == "http" else None
    options = _options(args)

    async def main() -> Any:
        async with open_environments(args.log, options, idle_timeout=args.idle_timeout,
                                     limits=net.limits if net else None) as envs:
            try:
                if args.transport == "stdio":
                    return await serve_mcp.serve_mcp_stdio(envs, args.task)
                assert net is not None
                if args.task is not None:
                    envs.task_json(args.task)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
                    binds = await nursery.start(partial(
                        serve_mcp.serve_mcp_http, envs, args.host, args.port, task_id=args.task, auth=net.auth,
                        limits=net.limits, certfile=net.certfile, keyfile=net.keyfile))
                    if args.json:
                        print(json.dumps({"url": f"{binds[0]}/mcp", "auth": net.auth.required,
                                          "tls": net.certfile is not None}), flush=True)
                    net.announce()
                    sys.stderr.write(f"scaleenv serve-mcp: {binds[0]}/mcp ({net.auth.describe()}; open_episode there "
                                     "answers each episode's endpoint, /mcp/episodes/<id>)\n")
                    sys.stderr.flush()
                return None
            except ServeError as exc:
                raise UsageError(exc.message) from None

    try:
        result = trio.run(main)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except (OSError, BaseExceptionGroup) as group:
        if isinstance(group, BaseExceptionGroup) and group.subgroup(lambda e: isinstance(e, UsageError)) is not None:
            raise
        _listen_error(group, args.host, args.port)
    if result is not None:
        sys.stderr.write(f"scaleenv serve-mcp: {result['episode_id']} ended ({result['reason']}), reward {result['reward']}\n")
    return EXIT_OK


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve", parents=[common], help="serve the run's environments over HTTP to an external policy (RL trainer)",
        description=(__doc__ or "").replace("``", ""), epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8100, help="port to bind; 0 picks a free one (default %(default)s)")
    p.add_argument("--max-episodes", type=int, default=1024, help="episodes open at once (default 1024; more get 429)")
    add_network_options(p)
    _engine_options(p)
    p.set_defaults(handler=_serve)

    m = sub.add_parser(
        "serve-mcp", parents=[common], help="serve episodes as MCP servers (one over stdio, many over streamable HTTP)",
        **described("Expose an episode's tools as MCP tools, plus talk_to_user (the simulated user replies) and "
                    "end_episode (the reward). stdio: one episode of --task. http: the control endpoint /mcp has "
                    "list_tasks and open_episode; each episode is served at /mcp/episodes/<id>, any number at once. "
                    "Needs: pip install 'scaleenv[mcp]'.",
                    "  scaleenv serve-mcp --log envs.lmdb --task d00/t003              # one episode over stdio\n"
                    "  scaleenv serve-mcp --log envs.lmdb --transport http --port 8101  # many, over HTTP"),
    )
    m.add_argument("--task", default=None, metavar="ID",
                   help="kept task id, e.g. d00/t003 (stdio: required; http: what open_episode opens when not told)")
    m.add_argument("--transport", choices=["stdio", "http"], default="stdio", help="MCP transport (default stdio)")
    m.add_argument("--host", default="127.0.0.1", help="http transport: address to bind (default %(default)s)")
    m.add_argument("--port", type=int, default=8101, help="http transport: port (default %(default)s)")
    add_network_options(m)
    _engine_options(m)
    m.set_defaults(handler=_serve_mcp)
