"""The run's tasks as an OpenEnv environment (``pip install 'scaleenv[openenv]'``).

Server (FastAPI from openenv-core, one session per WebSocket client)::

    python -m scaleenv.integrations.openenv --log run.lmdb --port 8200

Client (openenv-core's own ``EnvClient``)::

    from scaleenv.integrations.openenv import ScaleEnvAction, ScaleEnvClient

    with ScaleEnvClient(base_url="http://127.0.0.1:8200").sync() as env:
        result = env.reset(seed=1, task_id="d00/t003")     # result.observation.messages, .tools
        result = env.step(ScaleEnvAction(tool_calls=[{"type": "function", "function":
                          {"name": "get_order", "arguments": "{\\"order_id\\": \\"o1\\"}"}}]))
        result = env.step(ScaleEnvAction(text="<tool_call>{...}</tool_call>"))  # or raw model text
        result.done, result.reward

:class:`ScaleEnvEnvironment` is openenv-core's ``Environment`` over
:class:`scaleenv.serve.session.EpisodeSession` (one served episode per reset, recorded in
the log like any; the same seed gives the same conversation): ``reset(seed, task_id)``
opens an episode (``task_id`` None: one of the run's kept tasks drawn from the seed),
``step(ScaleEnvAction)`` plays one assistant turn, given as ``content`` and
``tool_calls`` (OpenAI form) or as the model's raw ``text`` (read by
:func:`scaleenv.serve.tool_text.parse_turn`). Observations carry the new chat messages,
the tools (on reset), the user's reply and, once ended, the episode's result; ``reward``
is the rule-based reward when the episode ends, 0 before. Each WebSocket session is its
own environment instance, so many episodes run at once (``max_concurrent_envs``); the
engine is shared by all of them and held for the server's lifetime.
"""

from __future__ import annotations

import argparse
import functools
import random
from typing import Any

from openenv.core import EnvClient
from openenv.core.client_types import StepResult
from openenv.core.env_server.http_server import create_app as openenv_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

from scaleenv.runner import EngineOptions
from scaleenv.serve.session import EpisodeSession
from scaleenv.serve.threaded import EngineThread


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
    """openenv-core's ``Environment`` over an :class:`~scaleenv.serve.session.EpisodeSession` (see the module doc)."""

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
    """openenv-core's WebSocket client for :class:`ScaleEnvEnvironment` (async; ``.sync()`` for a blocking one)."""

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


def main(argv: list[str] | None = None) -> None:
    """``python -m scaleenv.integrations.openenv --log PATH [--task ID] [--host H] [--port P]``.

    Prints one line on stderr once it accepts connections (``... at http://HOST:PORT``;
    ``--port 0`` picks a free port)."""
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
    args = parser.parse_args(argv)
    try:
        app = create_app(args.log, args.task, max_concurrent_envs=args.max_sessions)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        parser.exit(2, f"{parser.prog}: cannot listen on {args.host}:{args.port}: {exc}\n")
    sock.listen(128)  # clients queue from now on, before uvicorn accepts
    port = sock.getsockname()[1]
    sys.stderr.write(f"scaleenv openenv: serving {args.log} at http://{args.host}:{port}\n")
    sys.stderr.flush()
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
