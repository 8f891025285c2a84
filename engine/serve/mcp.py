"""One served episode as an MCP server (``scaleenv serve-mcp``), on the official ``mcp`` SDK.

The episode of ``--task`` opens when the server starts; its verified tools are MCP tools
(input schema = the OpenAI function parameters), plus:

- ``talk_to_user {"message"}``: a message to the simulated user; returns the reply (and
  whether the user is done, and the reward once the episode has ended);
- ``end_episode {}``: end the episode; returns the reward, its breakdown and the diff.

The prompt ``episode`` (and the server's ``instructions``) carry the system prompt and
the user's opening message. Tool errors come back as ``is_error`` results, with the same
text a local policy sees. When the client goes away without ending, the episode is
ended (``policy_stopped``). Every call is an event, as for ``scaleenv serve``.

Runs under trio: the SDK is written against anyio, and its stdio server and its
streamable-HTTP app (served by Hypercorn's trio worker) run on anyio's trio backend
unchanged; no asyncio loop is involved.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server

from scaleenv.serve.environments import Environments, ServeError

SAY = "talk_to_user"
END = "end_episode"


def _text(obj: Any) -> str:
    return obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, default=str)


class EpisodeMcp:
    """The MCP handlers over one open served episode."""

    def __init__(self, envs: Environments, opened: dict[str, Any]) -> None:
        self.envs = envs
        self.opened = opened
        self.eid: str = opened["episode_id"]
        names = {t["function"]["name"] for t in opened["tools"]}
        self.say_name = SAY if SAY not in names else f"scaleenv_{SAY}"
        self.end_name = END if END not in names else f"scaleenv_{END}"

    def instructions(self) -> str:
        user = self.opened.get("user") or {}
        return (f"{self.opened['system_prompt']}\n\nEpisode {self.eid}. The customer says: {user.get('message', '')!r}\n"
                f"Talk to the customer with the {self.say_name} tool; call {self.end_name} when you are finished "
                "(it returns the reward).")

    def tools(self) -> list[types.Tool]:
        out = [types.Tool(name=t["function"]["name"], description=t["function"]["description"],
                          input_schema=t["function"]["parameters"]) for t in self.opened["tools"]]
        out.append(types.Tool(
            name=self.say_name, description="Send a message to the customer (the simulated user); returns their reply.",
            input_schema={"type": "object", "properties": {"message": {"type": "string", "description": "what to say"}},
                          "required": ["message"], "additionalProperties": False}))
        out.append(types.Tool(
            name=self.end_name, description="End the episode; returns the reward (1 when the task is done), its breakdown and the state diff.",
            input_schema={"type": "object", "properties": {}, "additionalProperties": False}))
        return out

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
                return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=out)
            out = await self.envs.step(self.eid, "", [{"id": None, "name": name, "arguments": args}])
        except ServeError as exc:
            return types.CallToolResult(content=[types.TextContent(text=_text(exc.to_json()))],
                                        structured_content=exc.to_json(), is_error=True)
        if out["ended"] and not out["tool_results"]:
            return types.CallToolResult(content=[types.TextContent(text=_text(out["result"]))],
                                        structured_content=out, is_error=True)
        res = out["tool_results"][0]
        return types.CallToolResult(content=[types.TextContent(text=res["content"])], structured_content=out,
                                    is_error=not res["ok"])

    def server(self) -> Server[Any]:
        async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            return types.ListToolsResult(tools=self.tools())

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            return await self.call(params.name, params.arguments)

        async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
            return types.ListPromptsResult(prompts=[types.Prompt(
                name="episode", description="The agent's system prompt and the customer's opening message")])

        async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
            if params.name != "episode":
                raise ValueError(f"unknown prompt {params.name!r}; this server has 'episode'")
            user = self.opened.get("user") or {}
            return types.GetPromptResult(
                description=self.opened["system_prompt"],
                messages=[types.PromptMessage(role="user", content=types.TextContent(text=user.get("message", "")))])

        return Server("scaleenv", version="0.1.0", instructions=self.instructions(),
                      on_list_tools=list_tools, on_call_tool=call_tool,
                      on_list_prompts=list_prompts, on_get_prompt=get_prompt)


async def serve_mcp_stdio(envs: Environments, task_id: str) -> dict[str, Any]:
    """Open an episode of ``task_id`` and serve it over stdin/stdout until the client leaves."""
    from mcp.server.stdio import stdio_server

    opened = await envs.open_episode(task_id)
    app = EpisodeMcp(envs, opened)
    server = app.server()
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        result = await envs.end(app.eid)
    return result


async def serve_mcp_http(envs: Environments, task_id: str, host: str, port: int, *,
                         task_status: Any = None) -> None:
    """Serve the episode over MCP streamable HTTP (``http://HOST:PORT/mcp``) with Hypercorn on trio."""
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    opened = await envs.open_episode(task_id)
    app = EpisodeMcp(envs, opened)
    asgi = app.server().streamable_http_app(host=host)
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    try:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(lambda task_status: serve(asgi, config, task_status=task_status))  # type: ignore[arg-type]
            if task_status is not None:
                task_status.started((binds, app.eid))
    finally:
        with trio.CancelScope(shield=True):
            await envs.end(app.eid)
