"""One episode as a fold of its events: what the policy and the user see, counts, faults, state.

``apply(state, event) -> state`` is the one definition of an episode. The live loop
(``scaleenv._agents.rollout.episode``) emits an event and then applies it; served
episodes, the export, the run projection and replay fold the recorded events with the
same function. So the conversation a trainer exports is, message for message, the one
the policy was sent, and the counts a served episode restores are the ones it had.

What the policy sees (:attr:`EpisodeView.messages`, OpenAI chat format): the system
prompt, then each user message, each assistant message (with its ``tool_calls``), and
each tool result as a ``tool`` message whose content is :func:`tool_message`. What the
user sees (:attr:`EpisodeView.user_view`): its own messages and the assistant's text.

Counting rules: a *turn* is an assistant message without tool calls (the policy spoke to
the user); ``tool_calls`` counts executed calls (``ToolExecuted``); a call that failed
for the environment's own reasons (timeout, memory, crash, output too large) counts as
an environment failure.

The tools the policy was offered (:attr:`EpisodeView.offered_tools`) are read from the
policy's recorded calls (``LlmCalled.tools``, log format 3: carried by the episode's
first call, referred to by position, ``tools_n``, from the later ones), which need the
record's position in the stream: :func:`apply_call`; :func:`fold` and the run projection
give it. ``apply`` takes ownership of the view (updated in place and
returned, as the run projection's ``apply``); database states are never mutated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import attrs

from scaleenv._model.state import apply_delta
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.events.episodes import (
    EpisodeEnded,
    EpisodeStarted,
    MessageSent,
    RewardGiven,
    ToolCallRequest,
    ToolExecuted,
)
from scaleenv._store.specs import DbState

ENV_FAILURE_KINDS = frozenset({"timeout", "memory", "crashed", "output_too_large", "integrity"})
"""Tool error kinds that are the environment's failure, not the policy's."""


def tool_message(event: ToolExecuted) -> str:
    """The content of the ``tool`` message the policy is sent for an executed call."""
    return json.dumps(event.result if event.ok else {"error": event.error}, sort_keys=True, default=str)


def assistant_message(content: str, calls: Iterable[ToolCallRequest]) -> dict[str, Any]:
    """An assistant message in OpenAI chat format (``tool_calls`` only when there are some)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    listed = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]
    if listed:
        message["tool_calls"] = listed
    return message


@attrs.define
class EpisodeView:
    """Everything an episode's events define (see the module doc)."""

    episode_id: str = ""
    task_id: str = ""
    domain: str = ""
    attempt: int = 0
    seed: int = 0
    client_seed: int | None = None
    """The seed a served episode's client opened it with (see ``EpisodeStarted``)."""
    label: str = ""
    """What a served episode's client opened it for ("" for an ordinary one)."""
    system_prompt: str = ""
    messages: list[dict[str, Any]] = attrs.field(factory=list)
    """What the policy is sent: system, user, assistant (with tool_calls) and tool messages."""
    user_view: list[dict[str, str]] = attrs.field(factory=list)
    """What the user sees: its own messages (``user``) and the assistant's text (``assistant``)."""
    timeline: list[MessageSent | ToolExecuted] = attrs.field(factory=list)
    """Messages and tool results in stream order."""
    turns: int = 0
    tool_calls: int = 0
    env_failures: int = 0
    ended: EpisodeEnded | None = None
    rewards: list[RewardGiven] = attrs.field(factory=list)
    state: DbState | None = None
    """The episode's database: the task's initial state with every successful call's delta
    (None when the task is unknown, e.g. a stream folded without its task)."""
    offered_tools: list[dict[str, Any]] | None = None
    """The tools (OpenAI function format) offered with the policy's latest recorded call;
    None when no call recorded them (a log older than format 3, a served episode, whose
    policy is outside the engine) or the fold was not given positions (:func:`apply_call`)."""
    tools_at: dict[int, list[dict[str, Any]]] = attrs.field(factory=dict, repr=False)
    """The tools each policy call that carried them offered, by its position in the stream
    (what a later call's ``tools_n`` refers to)."""

    @property
    def reward(self) -> RewardGiven | None:
        """The latest reward (a regrade appends a newer one)."""
        return self.rewards[-1] if self.rewards else None

    @property
    def said(self) -> list[str]:
        """Everything the assistant said to the user, in order (what required answers are checked in)."""
        return [m["content"] for m in self.user_view if m["role"] == "assistant"]

    @property
    def steps(self) -> int:
        """Messages and tool results in the stream (the timeline's length)."""
        return len(self.timeline)

    @property
    def message_count(self) -> int:
        """Messages the policy is sent (system, user, assistant, tool)."""
        return len(self.messages)

    @property
    def user_messages(self) -> list[str]:
        """What the user said, in order (the ``user`` messages the policy was sent)."""
        return [m["content"] for m in self.messages if m["role"] == "user"]

    def trajectory(self) -> list[dict[str, Any]]:
        """The policy's conversation through its last assistant message: the last request it
        was sent, plus its answer (what a trainer trains on; later tool results and user
        replies were never part of a request)."""
        last = max((i for i, m in enumerate(self.messages) if m["role"] == "assistant"), default=len(self.messages) - 1)
        return self.messages[: last + 1]


def start(initial_state: DbState | None, episode_id: str = "") -> EpisodeView:
    """An episode before its first event: the task's initial database."""
    return EpisodeView(episode_id=episode_id, state=initial_state)


def apply(state: EpisodeView, event: Any) -> EpisodeView:
    """``state`` after ``event`` (any other event type leaves it as it is)."""
    if isinstance(event, MessageSent):
        state.timeline.append(event)
        if event.role == "assistant":
            state.messages.append(assistant_message(event.content, event.tool_calls))
            if event.content:
                state.user_view.append({"role": "assistant", "content": event.content})
            if not event.tool_calls:
                state.turns += 1
        else:
            state.messages.append({"role": "user", "content": event.content})
            state.user_view.append({"role": "user", "content": event.content})
    elif isinstance(event, ToolExecuted):
        state.timeline.append(event)
        state.messages.append({"role": "tool", "tool_call_id": event.call_id, "content": tool_message(event)})
        _tool_outcome(state, event)
    elif isinstance(event, EpisodeStarted):
        _started(state, event)
        state.messages = [{"role": "system", "content": event.system_prompt}]
    elif isinstance(event, EpisodeEnded):
        state.ended = event
    elif isinstance(event, RewardGiven):
        state.rewards.append(event)
    return state


def apply_call(state: EpisodeView, n: int, event: LlmCalled) -> EpisodeView:
    """``state`` after the recorded model call ``event`` at position ``n`` of the episode's
    stream: a policy call's offered tools become :attr:`EpisodeView.offered_tools` (a
    reference, ``tools_n``, to a position this fold has not seen leaves them None: the
    caller falls back to what the task offers). Other roles' calls change nothing."""
    if event.role != "policy":
        return state
    if event.tools is not None:
        state.tools_at[n] = event.tools
        state.offered_tools = event.tools
    elif event.tools_n is not None:
        state.offered_tools = state.tools_at.get(event.tools_n)
    else:
        state.offered_tools = None
    return state


@attrs.define
class EpisodeSummary:
    """An episode as the run projection keeps it when folded by :mod:`scaleenv._replay.partial`:
    what :class:`EpisodeView` holds minus the conversation itself (``messages``, ``timeline``,
    ``user_view``), which a reader that wants it folds from the episode's own stream
    (:func:`fold`). Every other field means what it means on :class:`EpisodeView`, and
    :func:`apply_summary` keeps it equal to that view's, event for event."""

    episode_id: str = ""
    task_id: str = ""
    domain: str = ""
    attempt: int = 0
    seed: int = 0
    client_seed: int | None = None
    label: str = ""
    system_prompt: str = ""
    steps: int = 0
    message_count: int = 0
    user_messages: list[str] = attrs.field(factory=list)
    turns: int = 0
    tool_calls: int = 0
    env_failures: int = 0
    ended: EpisodeEnded | None = None
    rewards: list[RewardGiven] = attrs.field(factory=list)
    state: DbState | None = None

    @property
    def reward(self) -> RewardGiven | None:
        """The latest reward (a regrade appends a newer one)."""
        return self.rewards[-1] if self.rewards else None


def apply_summary(state: EpisodeSummary, event: Any, tag: str) -> EpisodeSummary:
    """:func:`apply` for an :class:`EpisodeSummary`. ``event`` may be the typed event or a
    lean one with only the fields read here (``role``, ``content``, ``tool_calls`` of a
    message; ``ok``, ``error_kind``, ``delta`` of a tool result); ``tag`` is its type tag."""
    if tag == MESSAGE_TAG:
        state.steps += 1
        state.message_count += 1
        if event.role == "assistant":
            if not event.tool_calls:
                state.turns += 1
        else:
            state.user_messages.append(event.content)
    elif tag == TOOL_TAG:
        state.steps += 1
        state.message_count += 1
        _tool_outcome(state, event)
    elif isinstance(event, EpisodeStarted):
        _started(state, event)
        state.message_count = 1  # the system message; what came before is dropped, as in apply
        state.user_messages = []
    elif isinstance(event, EpisodeEnded):
        state.ended = event
    elif isinstance(event, RewardGiven):
        state.rewards.append(event)
    return state


MESSAGE_TAG: str = MessageSent.__struct_config__.tag  # type: ignore[assignment]
TOOL_TAG: str = ToolExecuted.__struct_config__.tag  # type: ignore[assignment]


def fold(events: Iterable[Any], initial_state: DbState | None, episode_id: str = "") -> EpisodeView:
    """The view after ``events`` (an episode stream's events, in order, from its first: the
    i-th event is the stream's record ``n = i``, which :func:`apply_call` is given)."""
    state = start(initial_state, episode_id)
    for n, event in enumerate(events):
        if isinstance(event, LlmCalled):
            apply_call(state, n, event)
        else:
            apply(state, event)
    return state


def _tool_outcome(state: Any, event: Any) -> None:
    """A tool call's effect on an episode's fold or summary: counted, its delta applied
    when it succeeded, an environment failure counted when it did not."""
    state.tool_calls += 1
    if event.ok:
        if state.state is not None:
            state.state = apply_delta(state.state, event.delta)
    elif event.error_kind in ENV_FAILURE_KINDS:
        state.env_failures += 1


def _started(state: Any, event: EpisodeStarted) -> None:
    """What an episode's fold and its summary take from its start."""
    state.task_id, state.domain, state.attempt, state.seed = event.task_id, event.domain, event.attempt, event.seed
    state.client_seed, state.label = event.client_seed, event.label
    state.system_prompt = event.system_prompt
