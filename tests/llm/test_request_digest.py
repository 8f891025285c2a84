"""Request digests: the cached encodings of shared schemas and tool tuples change no digest."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleenv._agents.llm.port import EncodingCache, LlmRequest, request_digest, schema_for

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
