"""Request digests: the cached encodings of shared schemas and tool tuples change no digest."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleenv._agents.llm.port import (
    EncodingCache,
    LlmRequest,
    MessageEncodings,
    request_digest,
    schema_for,
    shaped_messages,
    with_shape,
)

from .structs import Person

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
tool_lists = st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=4)


def _plain(request: LlmRequest, schema: dict[str, Any]) -> str:
    """What the digest was before any caching: every part encoded afresh."""
    payload = msgspec.msgpack.encode(
        {"role": request.role, "messages": request.messages, "schema": copy.deepcopy(schema),
         "seed": request.seed, "temperature": request.temperature, "max_tokens": request.max_tokens,
         "tools": None if request.tools is None else copy.deepcopy(list(request.tools))},
        order="deterministic")
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


@settings(max_examples=60, deadline=None)
@given(tools=tool_lists, seed=st.integers(0, 2**31))
def test_digest_equals_a_fresh_encoding(tools: list[dict[str, Any]], seed: int) -> None:
    schema, _ = schema_for(Person)
    cache = EncodingCache()
    cache.pin(schema)
    shared = tuple(tools)
    req = LlmRequest(role="policy", messages=[{"role": "user", "content": "hi"}], context={}, seed=seed, tools=shared)
    first = request_digest(req, schema, cache)
    assert first == request_digest(req, schema, cache) == _plain(req, schema)  # second call: from the cache
    assert first == request_digest(req, schema)  # no cache at all
    as_list = LlmRequest(role="policy", messages=req.messages, context={}, seed=seed, tools=list(tools))
    assert request_digest(as_list, schema, cache) == first  # a list (never cached) gives the same digest


def test_a_list_changed_between_calls_gets_a_new_digest() -> None:
    schema, _ = schema_for(Person)
    tools: list[dict[str, Any]] = [{"type": "function", "function": {"name": "a"}}]
    cache = EncodingCache()
    req = LlmRequest(role="policy", messages=[], context={}, tools=tools)
    before = request_digest(req, schema, cache)
    tools.append({"type": "function", "function": {"name": "b"}})
    assert request_digest(req, schema, cache) != before
    assert request_digest(req, schema, cache) == _plain(req, schema)


messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool"]),
                                           "content": st.text(max_size=8)},
                                          optional={"tool_calls": st.lists(json_values, max_size=2)}),
                    min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(turns=st.lists(messages, min_size=1, max_size=4), role=st.sampled_from(["policy", "user"]))
def test_reused_message_encodings_change_no_digest(turns: list[list[dict[str, Any]]], role: str) -> None:
    """A conversation growing call by call (the same message objects again, plus new ones),
    with another role's calls in between: every digest is the one a fresh encoding gives."""
    schema, _ = schema_for(Person)
    encodings = MessageEncodings()
    conversation: list[dict[str, Any]] = []
    for added in turns:
        conversation = [*conversation, *added]
        req = LlmRequest(role=role, messages=conversation, context={})
        assert request_digest(req, schema, None, encodings.encode(role, conversation)) == _plain(req, schema)
        assert encodings.encode(role, conversation[:1]) == msgspec.Raw(msgspec.msgpack.encode(conversation[:1], order="deterministic"))
        other = LlmRequest(role="other", messages=list(reversed(conversation)), context={})
        assert request_digest(other, schema, None, encodings.encode("other", other.messages)) == _plain(other, schema)


def test_equal_but_distinct_messages_are_encoded_afresh() -> None:
    schema, _ = schema_for(Person)
    encodings = MessageEncodings()
    first = LlmRequest(role="user", messages=[{"role": "user", "content": "a"}], context={})
    request_digest(first, schema, None, encodings.encode("user", first.messages))
    second = LlmRequest(role="user", messages=[{"role": "user", "content": "b"}], context={})
    assert request_digest(second, schema, None, encodings.encode("user", second.messages)) == _plain(second, schema)


@given(messages, st.text(min_size=1, max_size=10))
def test_shaped_messages_equal_with_shape(msgs: list[dict[str, Any]], shape: str) -> None:
    memo: dict[str, Any] = {}
    first = shaped_messages(memo, "user", msgs, shape)
    assert first == with_shape(msgs, shape)
    again = shaped_messages(memo, "user", [*msgs, {"role": "user", "content": "more"}], shape)
    assert again == with_shape([*msgs, {"role": "user", "content": "more"}], shape)
    system = next((i for i, m in enumerate(msgs) if m["role"] == "system"), None)
    if system is not None and first[system] is not msgs[system]:
        assert again[system] is first[system]  # the same shaped message object: its encoding is reused
    assert shaped_messages(memo, "user", msgs, shape + "!") == with_shape(msgs, shape + "!")


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 65535, 65536])
def test_the_array_header_at_every_size(n: int) -> None:
    msgs = [{"role": "user", "content": str(i % 7)} for i in range(n)]
    encodings = MessageEncodings()
    assert encodings.encode("r", msgs) == msgspec.Raw(msgspec.msgpack.encode(msgs, order="deterministic"))
    assert encodings.encode("r", [*msgs, {"role": "tool"}]) == msgspec.Raw(
        msgspec.msgpack.encode([*msgs, {"role": "tool"}], order="deterministic"))
