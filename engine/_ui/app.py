"""Routes of ``scaleenv ui``: the pages, their JSON under ``/api``, and the static assets.

Pages (each a stable URL; the page's script fetches the matching ``/api`` route):

- ``/``: the run; ``/episodes``: episodes, filtered and paginated;
- ``/domains/<slot>``, ``/tools/<slot>/<tool>``, ``/tasks/<task id>``,
  ``/episodes/<episode id>?step=K``.

JSON: ``/api/run``, ``/api/head?after=SEQ&wait=S`` (long poll: answers once the index
moved past SEQ, or after S seconds), ``/api/domains``, ``/api/domains/<slot>``,
``/api/tasks?domain=&status=&offset=&limit=``, ``/api/tasks/<task id>``,
``/api/tools/<slot>/<tool>``, ``/api/episodes?task=&domain=&ending=&status=&min_reward=
&max_reward=&offset=&limit=``, ``/api/episodes/<episode id>?step=K``.

The app only reads: the log is opened read-only (no writer lock; a run keeps writing
it) and the server answers GET and HEAD only (and POST on ``/login``, for the login
form; any other POST gets 405). Two hooks guard who may read:

- ``authorize(request)``: called before every request; return ``None`` to let it
  through, or a :class:`~scaleenv._ui.http.Response` (say a 401) to answer instead.
  The command line wires a :class:`~scaleenv._ui.gate.Gate` here when it has tokens
  (``scaleenv._serve.auth``): a bearer header or the session cookie ``/login`` sets;
- ``allowed_hosts``: served on a loopback address, only requests whose ``Host`` is a
  loopback name are answered, before ``authorize`` (a web page elsewhere cannot read the
  log through a DNS-rebound name).
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Callable
from functools import partial
from importlib import resources
from typing import Any

import attrs
import trio

from scaleenv._store.log import Log

from . import api
from .gate import LOGIN_PATH
from .http import Request, Response, error_response, json_response, serve
from .index import Follower

Authorizer = Callable[[Request], "Response | None"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
MAX_WAIT = 30.0
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                 ".ico": "image/x-icon"}
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_NAMES or host.startswith("127.")


def _host_name(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class StaticFiles:
    """The files of ``scaleenv/_ui/static`` (package data), read once, served with ETags."""

    def __init__(self) -> None:
        self.root = resources.files("scaleenv._ui").joinpath("static")
        self._cache: dict[str, tuple[bytes, str]] = {}

    def get(self, name: str) -> tuple[bytes, str] | None:
        if name in self._cache:
            return self._cache[name]
        if not _STATIC_NAME.match(name) or name.startswith("."):
            return None
        f = self.root.joinpath(name)
        if not f.is_file():
            return None
        data = f.read_bytes()
        self._cache[name] = (data, '"' + hashlib.blake2b(data, digest_size=8).hexdigest() + '"')
        return self._cache[name]


class UiApp:
    """``Request -> Response`` over one read-only log and its live index (see the module doc)."""

    def __init__(self, log: Log, follower: Follower, *, authorize: Authorizer | None = None,
                 allowed_hosts: frozenset[str] | None = None) -> None:
        if not log.readonly:
            raise ValueError("the UI reads a log opened with readonly=True (it must not hold the writer lock)")
        self.log = log
        self.follower = follower
        self.authorize = authorize
        self.allowed_hosts = allowed_hosts
        self.static = StaticFiles()
        self._run_cache: tuple[int, dict[str, Any]] | None = None

    @property
    def index(self) -> Any:
        return self.follower.index

    async def __call__(self, request: Request) -> Response:
        if self.allowed_hosts is not None:
            host = _host_name(request.headers.get("host", ""))
            if host not in self.allowed_hosts:
                return error_response(403, f"host {host!r} is not served here (use http://127.0.0.1:<port>/)")
        if self.authorize is not None:
            denied = self.authorize(request)
            if denied is not None:
                return denied
        if request.method == "POST":  # only the login form posts, and the gate answered it
            return attrs.evolve(error_response(405, f"POST {request.path}: this server is read-only (GET only)"),
                                headers=(("allow", "GET, HEAD"),))
        path = request.path.rstrip("/") or "/"
        try:
            if path.startswith("/api/") or path == "/api":
                return await self._api(path[len("/api"):] or "/", request.query)
            if path.startswith("/static/"):
                return self._static(path[len("/static/"):], request)
            if path == "/favicon.ico":
                return self._static("favicon.svg", request)
            return self._page(path)
        except api.NotFound as exc:
            return error_response(404, str(exc))
        except api.BadParam as exc:
            return error_response(400, str(exc))

    # -- pages and assets -----------------------------------------------------------
    def _page(self, path: str) -> Response:
        shell = self.static.get("index.html")
        assert shell is not None, "scaleenv/_ui/static/index.html is missing from the package"
        known = (path in ("/", "/episodes") or path.startswith(("/domains/", "/tools/", "/tasks/", "/episodes/")))
        return Response(200 if known else 404, shell[0], CONTENT_TYPES[".html"], (("cache-control", "no-cache"),))

    def _static(self, name: str, request: Request) -> Response:
        found = self.static.get(name)
        if found is None:
            return error_response(404, f"no static file {name!r}")
        data, etag = found
        headers = (("etag", etag), ("cache-control", "no-cache"))
        if request.headers.get("if-none-match") == etag:
            return Response(304, b"", CONTENT_TYPES.get("." + name.rsplit(".", 1)[-1], "application/octet-stream"), headers)
        return Response(200, data, CONTENT_TYPES.get("." + name.rsplit(".", 1)[-1], "application/octet-stream"), headers)

    # -- JSON -----------------------------------------------------------------------
    async def _api(self, path: str, query: dict[str, str]) -> Response:
        log_, ix = self.log, self.index
        if path == "/head":
            after = api.int_param(query, "after", -1, -1)
            wait = api.float_param(query, "wait") or 0.0
            if wait < 0:
                raise api.BadParam(f"?wait={wait} must not be negative")
            if wait:
                await self.follower.wait_past(after, min(wait, MAX_WAIT))
            return json_response(api.head_json(self.follower))
        if path == "/run":
            return json_response(self._run())
        if path == "/domains":
            return json_response({"domains": self._run()["domains"]})
        if path.startswith("/domains/"):
            return json_response(api.domain_json(log_, ix, path[len("/domains/"):], query))
        if path == "/tasks":
            return json_response(api.tasks_json(ix, query))
        if path.startswith("/tasks/"):
            return json_response(api.task_json(log_, ix, path[len("/tasks/"):], query))
        if path.startswith("/tools/"):
            slot, _, tool = path[len("/tools/"):].partition("/")
            if not tool:
                raise api.NotFound(f"tool pages are /tools/<slot>/<tool>, not /tools/{slot}")
            return json_response(api.tool_json(log_, ix, slot, tool))
        if path == "/episodes":
            return json_response(api.episodes_json(ix, query))
        if path.startswith("/episodes/"):
            return json_response(api.episode_json(log_, path[len("/episodes/"):], query, ix))
        raise api.NotFound(f"no API route {path!r}; routes: /api/run, /api/head, /api/domains[/<slot>], "
                           "/api/tasks[/<task id>], /api/tools/<slot>/<tool>, /api/episodes[/<episode id>]")

    def _run(self) -> dict[str, Any]:
        """The run's JSON, computed once per index version (the log fields are always fresh)."""
        version = self.index.version
        if self._run_cache is None or self._run_cache[0] != version:
            self._run_cache = (version, api.run_json(self.log, self.follower))
        out = self._run_cache[1]
        out["log"].update(api.head_json(self.follower))
        return out


async def serve_ui(log: Log, host: str = "127.0.0.1", port: int = 0, *, authorize: Authorizer | None = None,
                   ssl_context: ssl.SSLContext | None = None, poll_interval: float = 0.25,
                   task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Index ``log`` and serve the UI on ``host:port`` until cancelled.

    ``authorize``: who may read (see the module doc; a :class:`~scaleenv._ui.gate.Gate`
    for tokens); ``ssl_context``: serve HTTPS. ``task_status.started(port)`` is called
    once the socket listens (the index is built in the background from then on: pages
    answer while it catches up). On cancellation the follower stops between two slices
    and every connection is closed; the log is left open for the caller to close.
    """
    follower = Follower(log, poll_interval=poll_interval)
    allowed = (LOOPBACK_NAMES | {host}) if is_loopback(host) else None
    app = UiApp(log, follower, authorize=authorize, allowed_hosts=allowed)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(partial(serve, app, host, port, ssl_context=ssl_context,
                                            post_paths=frozenset({LOGIN_PATH})))
        nursery.start_soon(follower.run)
        task_status.started(bound)
