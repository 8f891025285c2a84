"""Raw model text read as an assistant turn: the formats models write tool calls in."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from scaleenv._serve.tool_text import parse_turn, tools_block, with_tools_block

CALL = {"name": "get_order", "arguments": {"order_id": "o1", "n": 2}}


def fn(turn) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def]
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in turn.tool_calls]


def test_hermes_blocks_with_text_and_reasoning_around_them() -> None:
    text = ("<think>The user wants order o1.</think>Let me check.\n<tool_call>\n" + json.dumps(CALL)
            + "\n</tool_call>\n<tool_call>{\"name\": \"list_items\", \"arguments\": {}}</tool_call>")
    turn = parse_turn(text)
    assert turn.format == "hermes" and turn.content == "Let me check."
    assert fn(turn) == [("get_order", CALL["arguments"]), ("list_items", {})]
    assert all("id" not in c for c in turn.tool_calls)  # the environment numbers them


def test_an_unclosed_last_block_and_a_template_opened_think() -> None:
    turn = parse_turn("reasoning the template opened</think>\n<tool_call>" + json.dumps(CALL))
    assert turn.format == "hermes" and turn.content == "" and fn(turn) == [("get_order", CALL["arguments"])]


def test_openai_json_forms() -> None:
    message = {"content": "One moment.", "tool_calls": [{"id": "c7", "type": "function",
                                                        "function": {"name": "get_order", "arguments": "{\"order_id\": \"o1\"}"}}]}
    turn = parse_turn(json.dumps(message))
    assert turn.format == "json" and turn.content == "One moment." and turn.tool_calls[0]["id"] == "c7"
    assert fn(parse_turn(json.dumps(CALL))) == [("get_order", CALL["arguments"])]
    assert fn(parse_turn(json.dumps([CALL, {"name": "x", "parameters": {"a": 1}}]))) == [
        ("get_order", CALL["arguments"]), ("x", {"a": 1})]  # a list; Llama's "parameters"
    assert fn(parse_turn("[TOOL_CALLS]" + json.dumps([CALL]))) == [("get_order", CALL["arguments"])]
    assert fn(parse_turn("```json\n" + json.dumps(CALL) + "\n```")) == [("get_order", CALL["arguments"])]
    assert parse_turn(json.dumps({"content": "hi"})).content == "hi"


def test_string_arguments_are_kept_verbatim_even_malformed() -> None:
    turn = parse_turn('<tool_call>{"name": "get_order", "arguments": "{\\"order_id\\": "}</tool_call>')
    assert turn.tool_calls[0]["function"]["arguments"] == '{"order_id": '  # becomes the environment's bad_json error


def test_what_is_not_a_call_is_a_message() -> None:
    for text in ("Hello there", '{"answer": 42}', "<tool_call>not json</tool_call>",
                 '<tool_call>{"arguments": {}}</tool_call>', "[1, 2]"):
        turn = parse_turn(text)
        assert turn.format == "text" and turn.tool_calls == [] and turn.content == text.strip(), text
    assert parse_turn("<think>only thinking</think>").content == ""


@given(st.text())
def test_any_text_reads_as_some_turn(text: str) -> None:
    turn = parse_turn(text)
    assert isinstance(turn.content, str) and turn.format in ("hermes", "json", "text")
    for call in turn.tool_calls:
        assert call["type"] == "function" and call["function"]["name"]
        assert isinstance(call["function"]["arguments"], str)


def test_the_tools_block_lists_every_schema_and_the_call_format() -> None:
    tools = [{"type": "function", "function": {"name": "get_order", "description": "d", "parameters": {"type": "object"}}}]
    block = tools_block(tools)
    assert "<tool_call>" in block and json.dumps(tools[0], sort_keys=True) in block
    messages = [{"role": "system", "content": "You help."}, {"role": "user", "content": "hi"}]
    shown = with_tools_block(messages, tools)
    assert shown[0]["content"].startswith("You help.\n\n") and messages[0]["content"] == "You help."
