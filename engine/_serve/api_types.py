"""The bodies of ``scaleenv serve``'s HTTP API, as msgspec Structs.

Requests are decoded straight into these types (``forbid_unknown_fields``: a misspelt
field is a 400 naming it, never a silently empty turn); responses are encoded from them;
the OpenAPI description (:mod:`scaleenv._serve.openapi`) is generated from them, so the
three cannot drift apart.

Names mean one thing each: ``result`` is a tool's result (inside a :class:`ToolResult`),
``outcome`` the episode's (reward, breakdown, why it ended); ``episode_id`` is the id a
client uses in URLs (it carries an unguessable part), ``log_episode_id`` the id the log,
``replay`` and ``export`` know the episode by.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

# ---- requests -------------------------------------------------------------------------


class OpenEpisode(Struct, forbid_unknown_fields=True):
    """``POST /v1/episodes``."""

    task_id: str
    """A kept task id, e.g. ``d00/t003`` (``GET /v1/tasks`` lists them)."""


class FunctionCall(Struct, forbid_unknown_fields=True):
    name: str
    arguments: str | dict[str, Any] = "{}"
    """A JSON object, or a string holding one (recorded verbatim: malformed JSON becomes a tool error)."""


class ToolCallIn(Struct, forbid_unknown_fields=True):
    """A tool call as OpenAI writes it (``{"id", "type": "function", "function": {...}}``) or
    flat (``{"id", "name", "arguments"}``)."""

    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall | UnsetType = UNSET
    name: str | UnsetType = UNSET
    arguments: str | dict[str, Any] | UnsetType = UNSET


class StepRequest(Struct, forbid_unknown_fields=True):
    """``POST /v1/episodes/{episode_id}/step``: one assistant turn in OpenAI's message shape
    (``ChatCompletionMessage.model_dump()`` is accepted as it is). At least one of
    ``content`` and ``tool_calls`` must be present; a turn with neither text nor calls ends
    the episode (``policy_stopped``), as in a local rollout."""

    content: str | None | UnsetType = UNSET
    tool_calls: list[ToolCallIn] | None | UnsetType = UNSET
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    role: Literal["assistant"] = "assistant"
    refusal: str | None = None
    """Accepted for the OpenAI shape; not recorded."""
    annotations: list[Any] | None = None
    """Accepted for the OpenAI shape; not recorded."""
    audio: None = None
    function_call: None = None


class ToolRequest(Struct, forbid_unknown_fields=True):
    """``POST /v1/episodes/{episode_id}/tool``: one tool call as its own assistant turn."""

    name: str
    arguments: str | dict[str, Any] | None = None
    id: str | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None


class MessageRequest(Struct, forbid_unknown_fields=True):
    """``POST /v1/episodes/{episode_id}/message``: a message to the user (a turn without tool calls)."""

    content: str
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None


class EndRequest(Struct, forbid_unknown_fields=True):
    """``POST /v1/episodes/{episode_id}/end``: an empty object (or no body)."""


# ---- responses ------------------------------------------------------------------------


class UserReply(Struct):
    message: str
    done: bool
    gave_up: bool


class ToolResult(Struct, omit_defaults=True):
    """What one tool call returned: ``result`` when ``ok``, else ``error`` and ``error_kind``;
    ``content`` is the tool message the policy sees."""

    call_id: str
    name: str
    ok: bool
    content: str
    result: Any = None
    error: str | None = None
    error_kind: str | None = None


class Outcome(Struct):
    """How an episode ended and what it scored."""

    episode_id: str
    log_episode_id: str
    reward: float
    breakdown: dict[str, float]
    diff: list[str]
    """A readable line per difference between the final state and the expected one."""
    reward_version: str
    reason: str
    """user_done, user_gave_up, policy_stopped, max_turns, max_tool_calls, timeout, error"""
    fault: str
    turns: int
    tool_calls: int
    detail: str


class EpisodeLimits(Struct):
    max_turns: int
    max_tool_calls: int
    idle_timeout_s: float


class EpisodeOpened(Struct):
    episode_id: str
    log_episode_id: str
    task_id: str
    domain: str
    tools: list[dict[str, Any]]
    """OpenAI function-tool format."""
    system_prompt: str
    messages: list[dict[str, Any]]
    """The conversation so far, as the policy sees it (system prompt, the user's opening)."""
    user: UserReply | None
    limits: EpisodeLimits
    ended: bool
    outcome: Outcome | None


class StepResponse(Struct):
    """The answer to a turn: its tool results, the user's reply (to a turn without tool
    calls), and the outcome once the episode has ended."""

    episode_id: str
    tool_results: list[ToolResult]
    user: UserReply | None
    ended: bool
    outcome: Outcome | None


class ToolResponse(Struct):
    episode_id: str
    tool_result: ToolResult | None
    """None when the episode ended (a limit) before the call could run."""
    ended: bool
    outcome: Outcome | None


class EpisodeStatus(Struct):
    episode_id: str
    log_episode_id: str
    task_id: str
    ended: bool
    user_done: bool
    turns: int
    tool_calls: int
    messages: list[dict[str, Any]]
    outcome: Outcome | None


class Domain(Struct):
    domain: str
    name: str
    description: str
    tools: list[str]
    tasks: int


class Task(Struct):
    task_id: str
    domain: str
    domain_name: str
    chain_length: int
    episodes_served: int


class DomainList(Struct):
    domains: list[Domain]


class TaskList(Struct):
    tasks: list[Task]


class Health(Struct):
    ok: bool
    open_episodes: int
    """Episodes open for the principal asking."""


class ErrorDetail(Struct, omit_defaults=True):
    message: str
    type: str
    code: int
    param: str | None = None
    """The limit a request went over (limit_exceeded errors)."""


class ErrorResponse(Struct, omit_defaults=True):
    """Every error, in OpenAI's shape. A tool call the environment recorded as a tool error
    (404 unknown_tool, 400 bad_json, 422 bad_args on ``/tool``) carries its ``tool_result``;
    a request to an ended episode (409) carries its ``outcome``."""

    error: ErrorDetail
    tool_result: ToolResult | None = None
    ended: bool | None = None
    outcome: Outcome | None = None


def decode_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    """msgspec's message, which names the bad field (``... - at `$.tool_calls[0].name```)."""
    return str(exc)
