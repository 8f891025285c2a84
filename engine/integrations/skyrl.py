"""The run's tasks as a SkyRL-gym text environment (``pip install 'scaleenv[skyrl]'``).

Importing this module registers ``scaleenv`` with ``skyrl_gym``::

    import skyrl_gym
    from scaleenv.integrations.skyrl import dataset_rows

    rows = dataset_rows("run.lmdb")        # one row per kept task: prompt, env_class, extra_info
    env = skyrl_gym.make("scaleenv", env_config={"log": "run.lmdb"}, extras=rows[0])
    prompt, metadata = env.init(rows[0]["prompt"])   # [system (with the tools), the user's opening]
    out = env.step('<tool_call>{"name": "get_order", "arguments": {"order_id": "o1"}}</tool_call>')
    out["observations"], out["reward"], out["done"]
    env.close()

:class:`ScaleEnvSkyRL` is skyrl-gym's ``BaseTextEnv`` over
:class:`scaleenv._serve.session.EpisodeSession`: ``init`` opens a served episode of the row's
task (``extra_info.task_id``) with the row's seed (``extra_info.seed``; same seed, same
conversation) and returns its first messages, the system message carrying the tool
schemas and the call format (SkyRL's generator renders the chat without ``tools``);
``step(text)`` reads the model's raw text as one assistant turn (Hermes/Qwen
``<tool_call>`` blocks or OpenAI JSON) and returns the new messages (tool results, the
user's reply), the rule-based reward once the episode ends (0 before) and ``done``;
``metadata`` holds the user's reply, the episode's result and the turn as read.
``close()`` ends an episode still open (``policy_stopped``). The log is given by
``env_config["log"]`` or ``extra_info.log``.
"""

from __future__ import annotations

from typing import Any

from skyrl_gym.envs.registration import register, registry
from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

from scaleenv._serve.session import EpisodeSession
from scaleenv._serve.threaded import EngineThread
from scaleenv._serve.tool_text import with_tools_block

ENV_CLASS = "scaleenv"


class ScaleEnvSkyRL(BaseTextEnv):
    """skyrl-gym's ``BaseTextEnv`` over one served episode (see the module doc)."""

    def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None) -> None:
        super().__init__()
        extras = extras or {}
        info = dict(extras.get("extra_info") or {})
        config = dict(env_config or {})
        log = config.get("log") or info.get("log")
        if not log:
            raise ValueError("the scaleenv SkyRL env needs the run's log: env_config={'log': PATH} "
                             "or extra_info.log in the dataset row")
        self.task_id: str | None = info.get("task_id")
        if not self.task_id:
            raise ValueError("the scaleenv SkyRL env needs the row's task: extra_info.task_id (see dataset_rows)")
        self.seed: int | None = info.get("seed")
        self.max_turns = int(info.get("max_turns") or config.get("max_turns") or 10_000)
        self._session = EpisodeSession(str(log), label=str(config.get("label", "")), options=config.get("options"))
        self.episode_id: str | None = None
        self.result: dict[str, Any] | None = None

    def init(self, prompt: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Open the episode; its first messages (the tools in the system message) replace the row's prompt."""
        assert self.task_id is not None
        opened = self._session.open(self.task_id, seed=self.seed)
        self.episode_id, self.turns, self.result = opened.episode_id, 0, opened.result
        return with_tools_block(opened.messages, opened.tools), {"episode_id": opened.episode_id,
                                                                 "task_id": self.task_id, "tools": opened.tools}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        self.turns += 1
        out = self._session.step_text(action)
        self.result = out.result
        metadata = {"user": out.user, "result": out.result, "parsed": out.parsed, "truncated": out.truncated}
        return BaseTextEnvStepOutput(observations=out.messages, reward=out.reward, done=out.ended,
                                     metadata=metadata, postprocessed_action=None)

    def get_metrics(self) -> dict[str, Any]:
        result = self.result or {}
        return {"turns": self.turns, "tool_calls": result.get("tool_calls", 0),
                "reward": result.get("reward", 0.0), "ended": float(self.result is not None)}

    def close(self) -> None:
        self._session.close()


def dataset_rows(log: str, *, repeats: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """One SkyRL dataset row per kept task of the run (``repeats`` rows each, with their
    own seeds derived from ``seed``): ``prompt`` (the environment's system prompt; ``init``
    replaces it with the episode's first messages), ``env_class`` and ``extra_info``."""
    engine = EngineThread.acquire(log)
    try:
        tasks = engine.call("kept_tasks")
    finally:
        engine.release()
    rows = []
    for i, task_id in enumerate(tasks):
        for r in range(repeats):
            rows.append({"prompt": [{"role": "system", "content": f"scaleenv task {task_id}"}],
                         "env_class": ENV_CLASS,
                         "extra_info": {"log": log, "task_id": task_id, "seed": seed * 1_000_003 + i * 1009 + r}})
    return rows


def _register() -> None:
    if ENV_CLASS not in registry:
        register(id=ENV_CLASS, entry_point="scaleenv.integrations.skyrl:ScaleEnvSkyRL")


_register()
