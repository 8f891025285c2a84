"""Who may read the browser view: a bearer token, or the session cookie ``/login`` sets.

A browser cannot send ``Authorization: Bearer`` when it opens a page, so the token is
given once, to ``/login`` (a form that POSTs it, or ``GET /login?token=...`` for a link
or a script), and the answer sets a cookie: ``HttpOnly`` (no page script can read it),
``SameSite=Strict`` (no other site's page or link sends it), ``Secure`` under TLS. Its
value is derived from the token (HMAC-SHA256 keyed by the token's principal key), so it
needs no server-side state, survives a restart with the same tokens, and dies with the
token. Every page and every ``/api`` request must then carry a valid cookie or a valid
bearer header (``curl -H 'Authorization: Bearer ...'``); both are compared with every
accepted value in constant time, with no early exit. ``/static/*`` (the package's own
HTML, CSS and JavaScript: no run data) and the login page stay public.

A :class:`Gate` is the :data:`~scaleenv._ui.app.Authorizer` hook of
:class:`~scaleenv._ui.app.UiApp`: ``gate(request)`` returns None to let the request
through or the :class:`~scaleenv._ui.http.Response` to answer instead (the login page, a
redirect to it, a 401). It takes the accepted tokens as an ``auth`` object of
``scaleenv._serve.auth`` (``Auth``: ``required``, ``authenticate(header)`` and
``principals`` with a ``key``), passed in by the command line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote

from .http import Request, Response, json_response

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/favicon.ico", LOGIN_PATH, LOGOUT_PATH})
_SESSION_LABEL = b"scaleenv ui session v1"
UNAUTHORIZED_MESSAGE = ("missing or invalid token: send 'Authorization: Bearer <token>', or log in at /login "
                        "(the session cookie it sets)")


class _Principal(Protocol):
    key: bytes


class TokenAuth(Protocol):
    """What the gate needs of ``scaleenv._serve.auth.Auth``."""

    @property
    def required(self) -> bool: ...

    @property
    def principals(self) -> Sequence[_Principal]: ...

    def authenticate(self, authorization: str | None) -> Any: ...


def session_value(key: bytes) -> str:
    """The cookie value for the principal with ``key``: HMAC-SHA256 of a fixed label."""
    mac = hmac.new(key, _SESSION_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def _cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in out:
            out[name] = value.strip().strip('"')
    return out


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site (``//evil``,
    ``/\\\\evil``, ``https://evil`` all become ``/``), never the login page itself."""
    if (not target or not target.startswith("/") or target.startswith(("//", "/\\"))
            or any(c in target for c in "\\\r\n\t") or target.split("?", 1)[0] in (LOGIN_PATH, LOGOUT_PATH)):
        return "/"
    return target


class Gate:
    """The UI's door (see the module doc). ``secure``: the server speaks TLS (the cookie
    is then ``Secure``). ``compare`` is the constant-time comparison, replaceable by
    tests counting that every accepted value is compared every time."""

    def __init__(self, auth: TokenAuth, *, secure: bool = False,
                 compare: Callable[[bytes, bytes], bool] = hmac.compare_digest) -> None:
        self.auth = auth
        self.secure = secure
        self.compare = compare
        self._sessions = tuple(_digest(session_value(p.key)) for p in auth.principals)
        fingerprint = hashlib.sha256(b"".join(sorted(p.key for p in auth.principals))).hexdigest()[:12]
        # one name per token set: two views with different tokens on one host (cookies
        # ignore ports) do not overwrite each other's session
        self.cookie_name = f"scaleenv_ui_{fingerprint}"

    @property
    def required(self) -> bool:
        return bool(self.auth.required)

    def session_ok(self, value: str | None) -> bool:
        """True when ``value`` is the session of an accepted token: compared with every
        accepted session (each in constant time, equal-length digests, no early exit)."""
        presented = _digest(value) if value else b"\0" * 32
        found = False
        for expected in self._sessions:
            if self.compare(presented, expected):
                found = True
        return bool(value) and found

    def admitted(self, request: Request) -> bool:
        """A valid bearer header, or a valid session cookie."""
        bearer = request.headers.get("authorization")
        if bearer is not None and self.auth.authenticate(bearer) is not None:
            return True
        return self.session_ok(_cookies(request.headers.get("cookie", "")).get(self.cookie_name))

    def __call__(self, request: Request) -> Response | None:
        if not self.required:
            return None
        path = request.path.rstrip("/") or "/"
        if path == LOGIN_PATH:
            return self._login(request)
        if path == LOGOUT_PATH:
            return self._redirect(LOGIN_PATH, self._cookie("", max_age=0))
        if path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
            return None
        if self.admitted(request):
            return None
        if path == "/api" or path.startswith("/api/"):
            body = json_response({"error": {"status": 401, "message": UNAUTHORIZED_MESSAGE}}, 401)
            return Response(401, body.body, body.content_type, (("www-authenticate", 'Bearer realm="scaleenv ui"'),))
        target = request.path + (("?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in request.query.items()))
                                 if request.query else "")
        return self._redirect(f"{LOGIN_PATH}?next={quote(target, safe='')}")

    # -- the login page ------------------------------------------------------------
    def _login(self, request: Request) -> Response:
        fields = dict(request.query)
        if request.method == "POST":
            fields.update(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        target = safe_next(fields.get("next"))
        token = fields.get("token")
        if token is None:
            return self._page(target, "", 200)
        who = self.auth.authenticate(f"Bearer {token}") if token.strip() else None
        if who is None:
            return self._page(target, "That token is not accepted here.", 401)
        return self._redirect(target, self._cookie(session_value(who.key)))

    def _cookie(self, value: str, *, max_age: int | None = None) -> tuple[str, str]:
        parts = [f"{self.cookie_name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        return ("set-cookie", "; ".join(parts))

    @staticmethod
    def _redirect(location: str, *headers: tuple[str, str]) -> Response:
        return Response(303, b"", "text/plain; charset=utf-8",
                        (("location", location), ("cache-control", "no-store"), *headers))

    @staticmethod
    def _page(target: str, message: str, status: int) -> Response:
        note = f'<p class="login-error" role="alert">{html.escape(message)}</p>' if message else ""
        body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>scaleenv ui: log in</title><link rel="stylesheet" href="/static/app.css"><link rel="icon" href="/favicon.ico"></head>
<body><main class="login"><h1>scaleenv ui</h1>
<p>This view needs one of the server's tokens (<code>--token</code> or <code>$SCALEENV_TOKEN</code>).</p>{note}
<form method="post" action="{LOGIN_PATH}"><input type="hidden" name="next" value="{html.escape(target)}">
<label>Token <input type="password" name="token" id="token" autocomplete="current-password" required autofocus></label>
<button type="submit" id="login">Log in</button></form></main></body></html>
"""
        return Response(status, body.encode(), "text/html; charset=utf-8", (("cache-control", "no-store"),))
