"""The ``scaleenv`` command line.

One entry point; each area registers its subcommands from its own module through a
``register(subparsers, common)`` function, so this file stays a table of contents.
Conventions (see docs/ARCHITECTURE.md): ``--log PATH`` names the run's log; ``--json``
prints exactly one JSON object on stdout; exit status 0 success, 1 the work failed or
found a problem, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import NoReturn

from scaleenv._errors import UsageError, WorkFailed, leaf_exceptions
from .logs import configure_logging

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


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
    common.add_argument("--log-level", default="warning", type=str.lower, choices=LOG_LEVELS,
                        help="diagnostic log level: %(choices)s (default: %(default)s)")
    common.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    return common


def described(text: str, examples: str) -> dict[str, object]:
    """``add_parser`` keywords for a subcommand's ``--help``: ``text`` wrapped (paragraphs
    split on blank lines, reST double backticks dropped) and an ``examples:`` block kept as written."""
    paragraphs = text.replace("``", "").strip().split("\n\n")
    body = "\n\n".join(textwrap.fill(" ".join(p.split()), 88) for p in paragraphs)
    return {"description": body, "epilog": "examples:\n" + examples.strip("\n"),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


Registrar = Callable[[argparse._SubParsersAction, argparse.ArgumentParser], None]


def _registrars() -> list[Registrar]:
    from scaleenv._cli import commands

    return commands.REGISTRARS


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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


class _Parser(argparse.ArgumentParser):
    """argparse, remembering its last usage error (``--json`` reports it as a JSON object)."""

    last_error: str | None = None

    def error(self, message: str) -> NoReturn:
        _Parser.last_error = f"{self.prog}: {message}"
        super().error(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None) and "--json" in argv:
            _print_json_error(_Parser.last_error or "bad usage", EXIT_USAGE)
        raise
    configure_logging(args.log_format, args.log_level)
    try:
        for option, value in _path_options(args):
            check_path(option, value)
        return int(args.handler(args) or 0)
    except BaseException as exc:  # noqa: BLE001 - mapped to messages and exit codes below
        return _report(args, exc)


def _path_options(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [(f"--{name}", value) for name in ("log", "out")
            if isinstance(value := getattr(args, name, None), str)]


def check_path(option: str, value: str) -> None:
    """Refuse a path the OS cannot even look up (a name longer than the filesystem allows,
    a symlink loop) or an empty one (which would mean the working directory) with a
    :class:`UsageError` naming the option."""
    if not value.strip():
        raise UsageError(f"{option} is empty: give a path")
    if "\0" in value:
        raise UsageError(f"{option} {_clip(value)!r}: a path cannot hold a NUL byte")
    try:
        os.stat(value)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise UsageError(f"{option} {_clip(value)}: {exc.strerror or exc}") from None


MAX_SANDBOX_WORKERS = 1024
"""The most sandbox worker processes an option may ask for (each is a process started at
once: a typo such as ``--sandbox-workers 100000`` would otherwise fork that many)."""


def check_workers(sandbox_workers: int, **counts: int) -> None:
    """Refuse ``--sandbox-workers`` outside 1..MAX_SANDBOX_WORKERS and any other count given
    (``concurrency=...``, named as its option) below 1, with a :class:`UsageError`."""
    if not 1 <= sandbox_workers <= MAX_SANDBOX_WORKERS:
        raise UsageError(f"--sandbox-workers must be between 1 and {MAX_SANDBOX_WORKERS}, got {_clip(str(sandbox_workers))}")
    for name, value in counts.items():
        if value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {_clip(str(value))}")


SEQ_MAX = 2**63 - 1
"""The largest event position (``seq``) an option may name."""


def check_seq(option: str, value: int | None) -> None:
    """Refuse an event position outside 0..SEQ_MAX (``--from``) with a :class:`UsageError`
    (a larger one cannot even be made into a key)."""
    if value is not None and not 0 <= value <= SEQ_MAX:
        raise UsageError(f"{option} must be an event position in 0..2**63-1, got {_clip(str(value))}")


def _clip(text: str, keep: int = 120) -> str:
    """``text`` whole when short, else its start and its end (a path's file name) and its length."""
    half = keep // 2
    return text if len(text) <= keep else f"{text[:half]}...{text[-half:]} ({len(text)} characters)"


def _print_json_error(message: str, status: int) -> None:
    import json

    sys.stdout.flush()
    print(json.dumps({"error": message, "exit": status}), flush=True)


def _report(args: argparse.Namespace, exc: BaseException) -> int:
    """Turn an error (or a trio exception group of them) into one clear line on stderr and an
    exit code; with ``--json``, also one JSON object ``{"error": ..., "exit": N}`` on stdout."""
    leaves = leaf_exceptions(exc)
    interrupted = any(isinstance(e, KeyboardInterrupt) for e in leaves)
    if not interrupted and any(isinstance(e, SystemExit) for e in leaves):
        raise exc
    if not interrupted and isinstance(leaves[0], BrokenPipeError):
        # stdout was closed early (`scaleenv log dump | head`): not an error of the work.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter flushes it at exit
        except OSError:  # pragma: no cover
            pass
        return EXIT_OK
    found = _classify(leaves, getattr(args, "log", None))
    if found is None:
        raise exc
    message, status = found
    command = " ".join(str(c) for c in (args.command, getattr(args, "log_command", None)) if c)
    print(f"scaleenv {command}: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        _print_json_error(message, status)
    return status


def _classify(leaves: list[BaseException], log_path: str | None) -> tuple[str, int] | None:
    """The message and exit status for the first leaf error, or None for a bug (re-raised)."""
    import lmdb

    from scaleenv._store.errors import LogDamaged, LogError, LogLocked, NewerLogFormat, NotALog
    from scaleenv._store.lmdbfile import from_lmdb_error

    if any(isinstance(e, KeyboardInterrupt) for e in leaves):
        return ("interrupted; everything acknowledged is in the log. "
                "Run the same command again to resume.", 130)
    first = leaves[0]
    if isinstance(first, UsageError) and isinstance(first.__cause__, LogDamaged):
        first = first.__cause__  # a damaged log is a failure (exit 1), not bad usage
    if isinstance(first, lmdb.Error):  # from a read past the open: LMDB found damaged pages
        first = from_lmdb_error(log_path or "the log", first)
    if isinstance(first, UsageError | NotALog | NewerLogFormat | LogLocked):
        return str(first), EXIT_USAGE
    known: tuple[type[BaseException], ...] = (WorkFailed, LogError)
    try:
        from scaleenv._agents.llm.errors import BackendError, RecordedDivergence
        from scaleenv._sandbox.pool import SandboxError

        known = (*known, BackendError, RecordedDivergence, SandboxError)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(first, known):
        return f"{type(first).__name__}: {first}", EXIT_FAILED
    if isinstance(first, OSError):  # the machine said no (disk full, permissions, ...): one line
        where = f": {_clip(str(first.filename))}" if first.filename is not None else ""
        bad_path = first.errno in (errno.ENAMETOOLONG, errno.ELOOP)  # a path given that cannot be looked up
        return f"{first.strerror or first}{where}", EXIT_USAGE if bad_path else EXIT_FAILED
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
