"""``scaleenv run | synth | tasks | rollout``: the pipeline, whole or by stage."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, NoReturn

import trio

from scaleenv._backend_spec import BackendSpecError
from scaleenv._cli import EXIT_OK, UsageError, check_workers
from scaleenv._errors import WorkFailed, leaf_exceptions
from scaleenv._logs import get_logger
from scaleenv._distributed import distributed_domains, distributed_rollouts, distributed_tasks, ray_session
from scaleenv._shard_worker import check_shard_llm, env_name, from_env
from scaleenv._config import ConfigError, make, with_preset
from scaleenv._config import fields as config_fields
from scaleenv._runner import EngineOptions, open_run, project, rollouts, stage1, stage2, summary
from .table import render_summary

log = get_logger("scaleenv._cli.run")

STAGES = {
    "run": ("synthesize domains, instantiate tasks and run episodes: the whole pipeline", (stage1, stage2, rollouts)),
    "synth": ("stage 1: design domains, write, test and repair tools, build the tool graph", (stage1,)),
    "tasks": ("stage 2: multi-goal tasks from chain programs, environments grown to 20+ tools, each proven solvable", (stage2,)),
    "rollout": ("run episodes of a policy against the simulated user on every kept task", (rollouts,)),
}

EXAMPLES = """examples:
  scaleenv run --seed 1                         # offline, on the built-in sim LLM
  scaleenv run --seed 1 --domains 8 --json      # one JSON summary on stdout
  scaleenv run --llm openai:http://127.0.0.1:8000/v1 --model Qwen/Qwen3-8B
Running the same command again resumes from the log; finished work is not redone."""


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "what to build (determines the events; on an existing log, what is left out keeps the run's value, "
        "counts may grow and anything else must match)")
    for f in config_fields():
        rng = f.range_text()
        choices = getattr(f.type, "__args__", None) if getattr(f.type, "__origin__", None) is Literal else None
        if choices is not None:
            g.add_argument(*f.flags, dest=f.name, choices=choices, default=None,
                           help=f"{f.description} (default {f.default})")
            continue
        if f.type is bool:
            g.add_argument(*f.flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{f.description} (default {'on' if f.default else 'off'})")
            continue
        default = f"{f.default:g}" if isinstance(f.default, int | float) else str(f.default)
        g.add_argument(*f.flags, dest=f.name, type=f.type, default=None, metavar=f.type.__name__.upper(),
                       help=f"{f.description} (default {default}{'; range ' + rng if rng else ''})")
    g.add_argument("--chain-length", default=None, metavar="MIN-MAX",
                   help="seed chain length range, a shorthand for --chain-min and --chain-max (e.g. 2-4)")
    e = p.add_argument_group("how to run it (never changes a digest)")
    e.add_argument("--llm", default="sim", help="model backend: sim (default), openai:URL, vllm:URL, transformers:PATH, "
                                                "recorded:LOG, or env:NAME (the value of the environment variable NAME; "
                                                "with --ray, on each worker's node)")
    e.add_argument("--model", default=None, help="model name for openai:/vllm: backends")
    e.add_argument("--noise", type=float, default=None,
                   help="sim only: mistake rate of the simulated roles, 0..1 (default 0.15; malformed/schema noise is 0.2x it)")
    e.add_argument("--latency", action="store_true", help="sim only: sleep like real inference (log-normal per call)")
    e.add_argument("--concurrency", type=int, default=64, help="agents in flight: tools, tasks, episodes (default 64)")
    e.add_argument("--llm-concurrency", type=int, default=64, help="model calls in flight (default 64)")
    e.add_argument("--sandbox-workers", type=int, default=2, help="sandbox worker processes (default 2)")
    e.add_argument("--no-sync", action="store_true",
                   help="do not fsync each commit: faster; survives a process crash, an OS crash may lose the last commits")
    e.add_argument("--quiet", action="store_true", help="no progress on stderr")


def config_from(args: argparse.Namespace) -> dict[str, Any]:
    """The run fields this command sets (only those given), each checked against its range."""
    given = {f.name: getattr(args, f.name) for f in config_fields() if getattr(args, f.name, None) is not None}
    if args.chain_length is not None:
        try:
            lo, hi = (int(x) for x in args.chain_length.split("-"))
        except ValueError:
            raise UsageError(f"--chain-length must be MIN-MAX (e.g. 2-4), got {args.chain_length!r}") from None
        given.update(chain_min=lo, chain_max=hi)
    check_workers(args.sandbox_workers, concurrency=args.concurrency, llm_concurrency=args.llm_concurrency)
    if args.noise is not None and not 0 <= args.noise <= 1:
        raise UsageError("--noise must be between 0 and 1")
    try:
        given = with_preset(given)
        make(given)  # every range, before anything is opened or written
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    return given


def options_from(args: argparse.Namespace) -> EngineOptions:
    llm = args.llm
    if env_name(llm) is not None and getattr(args, "ray", None) is None:
        # On one machine, env:NAME is this process's variable (with --ray, each worker's node's).
        try:
            llm = from_env(llm)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return EngineOptions(
        llm=llm, model=args.model, noise=args.noise, latency=args.latency, concurrency=args.concurrency,
        llm_concurrency=args.llm_concurrency, sandbox_workers=args.sandbox_workers, sync=not args.no_sync,
        progress=not args.quiet,
    )


def add_distributed_options(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("distributed stages (never changes a digest; needs: pip install 'scaleenv[ray]')")
    d.add_argument("--ray", default=None, metavar="ADDRESS|local",
                   help="spread domains, tasks and episodes over a Ray cluster (an address such as ray://host:10001 or auto), "
                        "or 'local' to start one on this machine; shards are merged back into --log")
    d.add_argument("--shards", type=int, default=None, metavar="N",
                   help="with --ray: shards, one worker and one shard log each (default: the cluster's CPUs)")
    d.add_argument("--shard-llm", action="append", default=None, metavar="SPEC",
                   help="with --ray, repeatable: the --llm of the shards, shard k taking the (k mod count)-th "
                        "(e.g. one model server per node: --shard-llm openai:http://a:8000/v1 --shard-llm "
                        "openai:http://b:8000/v1; env:NAME reads it on each worker's node); --model applies to each. "
                        "Same model on every server: same digest")


def check_distributed_llm(args: argparse.Namespace) -> None:
    """Each ``--llm``/``--shard-llm`` value of a ``--ray`` command, checked before Ray
    starts: its form, and a ``recorded:LOG`` log is there (the driver reads it and ships
    each shard its calls). Raises :class:`UsageError` (exit 2) naming the value."""
    for spec in args.shard_llm or [args.llm]:
        try:
            check_shard_llm(spec, args.model)
        except BackendSpecError as exc:
            flag = "--shard-llm" if args.shard_llm else "--llm"
            raise UsageError(str(exc).replace("--llm", flag, 1)) from None


def handle(args: argparse.Namespace) -> int:
    config = config_from(args)
    if getattr(args, "shards", None) is not None and getattr(args, "ray", None) is None:
        raise UsageError("--shards needs --ray ADDRESS|local")
    if getattr(args, "shard_llm", None) and getattr(args, "ray", None) is None:
        raise UsageError("--shard-llm needs --ray ADDRESS|local")
    if getattr(args, "ray", None) is not None:
        check_distributed_llm(args)
        return handle_distributed(args, config, options_from(args), STAGES[args.command][1])
    try:
        options = options_from(args)
        stages = STAGES[args.command][1]

        async def main() -> dict[str, Any]:
            async with open_run(args.log, config, options) as ctx:
                for stage in stages:
                    await stage(ctx)
                return summary(project(ctx.log))

        # Ctrl-C: once the log is closed and the CLI has said so, the process ends at its
        # first exit handler, not after the interpreter has freed a large heap object by object.
        with prompt_exit_when_interrupted():
            result = trio.run(main)
    except Exception as exc:  # noqa: BLE001 - sorted into usage errors and failures, the rest re-raised
        raise_for_cli(exc)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        sys.stdout.write(render_summary(result))
    return EXIT_OK


def raise_for_cli(exc: Exception) -> NoReturn:
    """Re-raise what a run raised as the CLI should report it: the values given were bad
    (a run field out of range or differing from the log's run, an ``--llm`` value that names
    no backend) -> :class:`UsageError` (exit 2); any other ValueError is no fault of the
    command line -> :class:`WorkFailed` (exit 1, one line; its traceback is logged at debug
    level); everything else unchanged (the CLI's own classification). Looks through trio's
    exception groups to the first leaf."""
    first = leaf_exceptions(exc)[0]
    if isinstance(first, ConfigError | BackendSpecError):
        raise UsageError(str(first)) from None
    if isinstance(first, ValueError):
        log.debug("internal error", exc_info=first)
        raise WorkFailed(f"internal error, not a problem with the command line ({type(first).__name__}: {first}); "
                         "--log-level debug shows where") from first
    raise exc


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    for name, (help_text, _) in STAGES.items():
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text, epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        add_run_options(p)
        add_distributed_options(p)
        p.set_defaults(handler=handle)


EXIT_INTERRUPTED = 130


def exit_promptly(status: int) -> None:
    """Once an interrupted run has said so and returns, end the process at the first exit
    handler (stdout and stderr flushed) with ``status``, instead of waiting for the
    interpreter to free the heap (or, for ``--ray``, the 1-3 s Ray's C++ teardown takes at
    interpreter exit). By then every log is closed (and Ray disconnected, its actors
    killed). Only from the main thread (a process's own CLI run)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def now() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # closed or a broken pipe: nothing more to say there
        os._exit(status)

    atexit.register(now)


DISTRIBUTED = ((stage1, distributed_domains), (stage2, distributed_tasks), (rollouts, distributed_rollouts))
"""Each stage and how it runs over shard workers, in the pipeline's order."""


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is a Ctrl-C: a KeyboardInterrupt, bare or inside (nested) exception
    groups, as trio raises it when the signal lands inside a nursery."""
    return any(isinstance(e, KeyboardInterrupt) for e in leaf_exceptions(exc))


@contextmanager
def prompt_exit_when_interrupted() -> Iterator[None]:
    """For the block: a Ctrl-C that leaves it (bare or in an exception group) ends the
    process promptly once the CLI has reported it (:func:`exit_promptly`, status 130)."""
    try:
        yield
    except BaseException as exc:
        if interrupted(exc):
            exit_promptly(EXIT_INTERRUPTED)
        raise


def handle_distributed(args: Any, config: dict[str, Any], options: EngineOptions, stages: Sequence[Any]) -> int:
    """``scaleenv run|synth|tasks|rollout --ray ...``: every stage over the shards, one after the other."""
    if args.shards is not None and args.shards < 1:
        raise UsageError("--shards must be at least 1")
    try:
        with prompt_exit_when_interrupted():
            result: dict[str, Any] = {}
            ran: dict[str, dict[str, Any]] = {}
            with ray_session(args.ray):
                for stage, over_shards in DISTRIBUTED:
                    if stage in stages:
                        result = over_shards(args.log, config, options, shards=args.shards, executor="ray",
                                             ray_address=args.ray, shard_llms=args.shard_llm or ())
                        ran[result["distributed"]["kind"]] = result["distributed"]
            # The last stage's figures are "distributed"; every stage's also "distributed_<kind>".
            for kind, d in ran.items():
                result[f"distributed_{kind}"] = d
    except Exception as exc:  # noqa: BLE001 - as in handle()
        raise_for_cli(exc)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        sys.stdout.write(render_summary(result))
        for d in ran.values():
            m, kind = d["merge"], d["kind"]
            sys.stdout.write(
                f"distributed {kind}: {d['shards']} shards, {d[kind + '_assigned']} {kind} run "
                f"({d[kind + '_already_done']} already done); workers {d['seconds']['workers']:.1f}s, "
                f"merge {m['events_merged']} events in {m['seconds']:.2f}s\n"
            )
    return EXIT_OK
