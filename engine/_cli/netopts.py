"""The options every network front end takes (``serve``, ``serve-mcp``, ``sim-server``, ``ui``):
who may connect (``--token``, ``SCALEENV_TOKEN``, ``--insecure``), TLS (``--tls-cert``,
``--tls-key``) and what one request may cost (``--max-body-bytes``, ``--header-timeout``, ...).

``add_network_options(parser)`` adds them (``add_auth_options``: the first two groups
only, for ``ui``, whose server takes no limit options); ``network_setup(args, what)`` checks them and
returns a :class:`Network` (the :class:`~scaleenv._serve.auth.Auth`, the limits, the TLS
files and context, and the warning ``--insecure`` prints on every start), or raises
UsageError with one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from pathlib import Path

import attrs

from scaleenv._cli import UsageError
from scaleenv._serve.auth import TOKEN_ENV, Auth, BindRefused, check_bind, tls_context, tokens_from_env
from scaleenv._serve.limits import Limits

_DEFAULTS = Limits()
LIMIT_OPTIONS = {"max_body_bytes": "--max-body-bytes", "max_header_bytes": "--max-header-bytes",
                 "header_timeout_s": "--header-timeout", "body_timeout_s": "--body-timeout",
                 "max_argument_bytes": "--max-argument-bytes", "max_depth": "--max-depth"}
"""Each :class:`Limits` field and the option that sets it."""


@attrs.frozen
class Network:
    auth: Auth
    limits: Limits
    certfile: str | None
    keyfile: str | None
    ssl_context: ssl.SSLContext | None
    warning: str | None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    def announce(self) -> None:
        """Print the --insecure warning (every start) on stderr."""
        if self.warning:
            sys.stderr.write(f"scaleenv: {self.warning}\n")
            sys.stderr.flush()


def add_network_options(p: argparse.ArgumentParser, *, limits: Limits = _DEFAULTS, arguments: bool = True) -> None:
    """Add the auth, TLS and limit options. ``limits``: the defaults to show; ``arguments``:
    whether the tool-argument limits apply (not for sim-server)."""
    add_auth_options(p)
    lim = p.add_argument_group("what one request may cost (each refusal names its limit)")
    lim.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes,
                     help="request body size (413; default %(default)s)")
    lim.add_argument("--max-header-bytes", type=int, default=limits.max_header_bytes,
                     help="request line and headers (431; default %(default)s)")
    lim.add_argument("--header-timeout", type=float, default=limits.header_timeout_s, metavar="SECONDS",
                     help="time for a request's headers to arrive; idle connections close after it (408; default %(default)s)")
    lim.add_argument("--body-timeout", type=float, default=limits.body_timeout_s, metavar="SECONDS",
                     help="time for a request's body to arrive (408; default %(default)s)")
    if arguments:
        lim.add_argument("--max-argument-bytes", type=int, default=limits.max_argument_bytes,
                         help="one tool call's arguments as JSON text (413; default %(default)s)")
        lim.add_argument("--max-depth", type=int, default=limits.max_depth,
                         help="nesting depth of tool arguments (400; default %(default)s)")


def add_auth_options(p: argparse.ArgumentParser) -> None:
    """Add the auth and TLS options alone (``--token``, ``--insecure``, ``--tls-cert``,
    ``--tls-key``), for a server the request-limit options do not apply to (``ui``)."""
    g = p.add_argument_group("who may connect (see the README's 'auth' section)")
    g.add_argument("--token", action="append", default=[], metavar="TOKEN",
                   help=f"accept requests carrying 'Authorization: Bearer TOKEN' (repeatable: one per client). "
                        f"Also read from ${TOKEN_ENV} (commas or spaces between tokens), which keeps tokens out of "
                        "the process list. Required to listen on a non-loopback address")
    g.add_argument("--insecure", action="store_true",
                   help="listen on a non-loopback address without a token (anyone who can reach the port can use it)")
    g.add_argument("--tls-cert", metavar="PEM", default=None, help="serve HTTPS with this certificate (chain)")
    g.add_argument("--tls-key", metavar="PEM", default=None, help="the private key of --tls-cert")


def network_setup(args: argparse.Namespace, what: str, *, limits: Limits = _DEFAULTS) -> Network:
    """Check the options; UsageError (exit 2) with one line naming what is wrong."""
    try:
        auth = Auth.from_tokens([*args.token, *tokens_from_env()])
    except ValueError as exc:
        raise UsageError(f"--token/{TOKEN_ENV}: {exc}") from None
    try:
        warning = check_bind(args.host, auth, insecure=args.insecure, what=what)
    except BindRefused as exc:
        raise UsageError(str(exc)) from None
    chosen = {field: getattr(args, option.removeprefix("--").replace("-", "_"))
              for field, option in LIMIT_OPTIONS.items() if hasattr(args, option.removeprefix("--").replace("-", "_"))}
    for field, value in chosen.items():
        if not value > 0:
            raise UsageError(f"{LIMIT_OPTIONS[field]} must be positive, got {value}")
    picked = attrs.evolve(limits, **chosen)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    context = None
    if args.tls_cert is not None:
        for opt, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
            if not Path(path).is_file():
                raise UsageError(f"{opt} {path}: no such file")
        try:
            context = tls_context(args.tls_cert, args.tls_key)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return Network(auth, picked, args.tls_cert, args.tls_key, context, warning)
