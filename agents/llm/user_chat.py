"""The simulated user's requests: a role-flipped chat that only grows.

``[system: the role and its instructions, user: the episode's fixed facts between
<context> tags (render_messages), then the conversation so far with roles flipped]``:
the customer's own messages are ``assistant`` messages and the agent's are ``user``
messages, so the model answers the agent's last message as a chat model answers a user.

Each request is the previous one plus the turns since, so the log stores only those
(LlmCalled references, log format 2) where a context that embedded the conversation was
stored whole on every call, growing with the square of the conversation's length.
"""

from __future__ import annotations

from typing import Any

from .port import REJECTED_PREFIX, LlmRequest, rendered_request

FLIP = {"user": "assistant", "assistant": "user"}
TASK = ("Reply as the customer: open the conversation if nothing has been said yet, else answer the agent's last "
        "message. In what follows the agent's messages have the user role and yours the assistant role; a message "
        f"starting with {REJECTED_PREFIX!r} comes from the system checking your answer's format, not from the agent.")


def user_request(instructions: str, context: dict[str, Any], conversation: list[dict[str, str]],
                 memo: dict[str, Any] | None = None) -> LlmRequest:
    """The request for the customer's next message; ``conversation`` holds the user-visible
    turns (``user`` = the customer), ``context`` the facts that do not change.

    ``memo`` (one per conversation, e.g. the episode stream's): the rendered opening is
    reused while ``instructions`` and every value of ``context`` are the same objects as
    last time, and each turn's flipped message while its source message is, so that
    successive requests share their message objects (the port then reuses their
    encodings: :class:`~.port.MessageEncodings`). The messages are equal either way;
    the conversation's messages must not change once passed.
    """
    if memo is None:
        base = rendered_request("user", instructions, context, TASK)
        return LlmRequest(role="user", context=base.context,
                          messages=[*base.messages, *({"role": FLIP[m["role"]], "content": m["content"]}
                                                      for m in conversation)])
    opening = memo.get("opening")
    if (opening is None or opening[0] is not instructions or len(opening[1]) != len(context)
            or any(opening[1].get(k, _ABSENT) is not v for k, v in context.items())):
        opening = memo["opening"] = (instructions, dict(context),
                                     rendered_request("user", instructions, context, TASK).messages)
    flipped: list[tuple[dict[str, str], dict[str, str]]] = memo.setdefault("flipped", [])
    messages = list(opening[2])
    for i, m in enumerate(conversation):
        if i < len(flipped) and flipped[i][0] is m:
            messages.append(flipped[i][1])
            continue
        del flipped[i:]
        f = {"role": FLIP[m["role"]], "content": m["content"]}
        flipped.append((m, f))
        messages.append(f)
    return LlmRequest(role="user", context=context, messages=messages)


_ABSENT = object()


def conversation_of(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The user-visible conversation a :func:`user_request` carries (``user`` = the
    customer again), without the port's retry feedback (a rejected answer and the
    message that rejected it)."""
    out: list[dict[str, str]] = []
    for m in messages[2:]:
        role, content = m.get("role"), str(m.get("content") or "")
        if role == "user" and content.startswith(REJECTED_PREFIX):
            if out and out[-1]["role"] == "user":
                out.pop()  # the rejected answer it follows
            continue
        if role in FLIP:
            out.append({"role": FLIP[role], "content": content})
    return out
