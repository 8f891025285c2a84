"""The environments over HTTP/1.1 + JSON (``scaleenv serve``), on the trio/h11 server of
:mod:`scaleenv._serve.http_json` (the one ``sim-server`` uses).

Routes (``GET /openapi.json`` describes them all; ``GET /docs`` renders that description):

- ``GET  /v1/health``
- ``GET  /v1/domains``, ``GET /v1/domains/<slot>``, ``GET /v1/domains/<slot>/tasks``
- ``GET  /v1/tasks``, ``GET /v1/tasks/<task_id>``
- ``POST /v1/episodes`` ``{"task_id"}``: episode id, tools (OpenAI function format),
  system prompt, the user's opening message
- ``GET  /v1/episodes/<episode_id>``: status, the conversation so far, the outcome once ended
- ``POST /v1/episodes/<episode_id>/step``: one assistant turn, OpenAI message shape
- ``POST /v1/episodes/<episode_id>/tool`` ``{"name", "arguments", "id"?}``: one tool call
- ``POST /v1/episodes/<episode_id>/message`` ``{"content"}``: a message to the user; the reply
- ``POST /v1/episodes/<episode_id>/end``: the outcome: reward, its breakdown, the state diff

Bodies are decoded into the Structs of :mod:`scaleenv._serve.api_types` (a bad or unknown
field is a 400 naming it). Ids contain slashes (``d00/t003``); send them raw or
percent-encoded. An episode id is ``<log id>-<cap>``: the log id (``d00/t003/s0``, what
``replay`` and ``export`` know) and a capability derived from the token that opened it
(:func:`scaleenv._serve.auth.seal`), so another token's request for it gets the same 404
as an id that does not exist.

Errors are ``{"error": {"message", "type", "code"}}`` (OpenAI's shape), with
``tool_result`` attached when a tool call was recorded as a tool error and ``outcome``
when the episode has ended.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import msgspec
import trio

from scaleenv._serve import api_types as api
from scaleenv._serve.auth import Auth, Principal, principal, seal, unseal
from scaleenv._serve.environments import Environments, ServeError
from scaleenv._serve.http_json import RawBody, serve_json
from scaleenv._serve.limits import LimitExceeded, Limits, clip, shorten
from scaleenv._serve.openapi import Operation, docs_html, openapi

ROUTES = ("GET /v1/health, GET /v1/domains[/<slot>[/tasks]], GET /v1/tasks[/<task_id>], POST /v1/episodes, "
          "GET /v1/episodes/<id>, POST /v1/episodes/<id>/step|tool|message|end, GET /openapi.json, GET /docs")
ACTIONS = ("step", "tool", "message", "end")
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs"})
"""Served without a token: the API's description says nothing about the run."""

E = "/v1/episodes/{episode_id}"
OPERATIONS = [
    Operation("get", "/v1/health", "Liveness, and how many episodes the caller has open", api.Health),
    Operation("get", "/v1/domains", "The run's domains with verified tools", api.DomainList),
    Operation("get", "/v1/domains/{domain}", "One domain (by slot, e.g. d00, or name)", api.Domain, errors=(404,)),
    Operation("get", "/v1/domains/{domain}/tasks", "The kept tasks of a domain", api.TaskList, errors=(404,)),
    Operation("get", "/v1/tasks", "Every kept task", api.TaskList),
    Operation("get", "/v1/tasks/{task_id}", "One kept task", api.Task, errors=(404,)),
    Operation("post", "/v1/episodes", "Open an episode of a kept task: its tools, system prompt and the user's "
              "opening message", api.EpisodeOpened, api.OpenEpisode, errors=(400, 404, 413, 429, 503)),
    Operation("get", E, "An episode's status, conversation and (once ended) outcome", api.EpisodeStatus, errors=(404,)),
    Operation("post", E + "/step", "One assistant turn: content and/or tool calls (OpenAI message shape)",
              api.StepResponse, api.StepRequest, errors=(400, 404, 409, 413),
              description="Tool calls run in order; a turn without tool calls goes to the user, who replies. "
                          "A turn with neither text nor calls ends the episode (policy_stopped)."),
    Operation("post", E + "/tool", "One tool call as its own assistant turn", api.ToolResponse, api.ToolRequest,
              errors=(400, 404, 409, 413, 422),
              description="A call the environment could not even try is recorded as the tool error it is and "
                          "answered 404 (unknown_tool), 400 (bad_json) or 422 (bad_args) with its tool_result."),
    Operation("post", E + "/message", "A message to the user; returns their reply", api.StepResponse,
              api.MessageRequest, errors=(400, 404, 409, 413)),
    Operation("post", E + "/end", "End the episode (idempotent); returns its outcome", api.Outcome, api.EndRequest,
              body_optional=True, errors=(400, 404)),
]
PATH_PARAMS = {
    "episode_id": "The id POST /v1/episodes returned (it contains '/': send it raw or percent-encoded).",
    "task_id": "A kept task id such as d00/t003 (contains '/').",
    "domain": "A domain slot (d00) or name.",
}
DESCRIPTION = ("A scaleenv run's environments for an outside policy: open episodes of kept tasks, call their tools, "
               "talk to the simulated user, end and get the rule-based reward. Every call is an event in the run's "
               "log, exactly as in a local rollout.")


def api_description() -> dict[str, Any]:
    """The OpenAPI document of this API."""
    return openapi("scaleenv environments", "1", DESCRIPTION, OPERATIONS, api.ErrorResponse, PATH_PARAMS)


def _decode(raw: bytes, kind: type[Any], optional: bool = False) -> Any:
    if optional and not raw.strip():
        return kind()
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ServeError(400, f"invalid request body: {shorten(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise ServeError(400, f"request body is not valid JSON: {shorten(str(exc))}") from None
    except RecursionError:
        raise LimitExceeded(400, "max_depth", "request body nests too deep to decode") from None


def _need(method: str, want: str, path: str) -> None:
    if method != want:
        raise ServeError(405, f"{method} {clip(path)}: use {want}", "method_not_allowed")


def _calls(calls: list[api.ToolCallIn] | None) -> list[dict[str, Any]] | None:
    if calls is None:
        return None
    out = []
    for i, c in enumerate(calls):
        flat = not isinstance(c.name, msgspec.UnsetType)
        nested = not isinstance(c.function, msgspec.UnsetType)
        if flat == nested:
            raise ServeError(400, f"tool_calls[{i}]: give either 'function': {{name, arguments}} (OpenAI) or a flat "
                                  "'name' and 'arguments', not " + ("both" if flat else "neither"))
        if nested:
            assert isinstance(c.function, api.FunctionCall)
            out.append({"id": c.id, "function": {"name": c.function.name, "arguments": c.function.arguments}})
        else:
            arguments = None if isinstance(c.arguments, msgspec.UnsetType) else c.arguments
            out.append({"id": c.id, "function": {"name": c.name, "arguments": arguments}})
    return out


class EnvHandler:
    """``(method, path, body, headers) -> (status, payload)`` over an :class:`Environments`.

    The caller's principal is :func:`scaleenv._serve.auth.principal` (set by the server);
    outside a server, ``anonymous`` stands in for it.
    """

    def __init__(self, envs: Environments, *, anonymous: Principal | None = None) -> None:
        self.envs = envs
        self.anonymous = anonymous or Auth().anonymous
        self.owners: dict[str, str] = {}
        spec = api_description()
        self.spec = RawBody("application/json", msgspec.json.encode(spec))
        self.docs = RawBody("text/html; charset=utf-8", docs_html(spec))

    async def __call__(self, method: str, path: str, raw: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        who = principal() or self.anonymous
        try:
            return 200, await self.route(method, unquote(path).rstrip("/") or "/", raw, who)
        except ServeError as exc:
            return exc.status, self._error(exc, who)

    def _outcome(self, result: dict[str, Any] | None, who: Principal) -> api.Outcome | None:
        if result is None:
            return None
        eid = result["episode_id"]
        return msgspec.convert({**result, "episode_id": seal(who, eid), "log_episode_id": eid}, api.Outcome)

    def _user(self, user: dict[str, Any] | None) -> api.UserReply | None:
        return None if user is None else msgspec.convert(user, api.UserReply)

    def _error(self, exc: ServeError, who: Principal) -> api.ErrorResponse:
        extra = exc.extra
        tool_result = extra.get("tool_result")
        return api.ErrorResponse(
            error=api.ErrorDetail(message=exc.message, type=exc.kind, code=exc.status),
            tool_result=msgspec.convert(tool_result, api.ToolResult) if tool_result is not None else None,
            ended=extra.get("ended", True if "result" in extra else None),
            outcome=self._outcome(extra.get("result"), who))

    def _episode(self, handle: str, who: Principal) -> str:
        """The log id of the caller's episode ``handle``; the same 404 for another
        principal's episode as for one that does not exist."""
        eid = unseal(who, handle)
        if eid is None or eid not in self.envs.episodes:
            raise ServeError(404, f"unknown episode {clip(handle)} (open one with POST /v1/episodes)", "not_found_error")
        return eid

    async def route(self, method: str, path: str, raw: bytes, who: Principal) -> Any:
        envs = self.envs
        if path == "/openapi.json":
            _need(method, "GET", path)
            return self.spec
        if path == "/docs":
            _need(method, "GET", path)
            return self.docs
        if path == "/v1/health":
            _need(method, "GET", path)
            mine = sum(1 for eid, owner in self.owners.items() if owner == who.name and not envs.episodes[eid].ended)
            return api.Health(ok=True, open_episodes=mine)
        if path == "/v1/domains":
            _need(method, "GET", path)
            return msgspec.convert({"domains": envs.domains_json()}, api.DomainList)
        if path.startswith("/v1/domains/"):
            _need(method, "GET", path)
            rest = path[len("/v1/domains/"):]
            if rest.endswith("/tasks"):
                return msgspec.convert({"tasks": envs.tasks_json(rest[: -len("/tasks")])}, api.TaskList)
            return msgspec.convert(envs.domain_json(rest), api.Domain)
        if path == "/v1/tasks":
            _need(method, "GET", path)
            return msgspec.convert({"tasks": envs.tasks_json()}, api.TaskList)
        if path.startswith("/v1/tasks/"):
            _need(method, "GET", path)
            return msgspec.convert(envs.task_json(path[len("/v1/tasks/"):]), api.Task)
        if path == "/v1/episodes":
            _need(method, "POST", path)
            return await self.open(_decode(raw, api.OpenEpisode), who)
        if path.startswith("/v1/episodes/"):
            rest = path[len("/v1/episodes/"):]
            handle, _, action = rest.rpartition("/")
            if action not in ACTIONS:
                _need(method, "GET", path)
                return self.status(self._episode(rest, who), who)
            _need(method, "POST", path)
            eid = self._episode(handle, who)
            if action == "step":
                return await self.step(eid, _decode(raw, api.StepRequest), who)
            if action == "tool":
                return await self.tool(eid, _decode(raw, api.ToolRequest), who)
            if action == "message":
                body = _decode(raw, api.MessageRequest)
                out = await envs.say(eid, body.content, token_ids=body.token_ids, logprobs=body.logprobs)
                return self._step_response(out, who)
            _decode(raw, api.EndRequest, optional=True)
            return self._outcome(await envs.end(eid), who)
        raise ServeError(404, f"no route {method} {clip(path)}; this server has {ROUTES}", "not_found_error")

    async def open(self, body: api.OpenEpisode, who: Principal) -> api.EpisodeOpened:
        out = await self.envs.open_episode(body.task_id)
        eid = out["episode_id"]
        self.owners[eid] = who.name
        return api.EpisodeOpened(
            episode_id=seal(who, eid), log_episode_id=eid, task_id=out["task_id"], domain=out["domain"],
            tools=out["tools"], system_prompt=out["system_prompt"], messages=out["messages"], user=self._user(out["user"]),
            limits=msgspec.convert(out["limits"], api.EpisodeLimits), ended=out["ended"],
            outcome=self._outcome(out["result"], who))

    def status(self, eid: str, who: Principal) -> api.EpisodeStatus:
        st = self.envs.status_json(eid)
        return api.EpisodeStatus(
            episode_id=seal(who, eid), log_episode_id=eid, task_id=st["task_id"], ended=st["ended"],
            user_done=st["user_done"], turns=st["turns"], tool_calls=st["tool_calls"], messages=st["messages"],
            outcome=self._outcome(st["result"], who))

    async def step(self, eid: str, body: api.StepRequest, who: Principal) -> api.StepResponse:
        if isinstance(body.content, msgspec.UnsetType) and isinstance(body.tool_calls, msgspec.UnsetType):
            raise ServeError(400, "a step needs 'content' and/or 'tool_calls' (a turn with an empty content and no "
                                  "tool calls ends the episode; POST .../end ends it too)")
        content = None if isinstance(body.content, msgspec.UnsetType) else body.content
        calls = None if isinstance(body.tool_calls, msgspec.UnsetType) else body.tool_calls
        out = await self.envs.step(eid, content, _calls(calls), token_ids=body.token_ids, logprobs=body.logprobs)
        return self._step_response(out, who)

    async def tool(self, eid: str, body: api.ToolRequest, who: Principal) -> api.ToolResponse:
        out = await self.envs.call_tool(eid, body.name, body.arguments, body.id,
                                        token_ids=body.token_ids, logprobs=body.logprobs)
        results = out["tool_results"]
        return api.ToolResponse(
            episode_id=seal(who, eid),
            tool_result=msgspec.convert(results[0], api.ToolResult) if results else None,
            ended=out["ended"], outcome=self._outcome(out["result"], who))

    def _step_response(self, out: dict[str, Any], who: Principal) -> api.StepResponse:
        return api.StepResponse(
            episode_id=seal(who, out["episode_id"]),
            tool_results=[msgspec.convert(r, api.ToolResult) for r in out["tool_results"]],
            user=self._user(out["user"]), ended=out["ended"], outcome=self._outcome(out["result"], who))


async def serve_environments(envs: Environments, host: str = "127.0.0.1", port: int = 0, *,
                             auth: Auth | None = None, limits: Limits | None = None, ssl_context: Any = None,
                             task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled. ``await nursery.start(serve_environments, envs, host, 0)`` returns the port.

    ``auth``, ``limits`` and ``ssl_context`` as for :func:`~scaleenv._serve.http_json.serve_json`
    (limits default to the environments' own).
    """
    auth = auth if auth is not None else Auth()
    handler = EnvHandler(envs, anonymous=auth.anonymous)
    await serve_json(handler, host, port, auth=auth, limits=limits or envs.limits, ssl_context=ssl_context,
                     public_paths=PUBLIC_PATHS, task_status=task_status)
