"""Who may use a network front end: bearer tokens, the bind rule, capabilities, TLS.

One module for every server scaleenv runs on a port (``scaleenv serve``, ``serve-mcp
--transport http``, ``sim-server``, the browser view), so they let in the same people the
same way. The API:

- :class:`Auth` (``Auth.from_tokens(["t1", "t2"])``, or :func:`tokens_from_env` for the
  ``SCALEENV_TOKEN`` variable): ``auth.authenticate(authorization_header)`` returns the
  :class:`Principal` a valid ``Authorization: Bearer <token>`` names, or None. Every
  configured token is compared, in constant time, whatever the outcome (no early exit,
  digests of equal length), so the time taken says nothing about which bytes matched.
  With no tokens configured, every request is the anonymous principal.
- :func:`check_bind`: refuses (:class:`BindRefused`) to listen on a non-loopback address
  without a token unless ``insecure`` is set; then returns the warning to print on every
  start.
- :func:`seal` / :func:`unseal`: a name (an episode id) plus an unguessable part derived
  from the principal's key (HMAC-SHA256), so an id handed to one token's holder means
  nothing to another's: :func:`unseal` returns None for it exactly as for an unknown id.
  The keys of token principals are derived from the tokens, so a restarted server with
  the same tokens recognises the ids it handed out; the anonymous key is random per
  process.
- :func:`principal` / :func:`acting_as`: the principal of the request being handled (a
  context variable the server sets around its handler), for handlers whose signature
  carries no principal.
- :class:`BearerAuthASGI`: the same rule as ASGI middleware (``scope["scaleenv.principal"]``
  set for the app; 401 otherwise).
- :func:`tls_context`: an ``ssl.SSLContext`` serving a certificate and key.

A refused request gets 401 with ``WWW-Authenticate: Bearer`` and is recorded nowhere
(no event, no log line): a scanner cannot fill the log.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import attrs

TOKEN_ENV = "SCALEENV_TOKEN"
"""Environment variable holding the accepted token(s), separated by commas or whitespace."""

PRINCIPAL_SCOPE_KEY = "scaleenv.principal"
"""Where :class:`BearerAuthASGI` puts the principal in the ASGI scope."""

_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
CAP_SEPARATOR = "-"
CAP_CHARS = 26  # base32 characters: 130 bits
MIN_TOKEN_CHARS = 16

UNAUTHORIZED_MESSAGE = "missing or invalid bearer token (send 'Authorization: Bearer <token>')"


@attrs.frozen
class Principal:
    """Who a request acts as: a configured token (by its fingerprint) or the anonymous user."""

    name: str
    key: bytes = attrs.field(repr=False)


class BindRefused(ValueError):
    """Listening on a network address without a token (and without ``insecure``)."""


def _fingerprint(digest: bytes) -> str:
    return "token:" + digest.hex()[:8]


@attrs.frozen
class Auth:
    """The accepted tokens (as SHA-256 digests) and the principals they stand for.

    ``compare`` is the constant-time comparison used (``hmac.compare_digest``); tests pass a
    counting wrapper around it to check that every token is compared every time.
    """

    digests: tuple[bytes, ...] = ()
    principals: tuple[Principal, ...] = ()
    anonymous: Principal = attrs.field(factory=lambda: Principal("anonymous", secrets.token_bytes(32)))
    compare: Callable[[bytes, bytes], bool] = hmac.compare_digest

    @classmethod
    def from_tokens(cls, tokens: Iterable[str], *, compare: Callable[[bytes, bytes], bool] = hmac.compare_digest) -> Auth:
        """Accept these tokens (ValueError for an empty or short one, naming its position)."""
        digests: list[bytes] = []
        principals: list[Principal] = []
        for i, token in enumerate(tokens):
            if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS or not _TOKEN_CHARS.fullmatch(token):
                raise ValueError(f"token #{i + 1} must be at least {MIN_TOKEN_CHARS} printable ASCII characters without "
                                 "spaces (make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
            digest = hashlib.sha256(token.encode()).digest()
            if digest in digests:
                continue
            digests.append(digest)
            key = hmac.new(b"scaleenv capability key", token.encode(), hashlib.sha256).digest()
            principals.append(Principal(_fingerprint(digest), key))
        return cls(tuple(digests), tuple(principals), compare=compare)

    @property
    def required(self) -> bool:
        """True when requests must carry a token."""
        return bool(self.digests)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal an ``Authorization`` header value names; None when it names nobody.

        With no tokens configured every request is :attr:`anonymous`. Otherwise the
        presented token's SHA-256 digest is compared with every configured digest (all of
        them, each in constant time), so neither which token matched nor how much of it
        matched shows in the time taken.
        """
        if not self.digests:
            return self.anonymous
        token = _bearer(authorization)
        presented = hashlib.sha256(token.encode("latin-1", "replace")).digest() if token is not None else b"\0" * 32
        found = -1
        for i, digest in enumerate(self.digests):
            if self.compare(presented, digest):
                found = i
        if token is None or found < 0:
            return None
        return self.principals[found]

    def describe(self) -> str:
        return f"{len(self.digests)} bearer token(s)" if self.digests else "no token (anyone who can connect)"


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def tokens_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The tokens in ``SCALEENV_TOKEN`` (commas or whitespace between them)."""
    raw = (environ if environ is not None else os.environ).get(TOKEN_ENV, "")
    return [t for t in raw.replace(",", " ").split() if t]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth: Auth, *, insecure: bool = False, what: str = "the server") -> str | None:
    """May ``what`` listen on ``host`` with ``auth``? Raises :class:`BindRefused` (one line
    saying how to set a token) for a network address without tokens unless ``insecure``;
    returns the warning to print on every start when ``insecure`` lets it through."""
    if auth.required or is_loopback(host):
        return None
    if not insecure:
        raise BindRefused(
            f"refusing to serve {what} on {host} (not a loopback address) without a token: anyone who can reach "
            f"the port could use it. Set {TOKEN_ENV}=<token> or pass --token <token> (make one with: python3 -c "
            "'import secrets; print(secrets.token_urlsafe(32))'), or pass --insecure to accept the risk")
    return (f"WARNING: serving {what} on {host} without a token (--insecure): anyone who can reach the port can "
            f"use it, call tools in and end any episode. Set {TOKEN_ENV} or --token to require one.")


# ---- capabilities: names only their principal can use ----------------------------


def _cap(principal: Principal, name: str) -> str:
    mac = hmac.new(principal.key, name.encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode().lower()[:CAP_CHARS]


def seal(principal: Principal, name: str) -> str:
    """``name`` with an unguessable part only ``principal`` can produce: ``<name>-<cap>``."""
    return f"{name}{CAP_SEPARATOR}{_cap(principal, name)}"


def unseal(principal: Principal, handle: str) -> str | None:
    """The name :func:`seal` gave ``principal`` ``handle`` for; None for anything else
    (another principal's handle, a bare name, garbage), indistinguishably."""
    name, sep, cap = handle.rpartition(CAP_SEPARATOR)
    if not sep or not name:
        return None
    if not hmac.compare_digest(cap.encode("utf-8", "surrogateescape"), _cap(principal, name).encode()):
        return None
    return name


# ---- the principal of the request being handled -----------------------------------

_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("scaleenv_principal", default=None)


def principal() -> Principal | None:
    """The principal the request being handled acts as (None outside a served request)."""
    return _current.get()


@contextmanager
def acting_as(who: Principal | None) -> Iterator[None]:
    """Set :func:`principal` for the duration of a handler call (servers call this)."""
    token = _current.set(who)
    try:
        yield
    finally:
        _current.reset(token)


# ---- ASGI ------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def unauthorized_json() -> dict[str, Any]:
    """The 401 body, in the OpenAI error shape every front end uses."""
    return {"error": {"message": UNAUTHORIZED_MESSAGE, "type": "authentication_error", "code": 401}}


def unauthorized_body() -> bytes:
    return json.dumps(unauthorized_json()).encode()


async def send_unauthorized(send: Send) -> None:
    body = unauthorized_body()
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="scaleenv"')]})
    await send({"type": "http.response.body", "body": body})


class BearerAuthASGI:
    """ASGI middleware: HTTP requests without a valid bearer token get 401 and never reach
    ``app``; the others run with ``scope["scaleenv.principal"]`` and :func:`principal` set.
    Lifespan messages pass through."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"authorization"), None)
        who = self.auth.authenticate(header)
        if who is None:
            if scope["type"] == "http":
                await send_unauthorized(send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        scope[PRINCIPAL_SCOPE_KEY] = who
        with acting_as(who):
            await self.app(scope, receive, send)


# ---- TLS -------------------------------------------------------------------------


def tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server-side TLS context for a PEM certificate (chain) and key (ValueError naming
    the file when they cannot be loaded)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS certificate {certfile} with key {keyfile}: {exc}") from exc
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
