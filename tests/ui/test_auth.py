"""Who may read `scaleenv ui`: the real server process over real sockets, with tokens.

A bearer header, or the session cookie `/login` sets from a token; pages redirect to the
login form, `/api` answers 401; the cookie is HttpOnly and SameSite=Strict (Secure under
TLS) and derived from the token; a network address needs a token or `--insecure`; a
loopback server answers only loopback Host names, whatever the credentials."""

from __future__ import annotations

import hmac
import http.client
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from scaleenv._serve.auth import Auth
from scaleenv._ui.gate import Gate, safe_next, session_value
from scaleenv._ui.http import Request
from tests.serve.conftest import self_signed
from tests.ui.conftest import UiServer

TOKEN_A = "viewer-a-0123456789abcdefghij"
TOKEN_B = "viewer-b-0123456789abcdefghij"


@contextmanager
def ui_server(log: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[UiServer]:
    server = UiServer(log, *args, env=env)
    try:
        yield server
    finally:
        server.close()


def request(port: int, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
            context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection (no redirect followed, no cookie kept)."""
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=120, context=context) if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=120))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def login(port: int, token: str, next_path: str = "/", **kw: Any) -> tuple[int, dict[str, str], bytes]:
    return request(port, "POST", "/login", body=urlencode({"token": token, "next": next_path}).encode(),
                   headers={"content-type": "application/x-www-form-urlencoded"}, **kw)


def cookie_of(headers: dict[str, str]) -> str:
    """The ``name=value`` part of a Set-Cookie header."""
    return headers["set-cookie"].split(";", 1)[0]


def test_the_view_lets_in_only_a_token_or_its_session(ui_run: tuple[Path, dict[str, Any]]) -> None:
    with ui_server(ui_run[0], "--token", TOKEN_A, env={"SCALEENV_TOKEN": TOKEN_B}) as server:
        port = server.port
        assert server.info["auth"] is True and server.info["tls"] is False
        # /api: 401 without a token, with a wrong one, with a non-bearer scheme
        for headers in ({}, {"authorization": "Bearer wrong-token-0123456789abcd"}, {"authorization": f"Basic {TOKEN_A}"}):
            status, h, body = request(port, "GET", "/api/run", headers=headers)
            assert status == 401 and h["www-authenticate"].startswith("Bearer"), (headers, status)
            assert "/login" in json.loads(body)["error"]["message"]
        for token in (TOKEN_A, TOKEN_B):  # --token and $SCALEENV_TOKEN both count
            status, _, body = request(port, "GET", "/api/run", headers={"authorization": f"Bearer {token}"})
            assert status == 200 and "totals" in json.loads(body)
        # pages send a browser to the login form, keeping where it was going
        status, h, _ = request(port, "GET", "/episodes/d00/t000/g0?step=2")
        assert status == 303 and h["location"] == "/login?next=%2Fepisodes%2Fd00%2Ft000%2Fg0%3Fstep%3D2"
        status, _, body = request(port, "GET", h["location"])
        assert status == 200 and b'<form method="post" action="/login">' in body
        assert b'value="/episodes/d00/t000/g0?step=2"' in body
        # the package's own assets hold no run data: public
        status, _, body = request(port, "GET", "/static/app.js")
        assert status == 200 and body
        # a wrong token at the form: 401, the form again, no cookie
        status, h, body = login(port, "wrong-token-0123456789abcd")
        assert status == 401 and "set-cookie" not in h and b"not accepted" in body
        # the right one: back to where it was going, with the session cookie
        status, h, _ = login(port, TOKEN_B, "/episodes?ending=done")
        assert status == 303 and h["location"] == "/episodes?ending=done"
        attributes = [a.strip() for a in h["set-cookie"].split(";")]
        assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes) and "Secure" not in attributes
        session = cookie_of(h)
        assert TOKEN_B not in session
        for path in ("/api/run", "/", "/episodes"):
            status, _, _ = request(port, "GET", path, headers={"cookie": f"other=1; {session}"})
            assert status == 200, path
        # GET /login?token= (a link or a script) sets the same cookie; a foreign next stays here
        status, h, _ = request(port, "GET", "/login?" + urlencode({"token": TOKEN_B, "next": "//evil.example/"}))
        assert status == 303 and h["location"] == "/" and cookie_of(h) == session
        _, h, _ = login(port, TOKEN_A)
        assert cookie_of(h) != session  # each token its own session value
        # a changed cookie is nobody's
        name, value = session.split("=", 1)
        forged = f"{name}={'A' if value[0] != 'A' else 'B'}{value[1:]}"
        assert request(port, "GET", "/api/run", headers={"cookie": forged})[0] == 401
        assert request(port, "GET", "/", headers={"cookie": forged})[0] == 303
        # DNS rebinding: a loopback server answers only loopback names, credentials or not
        status, _, body = request(port, "GET", "/api/run", headers={"host": "evil.example", "cookie": session,
                                                                    "authorization": f"Bearer {TOKEN_A}"})
        assert status == 403 and b"not served here" in body
        # still read-only: a POST elsewhere is refused, even logged in
        status, _, _ = request(port, "POST", "/api/run", body=b"{}", headers={"cookie": session})
        assert status == 405
        # log out: the cookie is cleared
        status, h, _ = request(port, "GET", "/logout", headers={"cookie": session})
        assert status == 303 and "Max-Age=0" in h["set-cookie"] and cookie_of(h) == f"{name}="


def test_the_session_is_compared_with_every_token_every_time() -> None:
    tokens = [f"viewer-{i}-0123456789abcdefghij" for i in range(5)]
    calls: list[tuple[int, int]] = []

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return hmac.compare_digest(a, b)

    auth = Auth.from_tokens(tokens)
    gate = Gate(auth, compare=counting)
    sessions = [session_value(p.key) for p in auth.principals]
    for presented, ok in ((sessions[0], True), (sessions[-1], True), ("x" * len(sessions[0]), False), ("", False)):
        calls.clear()
        cookie = f"{gate.cookie_name}={presented}"
        assert gate.admitted(Request("GET", "/api/run", {}, {"cookie": cookie})) is ok
        assert len(calls) == len(tokens) and all(a == b == 32 for a, b in calls), calls


def test_next_never_leaves_the_server() -> None:
    for target in (None, "", "https://evil.example/", "//evil.example", "/\\evil.example", "/login?next=/",
                   "relative", "/a\r\nSet-Cookie: x=1"):
        assert safe_next(target) == "/", target
    assert safe_next("/tasks/d00/t001?x=1") == "/tasks/d00/t001?x=1"


def test_a_network_address_needs_a_token_or_insecure(ui_run: tuple[Path, dict[str, Any]]) -> None:
    out = subprocess.run([sys.executable, "-m", "scaleenv", "ui", "--log", str(ui_run[0]), "--host", "0.0.0.0",
                          "--port", "0"], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "SCALEENV_TOKEN"})
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve scaleenv ui on 0.0.0.0" in lines[0] and "--insecure" in lines[0]
    # --insecure: it starts, says so on stderr, and (no name to check on a network address) answers any Host
    with ui_server(ui_run[0], "--host", "0.0.0.0", "--insecure") as server:
        assert server.proc.stderr is not None
        warning = server.proc.stderr.readline()
        assert "WARNING" in warning and "without a token" in warning
        assert server.info["auth"] is False
        assert request(server.port, "GET", "/api/head", headers={"host": "10.1.2.3"})[0] == 200
    # with a token on a network address: any Host, but only with the token
    with ui_server(ui_run[0], "--host", "0.0.0.0", env={"SCALEENV_TOKEN": TOKEN_A}) as server:
        assert request(server.port, "GET", "/api/head", headers={"host": "10.1.2.3"})[0] == 401
        assert request(server.port, "GET", "/api/head", headers={"host": "10.1.2.3",
                                                                 "authorization": f"Bearer {TOKEN_A}"})[0] == 200


def test_the_view_over_tls(ui_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(cafile=cert)
    with ui_server(ui_run[0], "--tls-cert", cert, "--tls-key", key, env={"SCALEENV_TOKEN": TOKEN_A}) as server:
        assert server.info["tls"] is True and server.url.startswith("https://127.0.0.1:")
        assert request(server.port, "GET", "/api/run", context=context)[0] == 401
        status, h, _ = login(server.port, TOKEN_A, context=context)
        assert status == 303 and "Secure" in [a.strip() for a in h["set-cookie"].split(";")]
        status, _, body = request(server.port, "GET", "/api/run", headers={"cookie": cookie_of(h)}, context=context)
        assert status == 200 and "totals" in json.loads(body)
        # plain HTTP on the TLS port gets nothing, and the server goes on serving
        try:
            plain = request(server.port, "GET", "/api/run")[0]
        except (http.client.HTTPException, OSError):
            plain = None
        assert plain != 200
        assert request(server.port, "GET", "/api/run", headers={"authorization": f"Bearer {TOKEN_A}"},
                       context=context)[0] == 200

