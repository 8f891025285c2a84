"""The run's tasks as a verifiers environment (``pip install 'scaleenv[verifiers]'``).

verifiers' classic environment API (``vf.MultiTurnEnv``, ``vf.Rubric``,
``vf.load_environment``), which verifiers 0.3.x ships and 0.4 dropped for its v1 stack::

    import verifiers as vf
    from openai import AsyncOpenAI

    env = vf.load_environment("scaleenv.integrations.verifiers", log="run.lmdb")
    client = vf.OpenAIChatCompletionsClient(AsyncOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="x"))
    results = env.evaluate_sync(client, model="my-model", num_examples=4, rollouts_per_example=2)
    results["outputs"][0]["reward"]       # the episode's rule-based reward

:func:`load_environment` returns a :class:`ScaleEnvVerifiersEnv`, a ``vf.MultiTurnEnv``
with one dataset row per kept task of the run. Each rollout is a served episode
(recorded in the log like any): ``setup_state`` opens it, and its first messages
(system prompt, the simulated user's opening) become the rollout's prompt and its
domain's tools the rollout's ``tool_defs``; after each model turn, ``env_response``
plays it in the episode and answers with the tool results, or with the user's reply when
the turn spoke to the user; when the episode ends (the user is done or gives up, a
limit) its last messages are the final environment response. Every rollout's episode is
ended when the rollout is cleaned up (``policy_stopped`` if verifiers stopped it first,
e.g. at ``max_turns``: the model's last turn then never reached the environment, so it is in
verifiers' completion but not in the episode's log). The rubric's one reward function, :func:`episode_reward`, reads
the episode's rule-based reward (0 or 1); ``episode_id`` and the whole result stay in
the state (``state["scaleenv"]``).

Rows carry a seed (``info.seed``): every rollout of a row opens its episode with it, so
the simulated user answers a group's rollouts alike and their rewards differ by the
policy alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import verifiers as vf
from datasets import Dataset

from scaleenv._runner import EngineOptions
from scaleenv._serve.session import EpisodeSession
from scaleenv._serve.threaded import EngineThread

ENV_ID = "scaleenv.integrations.verifiers"


def _message(m: dict[str, Any]) -> Any:
    """A chat message dict as verifiers' message type."""
    if m["role"] == "tool":
        return vf.ToolMessage(tool_call_id=m["tool_call_id"], content=m["content"])
    if m["role"] == "user":
        return vf.UserMessage(content=m["content"])
    if m["role"] == "system":
        return vf.SystemMessage(content=m["content"])
    raise ValueError(f"unexpected {m['role']!r} message from the environment")


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(getattr(part, "text", "") or (part.get("text", "") if isinstance(part, dict) else "")
                   for part in content)


async def episode_reward(state: Any) -> float:
    """The episode's rule-based reward (0 or 1): the rubric's reward function."""
    result = (state.get("scaleenv") or {}).get("result")
    return float(result["reward"]) if result else 0.0


class ScaleEnvVerifiersEnv(vf.MultiTurnEnv):
    """A ``vf.MultiTurnEnv`` whose rollouts are served scaleenv episodes (see the module doc)."""

    def __init__(self, log: str, *, tasks: list[str] | None = None, seed: int = 0, label: str = "",
                 max_turns: int = 64, options: Any = None, idle_timeout: float = 600.0, **kwargs: Any) -> None:
        self.log = log
        self.label = label
        self.options = options if options is not None else EngineOptions(progress=False)
        self.idle_timeout = idle_timeout
        self._engine: EngineThread | None = EngineThread.acquire(log, self.options, idle_timeout)  # held: kept warm
        kept = self._engine.call("kept_tasks")
        unknown = sorted(set(tasks or []) - set(kept))
        if unknown:
            self._engine.release()
            raise ValueError(f"no kept task {unknown[0]!r} in {log}; kept tasks look like {kept[:4]}")
        rows = [{"prompt": [{"role": "user", "content": f"scaleenv task {t}"}],  # replaced by the episode's opening
                 "info": {"task_id": t, "seed": seed * 1_000_003 + i}}
                for i, t in enumerate(tasks or kept)]
        dataset = Dataset.from_list(rows)
        super().__init__(dataset=dataset, eval_dataset=dataset, rubric=vf.Rubric(funcs=[episode_reward]),
                         max_turns=max_turns, **kwargs)

    async def setup_state(self, state: Any) -> Any:
        info = state["info"]
        session = await asyncio.to_thread(EpisodeSession, self.log, label=self.label, options=self.options,
                                          idle_timeout=self.idle_timeout)
        state["scaleenv"] = {"session": session, "episode_id": None, "result": None}
        opened = await asyncio.to_thread(session.open, info["task_id"], seed=info.get("seed"))
        state["scaleenv"].update(episode_id=opened.episode_id, result=opened.result)
        state["prompt"] = [_message(m) for m in opened.messages]
        state["tool_defs"] = [vf.Tool(name=t["function"]["name"], description=t["function"]["description"],
                                      parameters=t["function"]["parameters"]) for t in opened.tools]
        if opened.result is not None:  # the user ended it before the agent spoke
            state["final_env_response"] = []
        return state

    async def env_response(self, messages: Any, state: Any, **kwargs: Any) -> Any:
        last = messages[-1]
        calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                 for c in (getattr(last, "tool_calls", None) or [])]
        session: EpisodeSession = state["scaleenv"]["session"]
        out = await asyncio.to_thread(session.step, _text(getattr(last, "content", "")), calls or None)
        reply = [_message(m) for m in out.messages]
        if out.ended:
            state["scaleenv"]["result"] = out.result
            state["final_env_response"] = reply
        return reply

    @vf.cleanup
    async def end_episode(self, state: Any) -> None:
        """End the rollout's episode if it is still open, and keep its result for the rubric."""
        served = state.get("scaleenv")
        if not served or served.get("session") is None:
            return
        session: EpisodeSession = served.pop("session")
        try:
            if served["result"] is None and session.episode_id is not None:
                served["result"] = await asyncio.to_thread(session.end)
        finally:
            await asyncio.to_thread(session.close)

    def close(self) -> None:
        """Give the engine back (the last user on the log stops it: the log is then closed)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.release()

    @vf.teardown
    async def release_engine(self) -> None:
        self.close()  # not in a worker thread: verifiers may tear down at interpreter exit


def load_environment(log: str = "scaleenv.lmdb", *, tasks: list[str] | None = None, seed: int = 0, label: str = "",
                     max_turns: int = 64, **kwargs: Any) -> ScaleEnvVerifiersEnv:
    """The run at ``log`` as a verifiers environment (``vf.load_environment("scaleenv.integrations.verifiers",
    log=...)``): one row per kept task (or per id in ``tasks``), rows seeded from ``seed``."""
    return ScaleEnvVerifiersEnv(log, tasks=tasks, seed=seed, label=label, max_turns=max_turns, **kwargs)
