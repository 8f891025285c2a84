"""gymnasium environments over a run's tasks (``pip install 'scaleenv[gym]'``).

Importing this module registers two ids with gymnasium::

    import gymnasium as gym
    import scaleenv.integrations.gym  # registers the ids (or: gym.make("scaleenv.integrations.gym:scaleenv/Chat-v0", ...))

    env = gym.make("scaleenv/Chat-v0", log="run.lmdb", task="d00/t003")
    obs, info = env.reset(seed=1)    # obs: [system message, the user's opening message]
    obs, reward, terminated, truncated, info = env.step(
        {"content": "", "tool_calls": [{"id": "c1", "type": "function",
                                       "function": {"name": "get_order", "arguments": "{\\"order_id\\": \\"o1\\"}"}}]})
    env.close()

================  ===========================================================================
id                action
================  ===========================================================================
scaleenv/Chat-v0  one assistant turn as an OpenAI message ``{"content", "tool_calls"}`` (either
                  may be empty; a plain string is a message to the user); :class:`ScaleEnvGym`
scaleenv/Text-v0  the model's raw text, tool calls written in it as Hermes/Qwen
                  ``<tool_call>`` blocks or as OpenAI JSON (:mod:`scaleenv._serve.tool_text`);
                  :class:`ScaleEnvTextGym`, the shape SkyRL-gym and GEM-style trainers step with
================  ===========================================================================

Keyword arguments (``gym.make(id, **kwargs)``): ``log`` (the run's log, required),
``task`` (a kept task id; None: each reset draws one of the run's kept tasks from the
env's seeded generator), ``label`` (recorded with each episode: ``"checker"`` for the
episodes gymnasium's ``check_env`` opens, which ``scaleenv export`` then leaves out),
``options`` (:class:`scaleenv.EngineOptions`), ``idle_timeout`` (seconds before an
untouched episode ends), ``render_mode`` (``"ansi"``); ``Text-v0`` also takes
``tools_in_prompt`` (append the tool schemas and the call format to the system message,
for trainers whose chat template is not given ``info["tools"]``).

- observation: the new chat messages, OpenAI style: on reset the system prompt and the
  user's opening; after a step one ``{"role": "tool", "tool_call_id", "content"}`` per
  tool call, then the user's reply ``{"role": "user", "content"}`` when the turn spoke
  to the user. Appended in order they are exactly the episode's messages as the log
  folds them (``EpisodeView.messages``), so they are what ``scaleenv export`` writes;
- reward: 0 until the episode ends, then the rule-based reward (0 or 1);
- terminated: the episode ended (user done or gave up, the policy stopped, an error);
  truncated: it hit a limit (``max_turns``, ``max_tool_calls``, idle timeout);
- info: on reset ``episode_id``, ``task_id``, ``tools`` (OpenAI function schemas),
  ``user``, ``limits``, ``result``; after a step ``user`` (message, done, gave_up),
  ``result`` (reward, breakdown, diff, reason, fault, ...) once ended, and for
  ``Text-v0`` ``parsed`` (the assistant message as read from the text). Step infos
  carry no episode id (``env.unwrapped.episode_id`` has it), so the same seed and the
  same actions give equal infos, as gymnasium's checker asks.

Seeding: ``reset(seed=s)`` seeds the env's generator (``np_random``); every reset then
draws a client seed from it (and the task, when ``task`` is None) and opens a served
episode with that seed, whose simulated user answers from (run seed, task, client seed,
position in the episode) and not from the episode's id. So two resets with the same seed
open the same conversation, and the same actions continue it the same way;
``reset()`` without a seed continues the generator (gymnasium's rules). An episode left
open is ended (``policy_stopped``) by the next reset and by ``close()``.

Each reset is a served episode (``<task>/s<k>``) of a
:class:`scaleenv._serve.session.EpisodeSession`, recorded in the log exactly as
``scaleenv serve`` records it. The engine (trio, the log writer, the sandbox, the
user's LLM) runs in one background thread per log and process
(:class:`scaleenv._serve.threaded.EngineThread`), shared by every env on that log.
"""

from __future__ import annotations

from typing import Any

import gymnasium

from scaleenv._serve.session import EpisodeSession, Stepped
from scaleenv._serve.tool_text import with_tools_block

SEED_BOUND = 2**63 - 1
CHAT_ID = "scaleenv/Chat-v0"
TEXT_ID = "scaleenv/Text-v0"


class _JsonSpace(gymnasium.Space):  # type: ignore[type-arg]
    """A space of JSON-like Python values (no numpy shape; not flattenable)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ChatMessages(_JsonSpace):
    """A list of OpenAI-style chat messages (``{"role", "content", ...}``)."""

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in x)

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, Any]]:
        return [{"role": "user", "content": ""}]


_SAMPLES = ("Hello! How can I help you today?", "Could you tell me your email, please?",
            "Could you give me the id of the record you mean?", "Done: it has been updated.")


class AssistantTurn(_JsonSpace):
    """One assistant turn: ``{"content": str, "tool_calls": [OpenAI tool calls]}`` or a string."""

    def contains(self, x: Any) -> bool:
        if isinstance(x, str):
            return True
        return (isinstance(x, dict) and isinstance(x.get("content", ""), str | None)
                and isinstance(x.get("tool_calls") or [], list))

    def sample(self, mask: Any = None, probability: Any = None) -> dict[str, Any]:
        return {"content": _SAMPLES[int(self.np_random.integers(len(_SAMPLES)))], "tool_calls": []}


class ModelText(_JsonSpace):
    """Raw model text (tool calls written in it: :mod:`scaleenv._serve.tool_text`)."""

    def contains(self, x: Any) -> bool:
        return isinstance(x, str)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return _SAMPLES[int(self.np_random.integers(len(_SAMPLES)))]


class ScaleEnvGym(gymnasium.Env):  # type: ignore[type-arg]
    """The kept tasks of the run in ``log`` as a gymnasium environment (``scaleenv/Chat-v0``;
    see the module doc). Built on :class:`scaleenv._serve.session.EpisodeSession`."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}  # fps: text frames have none, but the checker asks

    def __init__(self, log: str, task: str | None = None, *, label: str = "", options: Any = None,
                 idle_timeout: float = 600.0, render_mode: str | None = None) -> None:
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', not {render_mode!r}")
        self.task = task
        self.render_mode = render_mode
        self.observation_space = ChatMessages()
        self.action_space = self._action_space()
        self.tools: list[dict[str, Any]] = []
        self.session = EpisodeSession(log, label=label, options=options, idle_timeout=idle_timeout)
        try:
            if task is not None:
                self.session.check_task(task)
            elif not self.session.kept_tasks:
                raise ValueError(f"{log} has no kept task to serve (run its stages first: scaleenv run --log {log})")
        except BaseException:
            self.session.close()
            raise

    @property
    def episode_id(self) -> str | None:
        return self.session.episode_id

    @property
    def task_id(self) -> str | None:
        return self.session.task_id

    def _action_space(self) -> gymnasium.Space:  # type: ignore[type-arg]
        return AssistantTurn()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """End the open episode (if any) and open a new one; ``options={"task_id": ...}``
        picks its task. Returns the system prompt and the user's opening message."""
        super().reset(seed=seed)
        self.session.end_open()
        task = (options or {}).get("task_id") or self.task
        kept = self.session.kept_tasks
        if task is None:
            task = kept[int(self.np_random.integers(len(kept)))]
        opened = self.session.open(task, seed=int(self.np_random.integers(SEED_BOUND)))
        self.tools = opened.tools
        obs = self._first_observation(opened.messages, opened.tools)
        info = {"episode_id": opened.episode_id, "task_id": task, "tools": opened.tools, "user": opened.user,
                "limits": opened.limits, "result": opened.result}
        return obs, info

    def _first_observation(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return messages

    def _play(self, action: Any) -> Stepped:
        if isinstance(action, str):
            return self.session.step(action)
        if isinstance(action, dict):
            return self.session.step(action.get("content") or "", action.get("tool_calls"),
                                     token_ids=action.get("token_ids"), logprobs=action.get("logprobs"))
        raise TypeError(f"an action is an assistant message dict or a string, not {type(action).__name__}")

    def step(self, action: Any) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]:
        if self.session.episode_id is None:
            raise RuntimeError("call reset() before step()")
        if self.session.ended:
            raise RuntimeError(f"episode {self.session.episode_id} has ended; call reset() to start another")
        out = self._play(action)
        info: dict[str, Any] = {"user": out.user, "result": out.result}
        if out.parsed is not None:
            info["parsed"] = out.parsed
        return out.messages, out.reward, out.ended and not out.truncated, out.truncated, info

    def end(self) -> dict[str, Any]:
        """End the current episode now (``policy_stopped``) and return its result."""
        return self.session.end()

    def render(self) -> str | None:
        """``ansi``: the episode's messages so far, as the log folds them, one per line."""
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"{m['role']}: {m.get('content', '')}" + (f" {m['tool_calls']}" if m.get("tool_calls") else "")
                         for m in self.session.messages())

    def close(self) -> None:
        """End the open episode and give the engine back (safe to call twice)."""
        self.session.close()


class ScaleEnvTextGym(ScaleEnvGym):
    """``scaleenv/Text-v0``: actions are raw model text (see the module doc).

    The text is read with :func:`scaleenv._serve.tool_text.parse_turn`; the turn recorded
    (and exported) is the assistant message it reads as, ``info["parsed"]`` after each
    step. ``tools_in_prompt=True`` appends :func:`~scaleenv._serve.tool_text.tools_block`
    to the system message of the first observation (the log keeps the environment's own
    system prompt; the block is what a chat template adds from ``info["tools"]``)."""

    def __init__(self, log: str, task: str | None = None, *, tools_in_prompt: bool = False, **kwargs: Any) -> None:
        self.tools_in_prompt = tools_in_prompt
        super().__init__(log, task, **kwargs)

    def _action_space(self) -> gymnasium.Space:  # type: ignore[type-arg]
        return ModelText()

    def _first_observation(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return with_tools_block(messages, tools) if self.tools_in_prompt else messages

    def _play(self, action: Any) -> Stepped:
        if not isinstance(action, str):
            raise TypeError(f"a Text-v0 action is the model's text (a string), not {type(action).__name__}")
        return self.session.step_text(action)


def _register() -> None:
    for env_id, entry in ((CHAT_ID, "scaleenv._serve.gym:ScaleEnvGym"), (TEXT_ID, "scaleenv._serve.gym:ScaleEnvTextGym")):
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry)


_register()

__all__ = ["CHAT_ID", "TEXT_ID", "AssistantTurn", "ChatMessages", "ModelText", "ScaleEnvGym", "ScaleEnvTextGym"]
