"""The ``scaleenv`` command line.

One entry point; each area registers its subcommands from its own module through a
``register(subparsers, common)`` function, so this file stays a table of contents.
Conventions (see docs/ARCHITECTURE.md): ``--log PATH`` names the run's log; ``--json``
prints exactly one JSON object on stdout; exit status 0 success, 1 the work failed or
found a problem, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from scaleenv.errors import UsageError, WorkFailed, leaf_exceptions
from .logs import configure_logging

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def common_parser() -> argparse.ArgumentParser:
    """Options every subcommand accepts."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log", default="scaleenv.lmdb", metavar="PATH",
        help="the run's event log (an LMDB directory; default: %(default)s)",
    )
    common.add_argument(
        "--log-format", choices=["console", "json"], default="console",
        help="diagnostic logs on stderr: human-readable (default) or JSON lines",
    )
    common.add_argument("--log-level", default="warning", help="diagnostic log level (default: %(default)s)")
    common.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    return common


Registrar = Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]


def _registrars() -> list[Registrar]:
    from scaleenv.cli import commands

    return commands.REGISTRARS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaleenv",
        description=(
            "Synthesize tool-use environments from scratch (ScaleEnv) and run agents in them. "
            "Every step is an event in one LMDB log; everything else is rebuilt from it."
        ),
        epilog="Start with: scaleenv run --seed 1   (the offline sim LLM; see README.md)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = common_parser()
    for register in _registrars():
        register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    try:
        return int(args.handler(args) or 0)
    except BaseException as exc:  # noqa: BLE001 - mapped to messages and exit codes below
        return _report(args.command, exc)


def _report(command: str, exc: BaseException) -> int:
    """Turn an error (or a trio exception group of them) into one clear message and an exit code."""
    from scaleenv.store.errors import LogError, LogLocked, NewerLogFormat, NotALog

    leaves = leaf_exceptions(exc)
    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        print(f"scaleenv {command}: interrupted; everything acknowledged is in the log. "
              "Run the same command again to resume.", file=sys.stderr)
        return 130
    if any(isinstance(e, SystemExit) for e in leaves):
        raise exc
    first = leaves[0]
    if isinstance(first, UsageError | NotALog | NewerLogFormat | LogLocked):
        print(f"scaleenv {command}: {first}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(first, BrokenPipeError):
        # stdout was closed early (`scaleenv log dump | head`): not an error of the work.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter flushes it at exit
        except OSError:  # pragma: no cover
            pass
        return EXIT_OK
    known = (WorkFailed, LogError)
    try:
        from scaleenv.agents.llm.errors import BackendError, RecordedDivergence
        from scaleenv.sandbox.pool import SandboxError

        known = (*known, BackendError, RecordedDivergence, SandboxError)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(first, known):
        print(f"scaleenv {command}: {type(first).__name__}: {first}", file=sys.stderr)
        return EXIT_FAILED
    raise exc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
