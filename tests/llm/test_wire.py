"""The pure pieces of the client: event-stream parsing, chunk folding, response heads, the retry rule."""

from __future__ import annotations

import random
from email.utils import formatdate

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleenv._agents.llm.http1 import ProtocolViolation, parse_head
from scaleenv._agents.llm.openai_wire import ChatChunk, chunk_decoder, error_text, fold_chunks
from scaleenv._agents.llm.retry import RetryPolicy, retry_after_s, status_safety
from scaleenv._agents.llm.sse import SseParser


def test_sse_line_ends_multiline_data_comments_and_events() -> None:
    p = SseParser()
    stream = b": keep-alive\r\ndata: one\r\n\r\nevent: error\ndata: a\ndata:b\n\ndata: x\r\rid: 4\nretry: 10\ndata: [DONE]\n\n"
    events = [e for i in range(0, len(stream), 3) for e in p.feed(stream[i:i + 3])]  # bytes arrive in threes
    assert [(e.event, e.data) for e in events] == [("message", "one"), ("error", "a\nb"), ("message", "x"),
                                                  ("message", "[DONE]")]
    assert not p.pending


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20),
                min_size=1, max_size=8), st.integers(1, 17))
def test_sse_whatever_the_cuts(datas: list[str], step: int) -> None:
    raw = b"".join(b"data: " + d.encode() + b"\n\n" for d in datas)
    p = SseParser()
    got = [e.data for i in range(0, len(raw), step) for e in p.feed(raw[i:i + step])]
    assert got == datas


def test_fold_chunks_assembles_content_tool_calls_logprobs_and_usage() -> None:
    raw = [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hel"}, "logprobs": {"content": [{"token": "Hel", "logprob": -0.5}]},
                      "token_ids": [7]}]},
        {"choices": [{"index": 1, "delta": {"content": "other"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}, "logprobs": {"content": [{"token": "lo", "logprob": -0.25}]},
                      "token_ids": [8]}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "a", "type": "function",
                                                               "function": {"name": "f", "arguments": '{"x"'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    ]
    folded = fold_chunks([chunk_decoder.decode(msgspec.json.encode(c)) for c in raw])
    first, second = folded.choices
    assert (first.message.content, first.finish_reason, first.token_ids) == ("Hello", "tool_calls", [7, 8])
    assert [t.logprob for t in first.logprobs.content] == [-0.5, -0.25]
    assert [(t.id, t.function.name, t.function.arguments) for t in first.message.tool_calls] == [
        ("a", "f", '{"x": 1}'), ("b", "g", "{}")]
    assert second.message.content == "other" and second.message.tool_calls is None
    assert (folded.id, folded.model, folded.usage.total_tokens) == ("c", "m", 7)
    assert fold_chunks([ChatChunk()]).choices == []


@pytest.mark.parametrize(("body", "text"), [
    (b'{"error": {"message": "bad seed", "type": "invalid_request_error", "code": null}}', "bad seed"),
    (b'{"object": "error", "message": "too long", "code": 400}', "too long"),
    (b'{"detail": "Not Found"}', "Not Found"),
    (b'{"error": "quota"}', "quota"),
    (b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"),
    (b"", "(empty body)"),
])
def test_error_text(body: bytes, text: str) -> None:
    assert error_text(body) == text


def test_parse_head() -> None:
    head = parse_head(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nSet-Cookie: a=1\r\nset-cookie: b=2")
    assert (head.status, head.reason, head.keep_alive) == (429, "Too Many Requests", True)
    assert head.headers == {"retry-after": "3", "set-cookie": "a=1, b=2"}
    assert not parse_head(b"HTTP/1.1 200 OK\r\nConnection: close").keep_alive
    assert not parse_head(b"HTTP/1.0 200 OK").keep_alive
    assert parse_head(b"HTTP/1.0 200 OK\r\nconnection: keep-alive").keep_alive
    for bad in (b"ICY 200 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 200 OK\r\nno colon here", b"HTTP/1.1 200 OK\r\n bad: fold"):
        with pytest.raises(ProtocolViolation):
            parse_head(bad)


def test_retry_rule() -> None:
    assert [status_safety(s) for s in (408, 425, 429, 503)] == ["safe"] * 4
    assert [status_safety(s) for s in (409, 500, 502, 504)] == ["unsafe"] * 4
    assert [status_safety(s) for s in (400, 401, 403, 404, 422, 301)] == ["fatal"] * 6
    policy = RetryPolicy(retries=4, unsafe_retries=1)
    assert policy.allows("safe", 3, 0) and not policy.allows("safe", 4, 0)
    assert policy.allows("unsafe", 0, 0) and not policy.allows("unsafe", 1, 1) and not policy.allows("fatal", 0, 0)
    rng = random.Random(1)
    assert all(0.25 <= policy.delay(0, None, rng) <= 0.5 for _ in range(100))
    assert all(4.0 <= policy.delay(10, None, rng) <= 8.0 for _ in range(100))  # capped
    assert all(5.0 <= policy.delay(0, 5.0, rng) <= 5.5 for _ in range(100))


def test_retry_after_forms() -> None:
    assert retry_after_s("12") == 12.0 and retry_after_s(" 1.5 ") == 1.5 and retry_after_s("-3") == 0.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    assert 59 <= retry_after_s(formatdate(1_000_060, usegmt=True), now=1_000_000) <= 61
    assert retry_after_s(formatdate(1_000_000, usegmt=True), now=1_000_060) == 0.0
