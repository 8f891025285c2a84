"""Output types and contexts of the rollout roles.

Role contexts (what each request's structured context holds; sim role simulators read
exactly these keys):

- user    {"instruction": str, "user_facts": {name: value}, "persona": str, "max_turns": int}
          and, after it, the user-visible conversation as chat messages with roles flipped
          (the customer is ``assistant``; :mod:`.user_chat`) -> UserTurn. The first call
          (no conversation yet) opens the episode with the goal.
- policy  {"conversation": [OpenAI chat messages: system/user/assistant(with tool_calls)/tool],
           "tools": [OpenAI function schemas], "turn": int}
          and the request's ``tools`` carries the same function schemas (a real model gets
          them through the API's tool calling) -> PolicyTurn.
"""

from __future__ import annotations

from typing import Literal

import msgspec

# Why a user turn turns the agent down: "correct" (the agent stated or proposed something
# against the user's facts, and the user restates the right one), "refuse_info" (asked for
# something the user must not give or does not hold), "refuse_action" (an action the user
# did not ask for); "" for any other turn.
UserReason = Literal["", "correct", "refuse_info", "refuse_action"]


class UserTurn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    message: str
    # The user's goal has been achieved and they end the conversation.
    done: bool = False
    # The user gives up (the agent is stuck or refuses).
    gave_up: bool = False
    reason: UserReason = ""


class PolicyToolCall(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    name: str
    # JSON-encoded arguments, as OpenAI-style APIs return them (may be malformed).
    arguments: str


class PolicyTurn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One assistant turn: a message to the user, or tool calls (possibly several), or both."""

    content: str = ""
    tool_calls: list[PolicyToolCall] = []

    def __post_init__(self) -> None:
        if not self.content and not self.tool_calls:
            # An empty completion says nothing and does nothing: invalid, so the port asks again.
            raise ValueError("a turn needs a message to the user or at least one tool call")
