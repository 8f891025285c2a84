"""The environments over HTTP/1.1 + JSON (``scaleenv serve``), on the trio/h11 server of
:mod:`scaleenv.serve.http_json` (the one ``sim-server`` uses).

Routes (ids contain slashes: ``d00/t003``, ``d00/t003/s0``):

- ``GET  /v1/health``
- ``GET  /v1/domains``, ``GET /v1/domains/<slot>``, ``GET /v1/domains/<slot>/tasks``
- ``GET  /v1/tasks``, ``GET /v1/tasks/<task_id>``
- ``POST /v1/episodes`` ``{"task_id"}``: episode id, tools (OpenAI function format),
  system prompt, the user's opening message
- ``GET  /v1/episodes/<eid>``: status, the conversation so far, the result once ended
- ``POST /v1/episodes/<eid>/step`` ``{"content", "tool_calls", "token_ids"?, "logprobs"?}``:
  one assistant turn, OpenAI message shape
- ``POST /v1/episodes/<eid>/tool`` ``{"name", "arguments", "id"?}``: one tool call
- ``POST /v1/episodes/<eid>/message`` ``{"content"}``: a message to the user; the reply
- ``POST /v1/episodes/<eid>/end``: the reward, its breakdown and the state diff

Errors are ``{"error": {"message", "type", "code"}}`` (OpenAI's shape), with
``tool_result`` attached when a tool call was recorded as a tool error.
"""

from __future__ import annotations

import json
from typing import Any

import trio

from scaleenv.serve.http_json import serve_json

from scaleenv.serve.environments import Environments, ServeError

ROUTES = ("GET /v1/health, GET /v1/domains[/<slot>[/tasks]], GET /v1/tasks[/<task_id>], POST /v1/episodes, "
          "GET /v1/episodes/<id>, POST /v1/episodes/<id>/step|tool|message|end")
ACTIONS = ("step", "tool", "message", "end")


def _body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ServeError(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ServeError(400, "request body must be a JSON object")
    return body


def _need(method: str, want: str, path: str) -> None:
    if method != want:
        raise ServeError(405, f"{method} {path}: use {want}", "method_not_allowed")


class EnvHandler:
    """``(method, path, body) -> (status, JSON)`` over an :class:`Environments`."""

    def __init__(self, envs: Environments) -> None:
        self.envs = envs

    async def __call__(self, method: str, path: str, raw: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        try:
            return 200, await self.route(method, path.rstrip("/") or "/", raw)
        except ServeError as exc:
            return exc.status, exc.to_json()

    async def route(self, method: str, path: str, raw: bytes) -> Any:
        envs = self.envs
        if path == "/v1/health":
            _need(method, "GET", path)
            return {"ok": True, "open_episodes": sum(not s.ended for s in envs.episodes.values())}
        if path == "/v1/domains":
            _need(method, "GET", path)
            return {"domains": envs.domains_json()}
        if path.startswith("/v1/domains/"):
            _need(method, "GET", path)
            rest = path[len("/v1/domains/"):]
            if rest.endswith("/tasks"):
                return {"tasks": envs.tasks_json(rest[: -len("/tasks")])}
            return envs.domain_json(rest)
        if path == "/v1/tasks":
            _need(method, "GET", path)
            return {"tasks": envs.tasks_json()}
        if path.startswith("/v1/tasks/"):
            _need(method, "GET", path)
            return envs.task_json(path[len("/v1/tasks/"):])
        if path == "/v1/episodes":
            _need(method, "POST", path)
            return await envs.open_episode(_body(raw).get("task_id"))
        if path.startswith("/v1/episodes/"):
            rest = path[len("/v1/episodes/"):]
            eid, _, action = rest.rpartition("/")
            if action not in ACTIONS:
                _need(method, "GET", path)
                return envs.status_json(rest)
            _need(method, "POST", path)
            body = _body(raw)
            extra = {"token_ids": body.get("token_ids"), "logprobs": body.get("logprobs")}
            if action == "step":
                return await envs.step(eid, body.get("content", ""), body.get("tool_calls"), **extra)
            if action == "tool":
                return await envs.call_tool(eid, body.get("name"), body.get("arguments"), body.get("id"), **extra)
            if action == "message":
                return await envs.say(eid, body.get("content"), **extra)
            return await envs.end(eid)
        raise ServeError(404, f"no route {method} {path}; this server has {ROUTES}", "not_found_error")


async def serve_environments(envs: Environments, host: str = "127.0.0.1", port: int = 0, *,
                             task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled. ``await nursery.start(serve_environments, envs, host, 0)`` returns the port."""
    await serve_json(EnvHandler(envs), host, port, task_status=task_status)
