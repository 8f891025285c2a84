"""What of a model call's request its stream already holds (log format 2).

The port stores each ``LlmCalled`` relative to the stream's earlier calls: the messages
it shares with the last call of the same role (``base_n``/``base_len``), the schema
an earlier call already carries (``schema_n``) and the tool list an earlier call already
carries (``tools_n``, log format 3) are referred to, not repeated. See
:mod:`scaleenv._store.events.llm`.

The references an event gets must be a function of the stream's earlier events alone:
a resumed or verified agent re-emits its calls and must produce the very same events.
So a stream's memory is rebuilt from its recorded events when the port first meets the
stream past position 0, and otherwise grows only with the calls the port emits there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from scaleenv._store.events.llm import CallResolver, LlmCalled


@attrs.frozen
class Delta:
    """The referring part of one call: what to store in its ``LlmCalled``."""

    messages: list[dict[str, Any]]
    base_n: int | None
    base_len: int
    json_schema: dict[str, Any] | None
    schema_n: int | None
    tools: list[dict[str, Any]] | None = None
    tools_n: int | None = None


@attrs.define
class StreamCalls:
    """The calls of one stream that later calls may refer to."""

    last_by_role: dict[str, tuple[int, list[dict[str, Any]]]] = attrs.field(factory=dict)
    schema_by_name: dict[str, tuple[int, dict[str, Any]]] = attrs.field(factory=dict)
    # The tool lists calls carried, newest first: (position, the list as given, as a list).
    tool_lists: list[tuple[int, Any, list[dict[str, Any]]]] = attrs.field(factory=list)

    def delta(self, role: str, messages: list[dict[str, Any]], schema_name: str, schema: dict[str, Any],
              tools: Sequence[dict[str, Any]] | None = None) -> Delta:
        """How a call with this request is stored, given the calls before it."""
        base_n, base_len, rest = None, 0, messages
        prev = self.last_by_role.get(role)
        if prev is not None:
            shared = _shared_prefix(prev[1], messages)
            if shared:
                base_n, base_len, rest = prev[0], shared, messages[shared:]
        carried, tools_n = self.tools_delta(tools)
        carrier = self.schema_by_name.get(schema_name)
        if carrier is not None and (carrier[1] is schema or carrier[1] == schema):
            return Delta(rest, base_n, base_len, None, carrier[0], carried, tools_n)
        return Delta(rest, base_n, base_len, schema, None, carried, tools_n)

    def tools_delta(self, tools: Sequence[dict[str, Any]] | None) -> tuple[list[dict[str, Any]] | None, int | None]:
        """(tools to carry, or the position of the earlier call carrying the same list)."""
        if not tools:
            return None, None
        if type(tools) is tuple:  # immutable: the same object is the same list (the rollout's)
            for n, given, _ in self.tool_lists:
                if given is tools:
                    return None, n
        whole = list(tools)
        for n, _, as_list in self.tool_lists:
            if as_list == whole:
                return None, n
        return whole, None

    def note(self, n: int, role: str, messages: list[dict[str, Any]], schema_name: str,
             schema: dict[str, Any], carried_schema: bool, carried_tools: Sequence[dict[str, Any]] | None = None) -> None:
        """Remember the call at stream position ``n`` (its whole messages and schema, and
        the tool list it carried, if any)."""
        self.last_by_role[role] = (n, messages)
        if carried_schema:
            self.schema_by_name[schema_name] = (n, schema)
        if carried_tools is not None:
            self.tool_lists.insert(0, (n, carried_tools, list(carried_tools)))


def _shared_prefix(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> int:
    k = 0
    for x, y in zip(a, b):
        if x is not y and x != y:
            break
        k += 1
    return k


MEMO_KEY = "llm.calls"
"""Where a stream keeps its :class:`StreamCalls` (``Stream.memo``)."""


def calls_of(stream: Any) -> StreamCalls:
    """The memory of ``stream``'s earlier calls, kept on the stream itself (``stream.memo``),
    so every port writing the stream (policy and user simulator, each with its own backend)
    shares it; built from the stream's recorded events when first met mid-stream."""
    calls = stream.memo.get(MEMO_KEY)
    if calls is None:
        calls = StreamCalls()
        start = stream.next_n
        if start:
            recorded = getattr(stream, "recorded", ())
            resolver = CallResolver()
            for r in recorded[:start]:
                if isinstance(r.event, LlmCalled):
                    whole = resolver.resolve(r.stream, r.n, r.event)
                    assert whole.json_schema is not None
                    calls.note(r.n, whole.role, whole.messages, whole.schema_name, whole.json_schema,
                               carried_schema=r.event.json_schema is not None, carried_tools=r.event.tools)
        stream.memo[MEMO_KEY] = calls
    return calls
