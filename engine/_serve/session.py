"""One served episode at a time, driven from synchronous code: the piece every trainer
adapter (gymnasium, OpenEnv, SkyRL-gym, verifiers) is a thin shape over.

    session = EpisodeSession("run.lmdb")
    first = session.open("d00/t003", seed=7)       # first.messages: [system, the user's opening]
    step = session.step("", [{"type": "function", "function": {"name": "get_order", "arguments": "{}"}}])
    step = session.step_text("<tool_call>{...}</tool_call>")   # or the model's raw text
    step.messages, step.reward, step.ended, step.truncated
    session.close()

Each :meth:`open` starts a served episode (``<task>/s<k>``) through
:class:`~scaleenv._serve.environments.Environments` on the log's engine thread
(:class:`~scaleenv._serve.threaded.EngineThread`), ending the previous one if it is still
open (``policy_stopped``). ``seed``: the episode's user answers from (run seed, task,
seed, position), so the same seed and the same turns give the same conversation; None
derives it from the episode id, as ``scaleenv serve`` does. Messages are OpenAI chat
messages exactly as the log folds the episode (``EpisodeView.messages``): on open the
system prompt and the user's opening, after a step one ``tool`` message per call and
the user's reply when the turn spoke to the user.

Refusals (an unknown task, a bad label, a step after the end) are ValueError with the
server's message; calls after :meth:`close` are RuntimeError.
"""

from __future__ import annotations

from typing import Any

import attrs

from scaleenv._serve.environments import ServeError
from scaleenv._serve.threaded import EngineThread
from scaleenv._serve.tool_text import parse_turn

LIMIT_REASONS = frozenset({"max_turns", "max_tool_calls", "timeout"})


@attrs.frozen
class Opened:
    """A new episode: its first messages and what a policy needs to know."""

    episode_id: str
    task_id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    user: dict[str, Any] | None
    limits: dict[str, Any]
    result: dict[str, Any] | None
    """Set when the episode ended before the agent spoke (the user was done at once)."""


@attrs.frozen
class Stepped:
    """What one assistant turn caused."""

    messages: list[dict[str, Any]]
    reward: float
    """The rule-based reward once the episode has ended, 0 before."""
    ended: bool
    truncated: bool
    """It ended at a limit (max turns, max tool calls, idle timeout)."""
    user: dict[str, Any] | None
    result: dict[str, Any] | None
    parsed: dict[str, Any] | None = None
    """For :meth:`EpisodeSession.step_text`: the assistant message the text read as."""


def result_without_id(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """An episode's result without its id (results of equal episodes are then equal)."""
    return None if result is None else {k: v for k, v in result.items() if k != "episode_id"}


class EpisodeSession:
    """Served episodes of the run in ``log``, one at a time (see the module doc)."""

    def __init__(self, log: str, *, label: str = "", options: Any = None, idle_timeout: float = 600.0) -> None:
        self.label = label
        self.episode_id: str | None = None
        self.task_id: str | None = None
        self.ended = True
        self._engine: EngineThread | None = EngineThread.acquire(log, options, idle_timeout)
        try:
            self.kept_tasks: list[str] = self._call("kept_tasks")
        except BaseException:
            self.close()
            raise

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._engine is None:
            raise RuntimeError("this episode session is closed")
        try:
            return self._engine.call(name, *args, **kwargs)
        except ServeError as exc:
            raise ValueError(exc.message) from None

    def check_task(self, task_id: str) -> None:
        """ValueError unless ``task_id`` is a kept task of the run."""
        self._call("task_json", task_id)

    def open(self, task_id: str, *, seed: int | None = None) -> Opened:
        """End the open episode (if any) and start one of ``task_id``."""
        self.end_open()
        opened = self._call("open_episode", task_id, seed=seed, label=self.label)
        self.episode_id, self.task_id, self.ended = opened["episode_id"], task_id, bool(opened["ended"])
        return Opened(episode_id=opened["episode_id"], task_id=task_id,
                      messages=[dict(m) for m in opened["messages"]], tools=opened["tools"], user=opened["user"],
                      limits=opened["limits"], result=result_without_id(opened["result"]))

    def step(self, content: str = "", tool_calls: list[dict[str, Any]] | None = None, *,
             token_ids: list[int] | None = None, logprobs: list[float] | None = None) -> Stepped:
        """One assistant turn: ``content`` and/or ``tool_calls`` (OpenAI form; ids optional)."""
        if self.episode_id is None:
            raise RuntimeError("no episode: open() one first")
        if self.ended:
            raise RuntimeError(f"episode {self.episode_id} has ended; open() another")
        extra = {k: v for k, v in (("token_ids", token_ids), ("logprobs", logprobs)) if v is not None}
        out = self._call("step", self.episode_id, content, tool_calls or None, **extra)
        messages = [{"role": "tool", "tool_call_id": r["call_id"], "content": r["content"]} for r in out["tool_results"]]
        if out["user"] is not None:
            messages.append({"role": "user", "content": out["user"]["message"]})
        result = out["result"]
        self.ended = bool(out["ended"])
        return Stepped(messages=messages, reward=float(result["reward"]) if result else 0.0, ended=self.ended,
                       truncated=self.ended and result is not None and result["reason"] in LIMIT_REASONS,
                       user=out["user"], result=result_without_id(result))

    def step_text(self, text: str, *, token_ids: list[int] | None = None,
                  logprobs: list[float] | None = None) -> Stepped:
        """One assistant turn given as the model's raw text (:func:`scaleenv._serve.tool_text.parse_turn`)."""
        turn = parse_turn(text)
        stepped = self.step(turn.content, turn.tool_calls or None, token_ids=token_ids, logprobs=logprobs)
        return attrs.evolve(stepped, parsed=turn.message())

    def end(self) -> dict[str, Any]:
        """End the current episode now (``policy_stopped`` if it is open) and return its result."""
        if self.episode_id is None:
            raise RuntimeError("no episode: open() one first")
        result = self._call("end", self.episode_id)
        self.ended = True
        return result_without_id(result)  # type: ignore[return-value]

    def messages(self) -> list[dict[str, Any]]:
        """The current episode's messages so far, as the log folds them."""
        if self.episode_id is None:
            return []
        return [dict(m) for m in self._call("status_json", self.episode_id)["messages"]]

    def end_open(self) -> None:
        """End the current episode if it is still open."""
        if self.episode_id is not None and not self.ended:
            self.end()

    @property
    def closed(self) -> bool:
        return self._engine is None

    def close(self) -> None:
        """End the open episode and give the engine back (safe to call twice)."""
        if self._engine is None:
            return
        try:
            self.end_open()
        finally:
            engine, self._engine = self._engine, None
            engine.release()
