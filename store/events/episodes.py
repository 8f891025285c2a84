"""Rollout events: one stream per episode, ``episode/<task_id>/<attempt>``."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

from .base import Event
from .tasks import RecordChange


class EpisodeStarted(Event, tag="episode.started"):
    task_id: str
    domain: str
    attempt: int
    seed: int
    # The policy's system prompt (what it was told about the environment).
    system_prompt: str = ""
    # A served episode opened with a seed by its client (gymnasium's ``reset(seed=...)``):
    # its model calls derive their seeds from (run seed, task, this seed, position) instead
    # of the stream id, so two episodes of a task opened with one seed and sent the same
    # turns are the same conversation. None: seeds derive from the stream id, as local.
    client_seed: int | None = None
    # What a served episode was opened for, named by its client ("" for an ordinary one;
    # "checker" for gymnasium's env checker, which export leaves out unless asked).
    label: str = ""

    digest_added: ClassVar[tuple[tuple[str, object], ...]] = (("client_seed", None), ("label", ""))


class ToolCallRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call as the policy wrote it (OpenAI style: arguments are a JSON string)."""

    id: str
    name: str
    arguments: str


class MessageSent(Event, tag="episode.message"):
    role: Literal["user", "assistant"]
    content: str
    tool_calls: list[ToolCallRequest] = []
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    # A user turn that turns the agent down: "correct", "refuse_info" or "refuse_action"
    # (UserTurn.reason); "" otherwise, and in logs written before it existed.
    reason: str = ""

    digest_added: ClassVar[tuple[tuple[str, object], ...]] = (("reason", ""),)


class ToolExecuted(Event, tag="episode.tool"):
    """One tool call executed against the episode's own state, with the change it caused."""

    call_id: str
    tool: str
    args: dict[str, Any] | None
    ok: bool
    result: Any = None
    error_kind: str | None = None
    error: str | None = None
    delta: list[RecordChange] = []
    # The sandbox clock's reading when the tool read the time (None: it did not).
    clock: str | None = None

    digest_added: ClassVar[tuple[tuple[str, object], ...]] = (("clock", None),)


EndReason = Literal["user_done", "user_gave_up", "policy_stopped", "max_turns", "max_tool_calls", "timeout", "error"]
Fault = Literal["none", "policy", "user", "environment", "limit"]


class EpisodeEnded(Event, tag="episode.ended"):
    reason: EndReason
    fault: Fault
    turns: int
    tool_calls: int
    detail: str = ""


class RewardGiven(Event, tag="episode.reward"):
    reward: float
    breakdown: dict[str, float]
    diff: list[str]
    reward_version: str


EPISODE_EVENTS = (EpisodeStarted, MessageSent, ToolExecuted, EpisodeEnded, RewardGiven)
