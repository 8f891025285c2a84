"""A gymnasium adapter: one task of a run as a ``gymnasium.Env`` (``pip install 'scaleenv[gym]'``).

    env = ScaleEnvGym("envs.lmdb", "d00/t003")
    obs, info = env.reset()          # obs: [system message, the user's opening message]
    obs, reward, terminated, truncated, info = env.step(
        {"content": "", "tool_calls": [{"id": "c1", "type": "function",
                                       "function": {"name": "get_order", "arguments": "{\\"order_id\\": \\"o1\\"}"}}]})
    ...
    env.close()

- action: one assistant turn, an OpenAI assistant message ``{"content", "tool_calls"}``
  (either may be empty; a plain string is a message to the user);
- observation: the new chat messages it caused, OpenAI style: one ``{"role": "tool",
  "tool_call_id", "name", "content"}`` per tool call, then the user's reply
  ``{"role": "user", "content"}`` when the turn spoke to the user;
- reward: 0 until the episode ends, then the rule-based reward (0 or 1);
- terminated: the episode ended (user done or gave up, the policy stopped, an error);
  truncated: it hit a limit (``max_turns``, ``max_tool_calls``, idle timeout);
- info: ``episode_id``, ``tools`` (OpenAI function schemas, on reset), ``user`` (done /
  gave_up), and ``result`` (reward, breakdown, diff, reason) once ended.

Each reset starts a new served episode (``<task>/s<k>``), recorded in the log exactly as
``scaleenv serve`` records it (the log is opened for writing: one process at a time).
The engine (trio, the log writer, the sandbox, the user's LLM) runs in one background
thread per log and process, shared by every env on that log; the env's methods call
into it with ``trio.from_thread.run``. A new episode's user is a new seeded stream, so
``reset(seed=...)`` does not make two episodes' user messages equal.
"""

from __future__ import annotations

import inspect
import threading
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium
import trio

from scaleenv.serve.environments import Environments, ServeError, open_environments
from scaleenv.runner import EngineOptions

LIMIT_REASONS = frozenset({"max_turns", "max_tool_calls", "timeout"})


class _Host:
    """The engine of one log in a background trio thread, shared by the envs on that log."""

    hosts: dict[str, _Host] = {}
    lock = threading.Lock()

    def __init__(self, path: str, options: Any, idle_timeout: float) -> None:
        self.path = path
        self.users = 0
        self.envs: Environments | None = None
        self.token: Any = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=self._run, args=(options, idle_timeout), name=f"scaleenv-gym:{path}",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self.error is not None:
            raise self.error

    def _run(self, options: Any, idle_timeout: float) -> None:
        async def main() -> None:
            async with open_environments(self.path, options, idle_timeout=idle_timeout) as envs:
                self.envs = envs
                self.token = trio.lowlevel.current_trio_token()
                self._stop = trio.Event()
                self._ready.set()
                await self._stop.wait()

        try:
            trio.run(main)
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor's caller
            self.error = exc
        finally:
            self._ready.set()

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if inspect.iscoroutinefunction(fn):
            return trio.from_thread.run(partial(fn, *args, **kwargs), trio_token=self.token)
        return trio.from_thread.run_sync(partial(fn, *args, **kwargs), trio_token=self.token)

    @classmethod
    def acquire(cls, path: str, options: Any, idle_timeout: float) -> _Host:
        key = str(Path(path).resolve())
        with cls.lock:
            host = cls.hosts.get(key)
            if host is None:
                host = cls.hosts[key] = _Host(path, options, idle_timeout)
            host.users += 1
            return host

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users > 0:
                return
            self.hosts.pop(str(Path(self.path).resolve()), None)
        if self._stop is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self.token)
        self._thread.join()


class _JsonSpace(gymnasium.Space):  # type: ignore[type-arg]
    """A space of JSON-like Python values (no numpy shape; not flattenable)."""

    def __init__(self) -> None:
        super().__init__(shape=None, dtype=None)

    @property
    def is_np_flattenable(self) -> bool:
        return False


class ChatMessages(_JsonSpace):
    """A list of OpenAI-style chat messages (``{"role", "content", ...}``)."""

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in x)

    def sample(self, mask: Any = None, probability: Any = None) -> list[dict[str, Any]]:
        return [{"role": "user", "content": ""}]

    def __repr__(self) -> str:
        return "ChatMessages()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ChatMessages)


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

    def __repr__(self) -> str:
        return "AssistantTurn()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AssistantTurn)


class ScaleEnvGym(gymnasium.Env):  # type: ignore[type-arg]
    """One kept task of the run in ``log_path`` as a gymnasium environment (see the module doc)."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, log_path: str, task_id: str, *, options: Any = None, idle_timeout: float = 600.0,
                 render_mode: str | None = None) -> None:
        if options is None:
            options = EngineOptions(progress=False)
        self.task_id = task_id
        self.render_mode = render_mode
        self.observation_space = ChatMessages()
        self.action_space = AssistantTurn()
        self.episode_id: str | None = None
        self._ended = True
        self._messages: list[dict[str, Any]] = []
        self._host: _Host | None = _Host.acquire(log_path, options, idle_timeout)
        try:
            self.task = self._call("task_json", task_id)
        except BaseException:
            self.close()
            raise

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._host is None:
            raise RuntimeError("this ScaleEnvGym is closed")
        return self._host.call(getattr(self._host.envs, name), *args, **kwargs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        super().reset(seed=seed)
        self._end_open()
        opened = self._call("open_episode", self.task_id)
        self.episode_id = opened["episode_id"]
        self._ended = opened["ended"]
        obs = [dict(m) for m in opened["messages"]]
        self._messages = [dict(m) for m in obs]
        info = {"episode_id": self.episode_id, "task_id": self.task_id, "tools": opened["tools"],
                "user": opened["user"], "limits": opened["limits"], "result": opened["result"]}
        return obs, info

    def step(self, action: Any) -> tuple[list[dict[str, Any]], float, bool, bool, dict[str, Any]]:
        if self.episode_id is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError(f"episode {self.episode_id} has ended; call reset() to start another")
        if isinstance(action, str):
            content, tool_calls, extra = action, None, {}
        elif isinstance(action, dict):
            content, tool_calls = action.get("content") or "", action.get("tool_calls")
            extra = {k: action[k] for k in ("token_ids", "logprobs") if k in action}
        else:
            raise TypeError(f"an action is an assistant message dict or a string, not {type(action).__name__}")
        try:
            out = self._call("step", self.episode_id, content, tool_calls, **extra)
        except ServeError as exc:
            raise ValueError(exc.message) from None
        assistant: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            assistant["tool_calls"] = tool_calls
        self._messages.append(assistant)
        obs = [{"role": "tool", "tool_call_id": r["call_id"], "name": r["name"], "content": r["content"]}
               for r in out["tool_results"]]
        if out["user"] is not None:
            obs.append({"role": "user", "content": out["user"]["message"]})
        self._messages.extend(dict(m) for m in obs)
        result = out["result"]
        self._ended = bool(out["ended"])
        reward = float(result["reward"]) if result else 0.0
        truncated = self._ended and result is not None and result["reason"] in LIMIT_REASONS
        terminated = self._ended and not truncated
        info = {"episode_id": self.episode_id, "user": out["user"], "result": result}
        return obs, reward, terminated, truncated, info

    def end(self) -> dict[str, Any]:
        """End the current episode now (``policy_stopped``) and return its result."""
        if self.episode_id is None:
            raise RuntimeError("no episode: call reset() first")
        result = self._call("end", self.episode_id)
        self._ended = True
        return result

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"{m['role']}: {m.get('content', '')}" + (f" {m['tool_calls']}" if m.get("tool_calls") else "")
                         for m in self._messages)

    def _end_open(self) -> None:
        if self.episode_id is not None and not self._ended:
            self.end()

    def close(self) -> None:
        if self._host is None:
            return
        try:
            self._end_open()
        finally:
            host, self._host = self._host, None
            host.release()
