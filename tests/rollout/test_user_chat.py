"""The simulated user's chat layout: it only grows, and its conversation reads back exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scaleenv._agents.llm.port import REJECTED_PREFIX, Llm
from scaleenv._agents.rollout.answers import UserTurn
from scaleenv._agents.llm.user_chat import conversation_of, user_request
from scaleenv._store import Stream
from scaleenv._store.events.llm import LlmCalled
from tests.llm.test_port import ScriptedBackend

CONTEXT = {"instruction": "Cancel my order.", "user_facts": {"email": "a@b.c"}, "persona": "terse", "max_turns": 8}
_turns = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": st.text(max_size=20)}),
                  max_size=8)


@given(_turns)
def test_the_conversation_reads_back_and_each_request_extends_the_last(conversation: list[dict[str, str]]) -> None:
    req = user_request("Play the customer.", CONTEXT, conversation)
    assert conversation_of(req.messages) == conversation
    shorter = user_request("Play the customer.", CONTEXT, conversation[:-1])
    assert req.messages[:len(shorter.messages)] == shorter.messages
    # the customer speaks as the assistant: the agent's last message is what it answers
    if conversation:
        assert req.messages[-1]["role"] == {"user": "assistant", "assistant": "user"}[conversation[-1]["role"]]


async def test_retry_feedback_is_not_part_of_the_conversation(tmp_path) -> None:
    from scaleenv._store import Log
    conversation = [{"role": "user", "content": "Hi, cancel my order."}, {"role": "assistant", "content": "Your email?"}]
    backend = ScriptedBackend(['{"message": 3}', '{"message": "a@b.c"}'])
    with Log.open(tmp_path / "l", sync=False) as lg:
        async with lg.writer() as w:
            got = await Llm(backend, run_seed=1).generate(Stream(w, "episode/e"),
                                                           user_request("Play.", CONTEXT, conversation), UserTurn)
        calls = [r.event for r in lg.read() if isinstance(r.event, LlmCalled)]
    assert got.value.message == "a@b.c"
    retry = backend.requests[1].messages
    assert retry[-1]["content"].startswith(REJECTED_PREFIX)
    assert conversation_of(retry) == conversation_of(backend.requests[0].messages) == conversation
    # stored relative to the first attempt: just the two feedback messages
    assert (calls[1].base_n, len(calls[1].messages)) == (0, 2)


@given(_turns, _turns)
def test_a_memo_gives_the_same_requests_and_keeps_message_objects(first: list[dict[str, str]],
                                                                  more: list[dict[str, str]]) -> None:
    memo: dict = {}
    context = dict(CONTEXT)
    a = user_request("Play the customer.", context, first, memo)
    assert a.messages == user_request("Play the customer.", context, first).messages
    assert a.context is context
    grown = [*first, *more]
    b = user_request("Play the customer.", {**context}, grown, memo)  # a new dict holding the same values
    assert b.messages == user_request("Play the customer.", context, grown).messages
    assert all(x is y for x, y in zip(a.messages, b.messages))  # the shared prefix: the very same objects
    # another value (or other instructions) renders the opening again
    changed = user_request("Play the customer.", {**context, "max_turns": 9}, grown, memo)
    assert changed.messages == user_request("Play the customer.", {**context, "max_turns": 9}, grown).messages
    other = user_request("Play another customer.", context, grown[:1], memo)
    assert other.messages == user_request("Play another customer.", context, grown[:1]).messages
    # a conversation that is not an extension of the last one (another list) is flipped afresh
    replaced = [{"role": m["role"], "content": m["content"] + "?"} for m in grown]
    assert user_request("Play.", context, replaced, memo).messages == user_request("Play.", context, replaced).messages
