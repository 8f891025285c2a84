"""Served episodes as MCP servers (``scaleenv serve-mcp``), on the official ``mcp`` SDK.

An episode's MCP tools are its verified tools (input schema = the OpenAI function
parameters), plus:

- ``talk_to_user {"message"}``: a message to the simulated user; returns the reply (and
  whether the user is done, and the ``outcome`` once the episode has ended);
- ``end_episode {}``: end the episode; returns the outcome: reward, breakdown and diff.

The prompt ``episode`` carries the system prompt and the user's opening message. Tool
errors come back as ``is_error`` results, with the same text a local policy sees. Every
call is an event, as for ``scaleenv serve``.

Two transports:

- **stdio** (:func:`serve_mcp_stdio`): one client, one episode of ``--task``, opened when
  the server starts (its ``instructions`` carry the system prompt and the opening
  message) and ended (``policy_stopped``) when the client goes away without ending it.
- **streamable HTTP** (:func:`serve_mcp_http`): many clients, many episodes at once. The
  control endpoint ``/mcp`` has ``list_tasks`` and ``open_episode {"task_id"}``; the
  latter opens an episode and answers its own endpoint, ``/mcp/episodes/<episode_id>``,
  where the episode's tools are. The episode is in the URL, so it works the same for
  clients of every protocol revision (with sessions or without). Every request needs a
  bearer token when the server has tokens (:mod:`scaleenv._serve.auth`); an episode
  belongs to the token that opened it (its id carries a capability derived from it), and
  another token's requests for it get the same 404 as an unknown path. Request bodies
  are bounded by :class:`~scaleenv._serve.limits.Limits` (size and read time) before the
  SDK sees them; Hypercorn bounds the headers and serves TLS when given a certificate.
  An episode nobody touches for ``idle_timeout`` ends (``timeout``).

Runs under trio: the SDK is written against anyio, and its stdio server and its
streamable-HTTP app (served by Hypercorn's trio worker) run on anyio's trio backend
unchanged; no asyncio loop is involved.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
import trio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel import Server

from scaleenv._serve.auth import PRINCIPAL_SCOPE_KEY, Auth, BearerAuthASGI, Principal, seal, unseal
from scaleenv._serve.environments import Environments, ServeError
from scaleenv._serve.limits import LimitExceeded, Limits, clip

SAY = "talk_to_user"
END = "end_episode"
LIST_TASKS = "list_tasks"
OPEN = "open_episode"
MCP_PATH = "/mcp"
EPISODES_PATH = "/mcp/episodes/"
EPISODE_SCOPE_KEY = "scaleenv.episode"

CONTROL_INSTRUCTIONS = (
    "scaleenv environments. Call list_tasks to see the kept tasks and open_episode {task_id} to start an episode; "
    "it answers the episode's own MCP endpoint (/mcp/episodes/<episode_id>), whose tools are the environment's tools "
    "plus talk_to_user (the simulated customer replies) and end_episode (returns the reward). The prompt 'episode' "
    "there carries the system prompt and the customer's opening message.")


def _text(obj: Any) -> str:
    return obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, default=str)


def _public(out: dict[str, Any]) -> dict[str, Any]:
    """An answer with the names of the HTTP API: the episode's score is ``outcome``
    (``result`` is only ever a tool's result, inside ``tool_results``)."""
    if "result" not in out:
        return out
    renamed = {k: v for k, v in out.items() if k != "result"}
    renamed["outcome"] = out["result"]
    return renamed


def _error(obj: dict[str, Any]) -> types.CallToolResult:
    obj = _public(obj)
    return types.CallToolResult(content=[types.TextContent(text=_text(obj))], structured_content=obj, is_error=True)


class EpisodeTools:
    """The MCP view of one served episode: its tools, prompt and calls."""

    def __init__(self, envs: Environments, eid: str) -> None:
        self.envs = envs
        self.eid = eid
        ep = envs.episodes[eid].ep
        self.functions = [t["function"] for t in ep.tools]
        names = {f["name"] for f in self.functions}
        self.say_name = SAY if SAY not in names else f"scaleenv_{SAY}"
        self.end_name = END if END not in names else f"scaleenv_{END}"
        messages = ep.policy_messages
        self.system_prompt: str = messages[0]["content"]
        self.opening: str = next((m["content"] for m in messages if m["role"] == "user"), "") or ""

    def instructions(self) -> str:
        return (f"{self.system_prompt}\n\nEpisode {self.eid}. The customer says: {self.opening!r}\n"
                f"Talk to the customer with the {self.say_name} tool; call {self.end_name} when you are finished "
                "(it returns the reward).")

    def tools(self) -> list[types.Tool]:
        out = [types.Tool(name=f["name"], description=f["description"], input_schema=f["parameters"])
               for f in self.functions]
        out.append(types.Tool(
            name=self.say_name, description="Send a message to the customer (the simulated user); returns their reply.",
            input_schema={"type": "object", "properties": {"message": {"type": "string", "description": "what to say"}},
                          "required": ["message"], "additionalProperties": False}))
        out.append(types.Tool(
            name=self.end_name, description="End the episode; returns the reward (1 when the task is done), its breakdown and the state diff.",
            input_schema={"type": "object", "properties": {}, "additionalProperties": False}))
        return out

    def prompt(self) -> types.GetPromptResult:
        return types.GetPromptResult(
            description=self.system_prompt,
            messages=[types.PromptMessage(role="user", content=types.TextContent(text=self.opening))])

    async def call(self, name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        args = arguments or {}
        try:
            if name == self.end_name:
                res = await self.envs.end(self.eid)
                return types.CallToolResult(content=[types.TextContent(text=_text(res))], structured_content=res)
            if name == self.say_name:
                out = await self.envs.say(self.eid, args.get("message"))
                user = out.get("user") or {}
                text = user.get("message", "")
                if out["ended"]:
                    text += f"\n[episode ended: {out['result']['reason']}; reward {out['result']['reward']}]"
                return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=_public(out))
            out = await self.envs.step(self.eid, "", [{"id": None, "name": name, "arguments": args}])
        except ServeError as exc:
            return _error(exc.to_json())
        except LimitExceeded as exc:
            return _error(exc.to_json())
        if out["ended"] and not out["tool_results"]:
            return types.CallToolResult(content=[types.TextContent(text=_text(out["result"]))],
                                        structured_content=_public(out), is_error=True)
        res = out["tool_results"][0]
        return types.CallToolResult(content=[types.TextContent(text=res["content"])], structured_content=_public(out),
                                    is_error=not res["ok"])


def episode_server(tools: EpisodeTools) -> Server[Any]:
    """An MCP server over one episode (stdio)."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools.tools())

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await tools.call(params.name, params.arguments)

    async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[types.Prompt(
            name="episode", description="The agent's system prompt and the customer's opening message")])

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        if params.name != "episode":
            raise ValueError(f"unknown prompt {clip(params.name)}; this server has 'episode'")
        return tools.prompt()

    return Server("scaleenv", version="0.1.0", instructions=tools.instructions(),
                  on_list_tools=list_tools, on_call_tool=call_tool,
                  on_list_prompts=list_prompts, on_get_prompt=get_prompt)


async def serve_mcp_stdio(envs: Environments, task_id: str) -> dict[str, Any]:
    """Open an episode of ``task_id`` and serve it over stdin/stdout until the client leaves;
    returns the episode's outcome (ended ``policy_stopped`` if the client did not end it)."""
    from mcp.server.stdio import stdio_server

    opened = await envs.open_episode(task_id)
    tools = EpisodeTools(envs, opened["episode_id"])
    server = episode_server(tools)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        result = await envs.end(tools.eid)
    return result


# ---- streamable HTTP: many episodes, each at its own endpoint --------------------------


class McpEnvironments:
    """The handlers of the HTTP MCP server: the control tools at ``/mcp`` and each
    episode's tools at ``/mcp/episodes/<episode_id>`` (which episode a request is for is
    read from its URL, resolved by the front middleware into the ASGI scope)."""

    def __init__(self, envs: Environments, default_task: str | None = None) -> None:
        self.envs = envs
        self.default_task = default_task
        self._tools: dict[str, EpisodeTools] = {}

    def _scope(self, ctx: Any) -> dict[str, Any]:
        request = getattr(ctx, "request", None)
        return getattr(request, "scope", None) or {}

    def episode_of(self, ctx: Any) -> EpisodeTools | None:
        eid = self._scope(ctx).get(EPISODE_SCOPE_KEY)
        if eid is None:
            return None
        tools = self._tools.get(eid)
        if tools is None:
            tools = self._tools[eid] = EpisodeTools(self.envs, eid)
        return tools

    def control_tools(self) -> list[types.Tool]:
        task_schema: dict[str, Any] = {"type": "string", "description": "a kept task id, e.g. d00/t003"}
        open_schema: dict[str, Any] = {"type": "object", "properties": {"task_id": task_schema},
                                       "additionalProperties": False}
        if self.default_task is None:
            open_schema["required"] = ["task_id"]
        else:
            task_schema["description"] += f" (default {self.default_task})"
        return [
            types.Tool(name=LIST_TASKS, description="The kept tasks this server can open episodes of.",
                       input_schema={"type": "object", "properties": {"domain": {"type": "string"}},
                                     "additionalProperties": False}),
            types.Tool(name=OPEN, description="Open an episode of a task; answers its MCP endpoint "
                       "(/mcp/episodes/<episode_id>), system prompt and the customer's opening message.",
                       input_schema=open_schema),
        ]

    async def call_control(self, ctx: Any, name: str, args: dict[str, Any]) -> types.CallToolResult:
        try:
            if name == LIST_TASKS:
                tasks = self.envs.tasks_json(args.get("domain"))
                return types.CallToolResult(content=[types.TextContent(text=_text(tasks))],
                                            structured_content={"tasks": tasks})
            if name == OPEN:
                who: Principal = self._scope(ctx)[PRINCIPAL_SCOPE_KEY]
                opened = await self.envs.open_episode(args.get("task_id", self.default_task))
                eid = opened["episode_id"]
                handle = seal(who, eid)
                tools = self._tools[eid] = EpisodeTools(self.envs, eid)
                out = {"episode_id": handle, "log_episode_id": eid, "mcp_path": EPISODES_PATH + handle,
                       "task_id": opened["task_id"], "system_prompt": tools.system_prompt,
                       "user": opened["user"], "tools": [t.name for t in tools.tools()],
                       "ended": opened["ended"], "outcome": opened["result"]}
                return types.CallToolResult(content=[types.TextContent(text=_text(out))], structured_content=out)
        except ServeError as exc:
            return _error(exc.to_json())
        return _error({"error": {"message": f"unknown tool {clip(name)}; /mcp has {LIST_TASKS} and {OPEN}",
                                 "type": "unknown_tool", "code": 404}})

    def server(self) -> Server[Any]:
        async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            tools = self.episode_of(ctx)
            return types.ListToolsResult(tools=tools.tools() if tools else self.control_tools())

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            tools = self.episode_of(ctx)
            if tools is None:
                return await self.call_control(ctx, params.name, params.arguments or {})
            return await tools.call(params.name, params.arguments)

        async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
            if self.episode_of(ctx) is None:
                return types.ListPromptsResult(prompts=[])
            return types.ListPromptsResult(prompts=[types.Prompt(
                name="episode", description="The agent's system prompt and the customer's opening message")])

        async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
            tools = self.episode_of(ctx)
            if tools is None or params.name != "episode":
                raise ValueError(f"unknown prompt {clip(params.name)}; an episode's endpoint has 'episode'")
            return tools.prompt()

        return Server("scaleenv", version="0.1.0", instructions=CONTROL_INSTRUCTIONS,
                      on_list_tools=list_tools, on_call_tool=call_tool,
                      on_list_prompts=list_prompts, on_get_prompt=get_prompt)


async def _json_response(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class McpFront:
    """ASGI middleware in front of the SDK's app, behind :class:`BearerAuthASGI`: the
    episode in the URL (``/mcp/episodes/<id>`` is served as ``/mcp`` with the episode in
    the scope) and the body limits (size, read time), so nothing addressed to another
    token's episode, or oversized, reaches the SDK."""

    def __init__(self, app: Any, envs: Environments, limits: Limits) -> None:
        self.app = app
        self.envs = envs
        self.limits = limits

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        who: Principal = scope[PRINCIPAL_SCOPE_KEY]
        path: str = scope["path"].rstrip("/")
        scope = dict(scope)
        # The SDK binds its sessions to this principal (another token's request for a
        # session gets 404, as for an unknown one).
        scope["user"] = AuthenticatedUser(AccessToken(token=who.name, client_id=who.name, scopes=[]))
        if path.startswith(EPISODES_PATH):
            handle = path[len(EPISODES_PATH):]
            eid = unseal(who, handle)
            if eid is None or eid not in self.envs.episodes:
                await _json_response(send, 404, {"error": {"message": f"unknown episode {clip(handle)}",
                                                           "type": "not_found_error", "code": 404}})
                return
            scope[EPISODE_SCOPE_KEY] = eid
        elif path != MCP_PATH:
            await _json_response(send, 404, {"error": {"message": f"no MCP endpoint at {clip(path)}; use {MCP_PATH} "
                                                       f"or {EPISODES_PATH}<episode_id>", "type": "not_found_error", "code": 404}})
            return
        scope["path"] = MCP_PATH
        scope["raw_path"] = MCP_PATH.encode()
        body = await self._body(receive, send)
        if body is None:
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _body(self, receive: Any, send: Any) -> bytes | None:
        limits = self.limits
        body = bytearray()
        with trio.move_on_after(limits.body_timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                body += message.get("body", b"")
                if len(body) > limits.max_body_bytes:
                    err = LimitExceeded(413, "max_body_bytes", f"request body is larger than max_body_bytes={limits.max_body_bytes}")
                    await _json_response(send, 413, err.to_json())
                    return None
                if not message.get("more_body"):
                    return bytes(body)
        err = LimitExceeded(408, "body_timeout_s", f"the request body did not arrive within body_timeout_s={limits.body_timeout_s:g}")
        await _json_response(send, 408, err.to_json())
        return None

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def serve_mcp_http(envs: Environments, host: str, port: int, *, task_id: str | None = None,
                         auth: Auth | None = None, limits: Limits | None = None,
                         certfile: str | None = None, keyfile: str | None = None,
                         task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve MCP streamable HTTP (``/mcp`` and ``/mcp/episodes/<id>``) with Hypercorn on trio
    until cancelled; ``task_status.started(bind URLs)``. ``task_id``: the task
    ``open_episode`` opens when not told. Episodes still open when it stops are ended by
    the :class:`Environments` (reason ``error``)."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    auth = auth if auth is not None else Auth()
    limits = limits if limits is not None else envs.limits
    front = McpEnvironments(envs, task_id)
    server = front.server()
    # JSON answers, not SSE streams: nothing here notifies a client mid-request, and plain
    # JSON is what simple trainer clients read most easily.
    sdk_app = server.streamable_http_app(host=host, max_request_body_size=limits.max_body_bytes, json_response=True)
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.loglevel = "WARNING"  # errors still reach stderr; our own line says where it listens
    config.h11_max_incomplete_size = limits.max_header_bytes
    config.keep_alive_timeout = limits.header_timeout_s
    if certfile is not None and keyfile is not None:
        config.certfile, config.keyfile = certfile, keyfile
    app = BearerAuthASGI(McpFront(sdk_app, envs, limits), auth)
    async with server.session_manager.run(), trio.open_nursery() as nursery:
        binds = await nursery.start(lambda task_status: serve(app, config, task_status=task_status))  # type: ignore[arg-type]
        task_status.started(binds)
