"""The run's tasks as an OpenEnv environment (``pip install 'scaleenv[openenv]'``).

Server (FastAPI from openenv-core, one session per WebSocket client)::

    python -m scaleenv.integrations.openenv --log run.lmdb --port 8200

Client (openenv-core's own ``EnvClient``; ``token=`` when the server has tokens)::

    from scaleenv.integrations.openenv import ScaleEnvAction, ScaleEnvClient

    with ScaleEnvClient(base_url="http://127.0.0.1:8200").sync() as env:
        result = env.reset(seed=1, task_id="d00/t003")     # result.observation.messages, .tools
        result = env.step(ScaleEnvAction(tool_calls=[{"type": "function", "function":
                          {"name": "get_order", "arguments": "{\\"order_id\\": \\"o1\\"}"}}]))
        result = env.step(ScaleEnvAction(text="<tool_call>{...}</tool_call>"))  # or raw model text
        result.done, result.reward

:class:`ScaleEnvEnvironment` is openenv-core's ``Environment`` over
:class:`scaleenv._serve.session.EpisodeSession` (one served episode per reset, recorded in
the log like any; the same seed gives the same conversation): ``reset(seed, task_id)``
opens an episode (``task_id`` None: one of the run's kept tasks drawn from the seed),
``step(ScaleEnvAction)`` plays one assistant turn, given as ``content`` and
``tool_calls`` (OpenAI form) or as the model's raw ``text`` (read by
:func:`scaleenv._serve.tool_text.parse_turn`). Observations carry the new chat messages,
the tools (on reset), the user's reply and, once ended, the episode's result; ``reward``
is the rule-based reward when the episode ends, 0 before. Each WebSocket session is its
own environment instance, so many episodes run at once (``max_concurrent_envs``); the
engine is shared by all of them and held for the server's lifetime.

Who may connect follows the rule of every scaleenv server (:mod:`scaleenv._serve.auth`):
``--token`` (repeatable) or ``SCALEENV_TOKEN``; every HTTP request and WebSocket handshake
must carry ``Authorization: Bearer <token>`` (401, or the handshake refused, otherwise;
the environment is never reached). A non-loopback ``--host`` without a token is refused
unless ``--insecure`` (which warns on every start); ``--tls-cert``/``--tls-key`` serve
HTTPS and WSS. Bound to loopback, the server answers only loopback ``Host`` names and
refuses requests a web page of another origin sent (``Origin``): DNS rebinding and a
cross-site WebSocket cannot drive its episodes (:func:`guard`).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import ssl
from typing import Any
from urllib.parse import urlsplit

from openenv.core import EnvClient
from openenv.core.client_types import StepResult
from openenv.core.env_server.http_server import create_app as openenv_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field
from websockets.asyncio.client import connect as ws_connect

from scaleenv._runner import EngineOptions
from scaleenv._serve.auth import (TOKEN_ENV, Auth, BearerAuthASGI, BindRefused, check_bind, is_loopback, tls_context,
                                 tokens_from_env)
from scaleenv._serve.session import EpisodeSession
from scaleenv._serve.threaded import EngineThread


class ScaleEnvAction(Action):
    """One assistant turn: ``content`` and ``tool_calls`` (OpenAI form), or the model's raw ``text``."""

    content: str = Field(default="", description="the message to the user (may be empty)")
    tool_calls: list[dict[str, Any]] = Field(default_factory=list,
                                             description="OpenAI tool calls {id?, type: function, function: {name, arguments}}")
    text: str | None = Field(default=None, description="the model's raw text instead: tool calls written in it "
                                                       "(Hermes/Qwen <tool_call> blocks or OpenAI JSON)")
    token_ids: list[int] | None = Field(default=None, description="the turn's token ids, kept for export")
    logprobs: list[float] | None = Field(default=None, description="the turn's token logprobs, kept for export")


class ScaleEnvObservation(Observation):
    """What a reset or a step shows the policy (``reward`` and ``done`` as openenv has them)."""

    messages: list[dict[str, Any]] = Field(default_factory=list, description="the new chat messages, OpenAI style")
    tools: list[dict[str, Any]] = Field(default_factory=list, description="the tools offered (on reset)")
    episode_id: str = ""
    task_id: str = ""
    user: dict[str, Any] | None = Field(default=None, description="the user's reply: message, done, gave_up")
    result: dict[str, Any] | None = Field(default=None, description="the episode's result once it has ended")
    truncated: bool = Field(default=False, description="the episode ended at a limit (turns, tool calls, timeout)")
    parsed: dict[str, Any] | None = Field(default=None, description="the assistant message a text action read as")


class ScaleEnvState(State):
    task_id: str | None = None
    ended: bool = False


class ScaleEnvEnvironment(Environment[ScaleEnvAction, ScaleEnvObservation, ScaleEnvState]):
    """openenv-core's ``Environment`` over an :class:`~scaleenv._serve.session.EpisodeSession` (see the module doc)."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, log: str, task: str | None = None, *, label: str = "", options: Any = None,
                 idle_timeout: float = 600.0) -> None:
        super().__init__()
        self.task = task
        self._session = EpisodeSession(log, label=label, options=options, idle_timeout=idle_timeout)
        self._resets = 0
        self._state = ScaleEnvState()

    def reset(self, seed: int | None = None, episode_id: str | None = None, task_id: str | None = None,
              **kwargs: Any) -> ScaleEnvObservation:
        """Open an episode of ``task_id`` (default: the server's task, else one of the kept
        tasks, drawn from ``seed`` or taken in turn). ``episode_id`` is scaleenv's own: a
        client's is ignored."""
        task = task_id or self.task
        if task is None:
            kept = self._session.kept_tasks
            task = kept[random.Random(seed).randrange(len(kept)) if seed is not None else self._resets % len(kept)]
        self._resets += 1
        opened = self._session.open(task, seed=seed)
        self._state = ScaleEnvState(episode_id=opened.episode_id, step_count=0, task_id=task,
                                    ended=opened.result is not None)
        return ScaleEnvObservation(messages=opened.messages, tools=opened.tools, episode_id=opened.episode_id,
                                   task_id=task, user=opened.user, result=opened.result,
                                   done=opened.result is not None, reward=0.0)

    def step(self, action: ScaleEnvAction, timeout_s: float | None = None, **kwargs: Any) -> ScaleEnvObservation:
        if action.text is not None:
            out = self._session.step_text(action.text, token_ids=action.token_ids, logprobs=action.logprobs)
        else:
            out = self._session.step(action.content, action.tool_calls or None, token_ids=action.token_ids,
                                     logprobs=action.logprobs)
        self._state.step_count += 1
        self._state.ended = out.ended
        return ScaleEnvObservation(messages=out.messages, episode_id=self._state.episode_id or "",
                                   task_id=self._state.task_id or "", user=out.user, result=out.result,
                                   truncated=out.truncated, parsed=out.parsed, done=out.ended, reward=out.reward)

    @property
    def state(self) -> ScaleEnvState:
        return self._state

    def close(self) -> None:
        self._session.close()


class ScaleEnvClient(EnvClient[ScaleEnvAction, ScaleEnvObservation, ScaleEnvState]):
    """openenv-core's WebSocket client for :class:`ScaleEnvEnvironment` (async; ``.sync()`` for a blocking one).

    ``token``: sent as ``Authorization: Bearer <token>`` on the WebSocket handshake (a
    server with tokens refuses the handshake without it: ``connect`` raises
    ConnectionError); ``ssl_context``: for a ``https://``/``wss://`` server whose
    certificate the default trust store does not know. Other arguments as ``EnvClient``'s.
    """

    def __init__(self, base_url: str, *, token: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self._headers = {"Authorization": f"Bearer {token}"} if token else None
        self._ssl_context = ssl_context

    async def connect(self) -> ScaleEnvClient:
        """openenv-core 0.3's ``connect`` with the bearer header (and TLS context): it has no
        way to add headers. Awaits the WebSocket handshake (``connect_timeout_s``)."""
        if self._ws is not None:
            return self
        url = self._ws_url.lower()
        local = any(name in url for name in ("://localhost", "://127.", "://[::1]"))
        extra: dict[str, Any] = {"ssl": self._ssl_context} if self._ssl_context is not None else {}
        try:
            self._ws = await ws_connect(self._ws_url, open_timeout=self._connect_timeout, max_size=self._max_message_size,
                                        additional_headers=self._headers, proxy=None if local else True, **extra)
        except Exception as e:  # noqa: BLE001 - openenv-core's contract: ConnectionError
            raise ConnectionError(f"Failed to connect to {self._ws_url}: {e}") from e
        return self

    def _step_payload(self, action: ScaleEnvAction) -> dict[str, Any]:
        return action.model_dump(exclude={"metadata"}, exclude_none=True)

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[ScaleEnvObservation]:
        fields = dict(payload.get("observation") or {})
        observation = ScaleEnvObservation(**fields, done=payload.get("done", False), reward=payload.get("reward"))
        return StepResult(observation=observation, reward=payload.get("reward"), done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> ScaleEnvState:
        return ScaleEnvState(**payload)


def create_app(log: str, task: str | None = None, *, label: str = "", max_concurrent_envs: int = 64,
               options: Any = None, idle_timeout: float = 600.0) -> Any:
    """The OpenEnv FastAPI app serving the run at ``log`` (its engine held until the app shuts down)."""
    options = options if options is not None else EngineOptions(progress=False)
    engine = EngineThread.acquire(log, options, idle_timeout)  # fails here, not in the first session
    app = openenv_app(functools.partial(ScaleEnvEnvironment, log, task, label=label, options=options,
                                        idle_timeout=idle_timeout),
                      ScaleEnvAction, ScaleEnvObservation, env_name="scaleenv", max_concurrent_envs=max_concurrent_envs)
    app.router.on_shutdown.append(engine.release)
    return app


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _host_of(value: str) -> str | None:
    try:
        return urlsplit(value if "//" in value else "//" + value).hostname
    except ValueError:
        return None


class LoopbackOnly:
    """ASGI middleware for a server bound to loopback: a request whose ``Host`` is not a
    loopback name (a DNS-rebound name) or whose ``Origin`` names another host (a web page
    of another site, e.g. a cross-site WebSocket) gets 403 (a WebSocket handshake is
    refused) and never reaches ``app``. Clients other than browsers send no ``Origin``."""

    def __init__(self, app: Any, names: frozenset[str]) -> None:
        self.app = app
        self.names = names

    def _allowed(self, scope: Any) -> str | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        host = _host_of(headers.get("host", ""))
        if host not in self.names:
            return f"host {headers.get('host', '')!r} is not served here (use 127.0.0.1)"
        origin = headers.get("origin")
        if origin is not None and _host_of(origin) not in self.names:
            return f"requests from web pages of {origin!r} are refused"
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        refused = self._allowed(scope) if scope["type"] in ("http", "websocket") else None
        if refused is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            body = json.dumps({"error": {"message": refused, "type": "forbidden", "code": 403}}).encode()
            await send({"type": "http.response.start", "status": 403, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})


def guard(app: Any, host: str, auth: Auth | None = None) -> Any:
    """``app`` as served on ``host``: bearer tokens (:class:`~scaleenv._serve.auth.BearerAuthASGI`;
    ``auth`` None or without tokens lets every request in) and, on a loopback ``host``,
    :class:`LoopbackOnly` in front. The bind rule itself is :func:`~scaleenv._serve.auth.check_bind`."""
    guarded: Any = BearerAuthASGI(app, auth if auth is not None else Auth())
    if is_loopback(host):
        guarded = LoopbackOnly(guarded, LOOPBACK_NAMES | {host.strip("[]").lower()})
    return guarded


def main(argv: list[str] | None = None) -> None:
    """``python -m scaleenv.integrations.openenv --log PATH [--task ID] [--host H] [--port P]
    [--token T ...] [--insecure] [--tls-cert PEM --tls-key PEM]``.

    Prints one line on stderr once it accepts connections (``... at http://HOST:PORT``;
    ``--port 0`` picks a free port), after the ``--insecure`` warning if any. Bad usage
    (a short token, a network address without a token, unreadable TLS files) exits 2 with
    one line before the log is opened."""
    import socket
    import sys

    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m scaleenv.integrations.openenv",
                                     description="Serve a run's tasks as an OpenEnv environment (WebSocket and HTTP).")
    parser.add_argument("--log", default="scaleenv.lmdb", help="the run's log (default: scaleenv.lmdb)")
    parser.add_argument("--task", default=None, help="serve one kept task (default: every kept task)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200, help="0: a free port")
    parser.add_argument("--max-sessions", type=int, default=64, help="concurrent WebSocket sessions")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN",
                        help=f"accept requests carrying 'Authorization: Bearer TOKEN' (repeatable); also read from "
                             f"${TOKEN_ENV}. Required to listen on a non-loopback address")
    parser.add_argument("--insecure", action="store_true",
                        help="listen on a non-loopback address without a token (anyone who can reach the port can use it)")
    parser.add_argument("--tls-cert", metavar="PEM", default=None, help="serve HTTPS/WSS with this certificate (chain)")
    parser.add_argument("--tls-key", metavar="PEM", default=None, help="the private key of --tls-cert")
    args = parser.parse_args(argv)
    try:
        auth = Auth.from_tokens([*args.token, *tokens_from_env()])
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: --token/{TOKEN_ENV}: {exc}\n")
    try:
        warning = check_bind(args.host, auth, insecure=args.insecure, what="the OpenEnv server")
    except BindRefused as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.exit(2, f"{parser.prog}: --tls-cert and --tls-key go together\n")
    if args.tls_cert is not None:
        try:
            tls_context(args.tls_cert, args.tls_key)  # a clear line now rather than uvicorn's traceback later
        except ValueError as exc:
            parser.exit(2, f"{parser.prog}: {exc}\n")
    try:
        app = guard(create_app(args.log, args.task, max_concurrent_envs=args.max_sessions), args.host, auth)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        parser.exit(2, f"{parser.prog}: cannot listen on {args.host}:{args.port}: {exc}\n")
    sock.listen(128)  # clients queue from now on, before uvicorn accepts
    port = sock.getsockname()[1]
    if warning:
        sys.stderr.write(f"scaleenv openenv: {warning}\n")
    scheme = "https" if args.tls_cert else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    sys.stderr.write(f"scaleenv openenv: serving {args.log} ({auth.describe()}) at {scheme}://{host}:{port}\n")
    sys.stderr.flush()
    uvicorn.Server(uvicorn.Config(app, log_level="warning", ssl_certfile=args.tls_cert,
                                  ssl_keyfile=args.tls_key)).run(sockets=[sock])


if __name__ == "__main__":
    main()
