"""Stored calls refer to earlier calls of their stream (log format 2); resolved, they are
exactly what the backend was sent, and re-runs reproduce them event for event."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleenv._agents.llm.call_memory import StreamCalls, calls_of
from scaleenv._agents.llm.port import Llm, LlmRequest
from scaleenv._agents.llm.recorded import whole_calls
from scaleenv._store import Log, Stream
from scaleenv._store.events.llm import CallResolver, LlmCalled, UnresolvableCall
from scaleenv._store.record import digest_bytes
from scaleenv._store.stream import Divergence

from .structs import Pair
from .test_port import ScriptedBackend

ANSWER = '{"label": "a", "count": 1}'


def _conversation(turn: int) -> list[dict[str, Any]]:
    """The policy's conversation at ``turn``: each turn adds its answer and the next question."""
    msgs = [{"role": "system", "content": "You count things."}, {"role": "user", "content": "count 0"}]
    for i in range(turn):
        msgs.append({"role": "assistant", "content": f"counted {i}"})
        msgs.append({"role": "user", "content": f"count {i + 1}"})
    return msgs


TOOLS = ({"type": "function", "function": {"name": "count", "description": "Count.",
                                           "parameters": {"type": "object", "properties": {}}}},
         {"type": "function", "function": {"name": "reset", "description": "Reset.",
                                           "parameters": {"type": "object", "properties": {}}}})


async def _converse(llm: Llm, s: Any, turns: int, tools: Any = None) -> None:
    """A growing conversation (one call per turn, a side role between), like an episode's;
    ``tools``: offered to the policy on every turn (the same object, as the rollout does)."""
    for t in range(turns):
        await llm.generate(s, LlmRequest(role="policy", messages=_conversation(t), context={}, tools=tools), Pair)
        await llm.generate(s, LlmRequest(role="user", messages=[{"role": "user", "content": f"u{t}"}], context={}), Pair)


async def test_growing_conversation_is_stored_as_deltas_and_resolves_to_what_was_sent(writer, log) -> None:
    backend = ScriptedBackend(['{"label": "a"', *[ANSWER] * 20])  # the first answer is malformed: one retry
    llm = Llm(backend, run_seed=3)
    await _converse(llm, Stream(writer, "episode/x"), 5)
    await writer.aclose()
    records = [r for r in log.read() if isinstance(r.event, LlmCalled)]
    stored = [r.event for r in records]
    assert stored[0].whole and stored[0].json_schema is not None
    # the retry refers to the failed attempt and adds only the two feedback messages
    retry = stored[1]
    assert (retry.base_n, retry.base_len, len(retry.messages)) == (0, 2, 2) and retry.schema_n == 0
    later_policy = [e for e in stored[2:] if e.role == "policy"]
    assert later_policy and all(e.base_n is not None and e.json_schema is None for e in later_policy)
    # each later policy call stores only the messages its conversation added
    assert all(len(e.messages) == 2 for e in later_policy[1:])
    resolver = CallResolver()
    whole = [resolver.resolve(r.stream, r.n, r.event) for r in records]
    assert [w.messages for w in whole] == [r.messages for r in backend.requests]
    assert all(w.json_schema == msgspec.json.schema(Pair) and w.whole for w in whole)
    assert whole_calls(log.read()) == whole


async def test_a_rerun_against_the_log_reproduces_every_stored_call(writer, log, tmp_path) -> None:
    llm = Llm(ScriptedBackend([ANSWER] * 20), run_seed=3)
    await _converse(llm, Stream(writer, "episode/x"), 4)
    await writer.aclose()
    recorded = list(log.read_stream("episode/x"))
    # verify: the same agent, from the start, must emit exactly the recorded events
    verify = Stream(None, "episode/x", recorded=recorded, mode="verify")
    await _converse(Llm(ScriptedBackend([]), run_seed=3), verify, 4)
    verify.finish()
    # a port that meets the stream mid-way (appending after a recorded prefix) refers as
    # the uninterrupted run did: its memory is rebuilt from the prefix, and the calls it
    # then makes are stored exactly as the uninterrupted run stored them
    with Log.open(tmp_path / "again.lmdb", sync=False) as again:
        async with again.writer() as w:
            s = Stream(w, "episode/x")
            llm = Llm(ScriptedBackend([ANSWER] * 20), run_seed=3)
            for t in range(2):
                await llm.generate(s, LlmRequest(role="policy", messages=_conversation(t), context={}), Pair)
                await llm.generate(s, LlmRequest(role="user", messages=[{"role": "user", "content": f"u{t}"}],
                                                 context={}), Pair)
        head = list(again.read_stream("episode/x"))
    mem = calls_of(Stream(None, "episode/x", recorded=head, mode="verify"))
    assert mem.last_by_role == {} , "a stream met at position 0 starts empty"
    cont = Stream(None, "episode/x", recorded=recorded, mode="verify")
    for r in head:  # replay the first two turns' events as themselves, without the port
        await cont.emit(r.event, actor=r.actor, cause=r.cause)
    mem = calls_of(cont)
    assert mem.last_by_role["policy"][0] == 2 and mem.schema_by_name["Pair"][0] == 0
    llm = Llm(ScriptedBackend([]), run_seed=3)
    for t in range(2, 4):  # the port's first calls on this stream object: rebuilt memory
        await llm.generate(cont, LlmRequest(role="policy", messages=_conversation(t), context={}), Pair)
        await llm.generate(cont, LlmRequest(role="user", messages=[{"role": "user", "content": f"u{t}"}],
                                            context={}), Pair)
    cont.finish()


async def test_a_changed_request_is_a_divergence_at_its_call(writer, log) -> None:
    llm = Llm(ScriptedBackend([ANSWER] * 20), run_seed=3)
    await _converse(llm, Stream(writer, "episode/x"), 3)
    await writer.aclose()
    recorded = list(log.read_stream("episode/x"))
    verify = Stream(None, "episode/x", recorded=recorded, mode="verify")
    llm2 = Llm(ScriptedBackend([ANSWER] * 20), run_seed=3)
    await llm2.generate(verify, LlmRequest(role="policy", messages=_conversation(0), context={}), Pair)
    await llm2.generate(verify, LlmRequest(role="user", messages=[{"role": "user", "content": "u0"}], context={}), Pair)
    changed = _conversation(1)
    changed[1] = {"role": "user", "content": "count 99"}
    with pytest.raises(Divergence) as info:
        await llm2.generate(verify, LlmRequest(role="policy", messages=changed, context={}), Pair)
    assert "episode/x" in str(info.value) and info.value.n == 2


async def test_calls_stored_whole_are_reproduced_whole(writer, log) -> None:
    """A format-1 log stores every call whole; a re-run of it must emit them whole too."""
    llm = Llm(ScriptedBackend([ANSWER] * 20), run_seed=3)
    await _converse(llm, Stream(writer, "episode/x"), 3)
    await writer.aclose()
    resolver = CallResolver()
    recorded = []
    for r in log.read_stream("episode/x"):
        if isinstance(r.event, LlmCalled):  # rewrite as format 1 did: everything inline
            r = msgspec.structs.replace(r, event=resolver.resolve(r.stream, r.n, r.event))
        recorded.append(r)
    assert all(r.event.whole for r in recorded)
    verify = Stream(None, "episode/x", recorded=recorded, mode="verify")
    await _converse(Llm(ScriptedBackend([]), run_seed=3), verify, 3)
    verify.finish()


async def test_offered_tools_are_stored_once_per_stream_and_resolve_to_what_was_sent(writer, log) -> None:
    backend = ScriptedBackend([ANSWER] * 20)
    await _converse(Llm(backend, run_seed=3), Stream(writer, "episode/x"), 4, tools=TOOLS)
    await writer.aclose()
    records = [r for r in log.read() if isinstance(r.event, LlmCalled)]
    policy = [r.event for r in records if r.event.role == "policy"]
    assert policy[0].tools == list(TOOLS) and policy[0].tools_n is None
    assert all(e.tools is None and e.tools_n == records[0].n for e in policy[1:])  # referred to, not repeated
    assert all(r.event.tools is None and r.event.tools_n is None for r in records if r.event.role == "user")
    resolver = CallResolver()
    whole = [resolver.resolve(r.stream, r.n, r.event) for r in records]
    assert [w.tools for w in whole] == [list(q.tools) if q.tools else None for q in backend.requests]
    assert whole_calls(log.read()) == whole


async def test_a_rerun_reproduces_the_recorded_tools_also_past_a_recorded_prefix(writer, log) -> None:
    await _converse(Llm(ScriptedBackend([ANSWER] * 20), run_seed=3), Stream(writer, "episode/x"), 4, tools=TOOLS)
    await writer.aclose()
    recorded = list(log.read_stream("episode/x"))
    verify = Stream(None, "episode/x", recorded=recorded, mode="verify")
    await _converse(Llm(ScriptedBackend([]), run_seed=3), verify, 4, tools=TOOLS)
    verify.finish()
    # met mid-stream, the port rebuilds its memory from the recorded prefix (whose tools are
    # lists, decoded) and refers to the carrying call as the uninterrupted run did, whether
    # the tools come as the same tuple, an equal list or an equal tuple
    cont = Stream(None, "episode/x", recorded=recorded, mode="verify")
    for r in recorded[:4]:
        await cont.emit(r.event, actor=r.actor, cause=r.cause)
    llm = Llm(ScriptedBackend([]), run_seed=3)
    for t, tools in zip(range(2, 4), (list(TOOLS), tuple(dict(x) for x in TOOLS))):
        await llm.generate(cont, LlmRequest(role="policy", messages=_conversation(t), context={}, tools=tools), Pair)
        await llm.generate(cont, LlmRequest(role="user", messages=[{"role": "user", "content": f"u{t}"}],
                                            context={}), Pair)
    cont.finish()
    # other tools on a re-run: a divergence at the call
    other = Stream(None, "episode/x", recorded=recorded, mode="verify")
    with pytest.raises(Divergence) as info:
        await Llm(ScriptedBackend([ANSWER]), run_seed=3).generate(
            other, LlmRequest(role="policy", messages=_conversation(0), context={}, tools=TOOLS[:1]), Pair)
    assert info.value.n == 0


async def test_calls_recorded_without_their_tools_are_reproduced_without(writer, log) -> None:
    """A log older than format 3 does not record the tools its policy calls offered; a
    re-run of it emits its calls as they were (no tools), so old logs verify and resume."""
    await _converse(Llm(ScriptedBackend([ANSWER] * 20), run_seed=3), Stream(writer, "episode/x"), 3, tools=TOOLS)
    await writer.aclose()
    recorded = []
    for r in log.read_stream("episode/x"):
        if isinstance(r.event, LlmCalled):  # as format 2 stored them: no tools, no tools_n
            r = msgspec.structs.replace(r, event=msgspec.structs.replace(r.event, tools=None, tools_n=None))
        recorded.append(r)
    verify = Stream(None, "episode/x", recorded=recorded, mode="verify")
    await _converse(Llm(ScriptedBackend([]), run_seed=3), verify, 3, tools=TOOLS)
    verify.finish()
    resolver = CallResolver()
    assert all(resolver.resolve(r.stream, r.n, r.event).tools is None for r in recorded if isinstance(r.event, LlmCalled))


def test_an_old_call_keeps_its_digest() -> None:
    """The fields format 2 added (and ``answer_shape`` and format 3's ``tools``/``tools_n``, added since) are left
    out of the digest at their defaults."""
    ev = LlmCalled(role="r", backend="b", model="m", request_digest="d", messages=[{"role": "user", "content": "x"}],
                   schema_name="S", json_schema={"type": "object"}, seed=1, attempt=0, raw="{}")
    as_format_1 = msgspec.to_builtins(ev)
    for k in ("base_n", "base_len", "schema_n", "answer_shape", "tools", "tools_n", "latency_s"):
        as_format_1.pop(k)
    expected = msgspec.msgpack.encode(("s", 0, None, "r", as_format_1), order="deterministic")
    assert digest_bytes("s", 0, None, "r", ev) == expected
    referring = msgspec.structs.replace(ev, base_n=0, base_len=1)
    assert digest_bytes("s", 1, None, "r", referring) != digest_bytes("s", 1, None, "r", ev)
    strict = msgspec.structs.replace(ev, answer_shape="openai-strict")
    assert digest_bytes("s", 1, None, "r", strict) != digest_bytes("s", 1, None, "r", ev)
    offered = msgspec.structs.replace(ev, tools=[{"type": "function", "function": {"name": "f"}}])
    assert digest_bytes("s", 1, None, "r", offered) != digest_bytes("s", 1, None, "r", ev)
    assert digest_bytes("s", 1, None, "r", msgspec.structs.replace(ev, tools_n=0)) != digest_bytes("s", 1, None, "r", ev)


def _call(messages: list[dict[str, Any]], **kw: Any) -> LlmCalled:
    return LlmCalled(role="r", backend="b", model="m", request_digest="d", messages=messages,
                     schema_name="S", seed=1, attempt=0, raw="{}", **kw)


@pytest.mark.parametrize("kw, says", [
    ({"base_n": 5, "base_len": 1, "json_schema": {}}, "base_n=5 is not an earlier"),
    ({"base_n": 0, "base_len": 9, "json_schema": {}}, "base_len=9 but the call at 0 has 1 messages"),
    ({"schema_n": 3}, "schema_n=3 is not an earlier"),
    ({}, "carries no json_schema"),
    ({"json_schema": {}, "tools_n": 0}, "tools_n=0 is not an earlier llm.called of the stream that offered tools"),
    ({"json_schema": {}, "tools_n": 0, "tools": []}, "carries tools and names tools_n=0"),
])
def test_a_reference_that_does_not_resolve_names_the_call(kw: dict[str, Any], says: str) -> None:
    r = CallResolver()
    r.resolve("episode/y", 0, _call([{"role": "user", "content": "a"}], json_schema={"type": "object"}))
    with pytest.raises(UnresolvableCall) as info:
        r.resolve("episode/y", 1, _call([], **kw))
    assert "episode/y#1" in str(info.value) and says in str(info.value)


_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool"]),
                                  "content": st.text(max_size=3)})
_tools = st.sampled_from([None, TOOLS, list(TOOLS), TOOLS[:1], ()])
_step = st.tuples(st.sampled_from(["policy", "user"]), st.integers(0, 4), st.lists(_message, max_size=3),
                  st.sampled_from(["A", "B"]), st.sampled_from([{"t": 1}, {"t": 2}]), _tools)


@settings(max_examples=200, deadline=None)
@given(st.lists(_step, max_size=12))
def test_deltas_always_resolve_to_the_whole_request(steps: list[Any]) -> None:
    """Any sequence of calls (conversations that grow, shrink, fork; schemas that change
    under one name; tool lists that come and go) stored relative to each other resolves to
    exactly what was sent."""
    mem, resolver = StreamCalls(), CallResolver()
    convo: dict[str, list[dict[str, Any]]] = {}
    for n, (role, keep, added, name, schema, tools) in enumerate(steps):
        messages = [*convo.get(role, [])[:keep], *added]
        convo[role] = messages
        d = mem.delta(role, messages, name, schema, tools)
        stored = LlmCalled(role=role, backend="b", model="m", request_digest="d", messages=d.messages,
                           schema_name=name, json_schema=d.json_schema, seed=0, attempt=0, raw="",
                           base_n=d.base_n, base_len=d.base_len, schema_n=d.schema_n, tools=d.tools,
                           tools_n=d.tools_n)
        stored = msgspec.msgpack.decode(msgspec.msgpack.encode(stored), type=LlmCalled)
        whole = resolver.resolve("s", n, stored)
        assert whole.messages == messages and whole.json_schema == schema
        assert whole.tools == (list(tools) if tools else None)
        mem.note(n, role, messages, name, schema, carried_schema=d.json_schema is not None,
                 carried_tools=tools if d.tools is not None else None)


@pytest.mark.parametrize("old", [1, 2])
async def test_a_writer_marks_an_older_log_as_format_3(tmp_path, old: int) -> None:
    from scaleenv._store.log import LOG_FORMAT_VERSION, META_PREFIX
    path = tmp_path / "old.lmdb"
    with Log.open(path, sync=False) as lg:
        lg._write_small(lg._meta, (META_PREFIX + "format").encode(), msgspec.msgpack.encode(old))
        assert lg.meta_get(META_PREFIX + "format") == old
        async with lg.writer() as w:  # opening the writer is what marks it, before any append
            assert w.last_seq == 0
        assert lg.meta_get(META_PREFIX + "format") == LOG_FORMAT_VERSION == 3


async def test_log_check_reports_a_call_whose_reference_dangles(writer, log) -> None:
    from scaleenv._store import Pending
    first = _call([{"role": "user", "content": "a"}], json_schema={"type": "object"})
    good = _call([{"role": "user", "content": "b"}], base_n=0, base_len=1, schema_n=0)
    dangling = _call([], base_n=0, base_len=5, schema_n=0)
    await writer.append([Pending("episode/z", i, None, "policy", e) for i, e in enumerate((first, good, dangling))])
    await writer.aclose()
    found = log.check()
    assert [(d.seq, d.reason) for d in found] == [
        (3, "llm.called at episode/z#2 cannot be resolved: base_len=5 but the call at 0 has 1 messages")]


async def test_log_dump_whole_calls_prints_what_was_sent(tmp_path, capsys) -> None:
    import json

    from scaleenv._cli import main
    path = tmp_path / "run.lmdb"
    backend = ScriptedBackend([ANSWER] * 20)
    with Log.open(path, sync=False) as log:
        async with log.writer() as w:
            await _converse(Llm(backend, run_seed=3), Stream(w, "episode/x"), 3)
    assert main(["log", "dump", "--log", str(path), "--whole-calls", "--from", "3"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["seq"] for x in lines] == [3, 4, 5, 6]  # printed from --from, resolved from the start
    assert [x["event"]["messages"] for x in lines] == [r.messages for r in backend.requests[2:]]
    assert all(x["event"]["base_n"] is None and x["event"]["json_schema"] for x in lines)
    assert main(["log", "dump", "--log", str(path), "--from", "3"]) == 0
    stored = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert stored[0]["event"]["base_n"] == 0 and stored[0]["event"]["json_schema"] is None
