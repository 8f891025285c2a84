"""The run's tasks as a verifiers 0.4 environment (its ``verifiers.v1`` API), over
``scaleenv serve-mcp`` (``pip install 'verifiers==0.4.*'`` beside scaleenv: see the README).

verifiers 0.4 finds a taskset by module name, so the plugin is the top-level module
``scaleenv_verifiers`` (id ``scaleenv-verifiers``), which exports the three classes here::

    scaleenv serve-mcp --transport http --log run.lmdb --port 8765 &   # the episodes, over MCP

then :func:`load_environment` (``http://127.0.0.1:8765/mcp``), ``env.serving()`` and
``env.run_episode(task, vf.ModelContext(...))`` (the README has the whole snippet).

- :class:`ScaleEnvTaskset`: one :class:`ScaleEnvTask` per kept task the server lists
  (``list_tasks`` at its control endpoint ``/mcp``), ``TaskData.id`` = the task id.
- :class:`ScaleEnvEnv` (the environment of the taskset's module, so verifiers picks it):
  for each episode it calls ``open_episode`` on the control endpoint, which opens a
  served episode (recorded in the log like any) and answers its own MCP endpoint
  ``/mcp/episodes/<id>``; the agent plays a copy of the task whose system prompt is the
  episode's and whose tools are that endpoint (:class:`EpisodeToolset`, a
  :class:`verifiers.v1.Toolset` at a URL: verifiers launches nothing, its harness
  connects to scaleenv's server). Like verifiers' own ``user-sim`` env, the user opens:
  the simulated user's opening message is the agent's first turn, and each reply of the
  agent (a turn that ends without tool calls) is relayed to scaleenv's simulated user
  with ``talk_to_user``; its answer is the agent's next turn, until the user is done or
  gives up, a limit of the episode is hit, or the agent's run ends.
- :meth:`ScaleEnvTask.episode_reward`, the task's ``@vf.reward``: ``end_episode`` on the
  episode's endpoint (ends it ``policy_stopped`` if still open; idempotent otherwise)
  and its ``outcome.reward``, the rule-based grade of the final database (0 or 1).

The agent's harness is verifiers' ``null`` chat loop (tools over MCP, nothing executed
locally) in a local subprocess unless pinned otherwise; verifiers provisions that program
with ``uv`` (``uv sync --script``: openai, mcp, httpx), so ``uv`` must be on PATH. The episode's endpoint also lists ``talk_to_user``
and ``end_episode``; a model may call them itself (the reply then comes back as the
tool's result), as any MCP client of serve-mcp may. verifiers' harness sends no
headers to tool servers, so the server must run without tokens (a loopback address).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import verifiers.v1 as vf
from mcp import Client

from scaleenv._serve.mcp import END, LIST_TASKS, OPEN, SAY

PLUGIN_ID = "scaleenv-verifiers"


class ScaleEnvError(RuntimeError):
    """serve-mcp answered an error (its JSON body is the message)."""


async def call(url: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call MCP tool ``name`` at ``url`` (a fresh client: the episode is in the URL, so no
    session is kept) and return its structured answer; raises :class:`ScaleEnvError`
    for an error result. Cancellation closes the client."""
    async with Client(url) as client:
        res = await client.call_tool(name, arguments)
    out = res.structured_content
    if out is None:
        text = "".join(getattr(block, "text", "") for block in res.content)
        out = json.loads(text) if text.startswith("{") else {"text": text}
    if res.is_error:
        raise ScaleEnvError(f"{name} at {url}: {json.dumps(out, default=str)[:500]}")
    return out


def endpoint(control_url: str, mcp_path: str) -> str:
    """The absolute URL of an episode endpoint (``mcp_path``) on the control URL's server."""
    parts = urlsplit(control_url)
    return urlunsplit((parts.scheme, parts.netloc, mcp_path, "", ""))


class ScaleEnvTaskData(vf.TaskData):
    """A scaleenv task (``id`` = its task id, e.g. ``d00/t003``); ``episode_id`` is the
    log's id of the served episode the agent played (set by :class:`ScaleEnvEnv`)."""

    domain: str | None = None
    chain_length: int | None = None
    episode_id: str | None = None


class ScaleEnvTaskConfig(vf.TaskConfig):
    episode_url: str | None = None
    """The MCP endpoint of the served episode the agent plays (set per episode by
    :class:`ScaleEnvEnv`; unset on the taskset's seed tasks)."""


class EpisodeToolset(vf.Toolset):
    """One served episode's tools: scaleenv's own MCP endpoint (``config.url``), named
    as scaleenv names them (no prefix)."""

    TOOL_PREFIX = None


class ScaleEnvTask(vf.Task[ScaleEnvTaskData, vf.State, ScaleEnvTaskConfig]):
    """A kept task; its tools are its episode's endpoint and its reward the episode's."""

    @classmethod
    def toolsets(cls, config: ScaleEnvTaskConfig) -> list[vf.Toolset]:
        return [EpisodeToolset(vf.ToolsetConfig(url=config.episode_url))] if config.episode_url else []

    @vf.reward
    async def episode_reward(self) -> float:
        """The episode's rule-based reward (0 or 1): ``end_episode``'s ``outcome``."""
        if not self.config.episode_url:
            raise ValueError(f"task {self.data.id!r} was not played in a scaleenv episode (no episode_url); "
                             "run it through ScaleEnvEnv")
        outcome = await call(self.config.episode_url, END, {})
        return float(outcome["reward"])


class ScaleEnvTasksetConfig(vf.TasksetConfig):
    url: str = "http://127.0.0.1:8765/mcp"
    """serve-mcp's control endpoint."""
    domain: str | None = None
    """Only this domain's kept tasks (default: every kept task)."""
    task: ScaleEnvTaskConfig = ScaleEnvTaskConfig()


class ScaleEnvTaskset(vf.Taskset[ScaleEnvTask, ScaleEnvTasksetConfig]):
    """The kept tasks serve-mcp at ``config.url`` lists."""

    def load(self) -> Iterable[ScaleEnvTask]:
        args = {"domain": self.config.domain} if self.config.domain else {}
        listed = _sync(call(self.config.url, LIST_TASKS, args))
        for t in listed["tasks"]:
            data = ScaleEnvTaskData(id=t["task_id"], name=t["task_id"], domain=t["domain"],
                                    description=f"a {t['domain_name']} task (golden chain of {t['chain_length']} calls)",
                                    chain_length=t["chain_length"])
            yield ScaleEnvTask(data, self.config.task)


def _sync(coro: Any) -> Any:
    """Run ``coro`` to completion from sync code, inside a running event loop or not
    (``Taskset.load`` is sync and verifiers iterates it from its loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class ScaleEnvEnvConfig(vf.EnvConfig):
    agent: vf.AgentConfig = vf.AgentConfig(harness={"id": "null"}, runtime=vf.SubprocessConfig())
    """The policy's seat: verifiers' ``null`` chat loop (MCP tools only, no code runs) as a
    local subprocess by default (scaleenv's sandbox runs the tools; no container needed)."""


class ScaleEnvEnv(vf.Env[ScaleEnvEnvConfig]):
    """Each episode is a served scaleenv episode; turns are relayed to its simulated user."""

    async def run(self, task: vf.Task, agents: vf.Agents) -> None:
        """One episode of ``task``: awaits serve-mcp (open, each relayed reply) and the
        agent's turns. If it fails or is cancelled (verifiers' episode deadline), the
        served episode is ended (``policy_stopped``) before the error propagates, so it
        does not wait for the server's idle timeout; otherwise the task's reward ends it."""
        control = self.taskset.config.url
        opened = await call(control, OPEN, {"task_id": task.data.id})
        url = endpoint(control, opened["mcp_path"])
        played = type(task)(
            task.data.model_copy(update={"prompt": None, "system_prompt": opened["system_prompt"],
                                         "episode_id": opened["log_episode_id"]}),
            task.config.model_copy(update={"episode_url": url}))
        try:
            await self._relay(played, agents, opened, url)
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(call(url, END, {})), 60)
            raise

    async def _relay(self, played: vf.Task, agents: vf.Agents, opened: dict[str, Any], url: str) -> None:
        async with agents.agent.interaction(played) as agent:
            if opened["ended"]:  # the user ended it before the agent spoke: nothing to play
                return
            message = opened["user"]["message"]
            while True:
                turn = await agent.turn(message)
                if turn.terminated or not turn.last_reply.strip():
                    return  # the agent's run ended (or it stopped without a word): the reward ends the episode
                try:
                    out = await call(url, SAY, {"message": turn.last_reply})
                except ScaleEnvError:
                    return  # e.g. the model ended the episode with its own end_episode call
                if out["ended"] or out.get("user") is None:
                    return
                message = out["user"]["message"]


def load_environment(url: str = "http://127.0.0.1:8765/mcp", *, domain: str | None = None,
                     **env: Any) -> ScaleEnvEnv:
    """A :class:`ScaleEnvEnv` over serve-mcp's control endpoint ``url``; ``env`` are
    further :class:`ScaleEnvEnvConfig` fields (e.g. ``agent={"max_turns": 30}``)."""
    config = ScaleEnvEnvConfig(taskset=ScaleEnvTasksetConfig(id=PLUGIN_ID, url=url, domain=domain), **env)
    return ScaleEnvEnv(config)
