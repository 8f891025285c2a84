"""The partial fold (scaleenv._replay.partial) agrees with the whole fold, event for event.

Over generated logs (hypothesis) and the golden logs of every generation: after every
event, ``fold_log`` (tag peeking, lean decoding, skipped events) gives the projection
digests of ``projection.fold`` over fully decoded records, and ``digests=True`` gives
the same stream digests (the recorded ones for the golden logs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleenv._replay.digests import projection_digests
from scaleenv._replay.episode import EpisodeSummary, EpisodeView
from scaleenv._replay.logcopy import append_all
from scaleenv._replay.partial import fold_log
from scaleenv._replay.projection import RunView, apply, fold
from scaleenv._store.errors import UnknownEventType
from scaleenv._store.events.base import Event, Ref
from scaleenv._store.events.episodes import EpisodeEnded, EpisodeStarted, MessageSent, RewardGiven, ToolCallRequest, ToolExecuted
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.events.synth import CodeProposed, TestCasesRepaired, ToolRejected
from scaleenv._store.events.tasks import ChainSampled, ChainWritten, RecordChange, TaskDiscarded, TaskInstantiated, TaskKept
from scaleenv._store.log import Log
from scaleenv._store.record import Codec, run_digest
from scaleenv._store.writer import Pending
from tests.replay.goldens import GENERATIONS, STAGES, expected_path, golden_log, load_prefix

KEYS = ("a", "b", "c")


def _row(key: str, qty: int) -> dict[str, object]:
    return {"id": key, "qty": qty}


def _llm(error: str | None, tokens: int) -> LlmCalled:
    return LlmCalled(role="r", backend="sim", model="m", request_digest="d", messages=[{"role": "user", "content": "q"}],
                     schema_name="s", seed=1, attempt=0, raw="{}", error=error, prompt_tokens=tokens, completion_tokens=1)


TASKS = ("d00/t000", "d00/t001")
STREAMS = ("task/d00/t000", "task/d00/t001", "episode/d00/t000/g0", "episode/d00/t000/g1", "episode/d00/t001/s0",
           "tool/d00/get", "domain/d00")


@st.composite
def event_for(draw: st.DrawFn, stream: str) -> Event:
    kind = stream.split("/", 1)[0]
    if draw(st.integers(0, 9)) == 0:
        return _llm(draw(st.sampled_from([None, "bad json"])), draw(st.integers(0, 50)))
    key = draw(st.sampled_from(KEYS))
    if kind == "task":
        return draw(st.sampled_from([
            TaskInstantiated(domain="d", initial_state={"items": {k: _row(k, 1) for k in KEYS}}, needed=[("items", key)],
                             distractors=[], steps=[]),
            ChainSampled(domain="d", tools=["get", key]),
            ChainWritten(goal=0, goal_tool="get", program="get()"),
            TaskKept(task_id=stream[5:], domain="d"),
            TaskDiscarded(task_id=stream[5:], domain="d", reason="gate", detail=key),
        ]))
    if kind == "episode":
        qty = draw(st.integers(0, 9))
        change = RecordChange(table="items", key=key, before=_row(key, 1), after=None if qty == 0 else _row(key, qty))
        calls = [ToolCallRequest(id="c", name="get", arguments="{}")] if draw(st.booleans()) else []
        return draw(st.sampled_from([
            EpisodeStarted(task_id=draw(st.sampled_from(TASKS)), domain="d", attempt=qty, seed=qty, system_prompt=key),
            MessageSent(role=draw(st.sampled_from(["user", "assistant"])), content=draw(st.sampled_from(["", key])),
                        tool_calls=calls),
            ToolExecuted(call_id="c", tool="get", args={"id": key}, ok=True, result={"id": key}, delta=[change]),
            ToolExecuted(call_id="c", tool="get", args=None, ok=False, error_kind=draw(st.sampled_from(["timeout", "bad_args"])),
                         error="no"),
            EpisodeEnded(reason="user_done", fault="none", turns=qty, tool_calls=1),
            RewardGiven(reward=qty / 9, breakdown={"x": 1.0}, diff=[], reward_version="v"),
        ]))
    if kind == "tool":
        return draw(st.sampled_from([
            CodeProposed(domain="d", tool="get", round=draw(st.integers(0, 2)), author="a", code=key, code_digest=key),
            TestCasesRepaired(tool="get", round=1, fixes=[], cases=[]),
            ToolRejected(domain="d", tool="get", reasons=[key], rounds=2),
        ]))
    return _llm(None, 3)


@st.composite
def logs(draw: st.DrawFn) -> list[Pending]:
    picks = draw(st.lists(st.sampled_from(STREAMS), min_size=1, max_size=40))
    positions: dict[str, int] = {}
    items = []
    for stream in picks:
        n = positions.get(stream, 0)
        positions[stream] = n + 1
        items.append(Pending(stream, n, Ref(stream, n - 1) if n else None, "test", draw(event_for(stream))))
    return items


def _write(items: list[Pending], path: Path) -> None:
    with Log.open(path, sync=False) as lg:
        trio.run(append_all, lg, items)


def _agree_event_for_event(lg: Log, every: int = 1) -> tuple[RunView, RunView]:
    whole, lean, digested = RunView(), RunView(digested=False), RunView()
    last = lg.last_seq()
    for record in lg.read():
        apply(whole, record)
        fold_log(lg, lean, from_seq=record.seq, to_seq=record.seq)
        fold_log(lg, digested, from_seq=record.seq, to_seq=record.seq, digests=True)
        if record.seq % every == 0 or record.seq == last:
            expect = projection_digests(whole)
            assert projection_digests(lean) == expect, f"partial fold differs after seq {record.seq} ({record.type})"
            assert projection_digests(digested) == expect, f"partial fold with digests differs after seq {record.seq}"
            assert digested.stream_digests() == whole.stream_digests()
    return whole, lean


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=logs())
def test_partial_fold_agrees_event_for_event_on_generated_logs(items: list[Pending], tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("gen") / "log.lmdb"
    _write(items, path)
    with Log.open(path, readonly=True) as lg:
        whole, lean = _agree_event_for_event(lg)
        at_once = fold_log(lg)
    assert projection_digests(at_once) == projection_digests(whole)
    for eid, ep in whole.episodes.items():
        summary = lean.episodes[eid]
        assert isinstance(summary, EpisodeSummary) and isinstance(ep, EpisodeView)
        assert summary.user_messages == ep.user_messages and summary.env_failures == ep.env_failures
        assert (summary.system_prompt, summary.label, summary.client_seed) == (ep.system_prompt, ep.label, ep.client_seed)
    for slot, d in whole.domains.items():  # counters projection_digests does not cover
        assert {n: (t.fixture_repairs, t.code_repairs) for n, t in d.tools.items()} == \
            {n: (t.fixture_repairs, t.code_repairs) for n, t in lean.domains[slot].tools.items()}
    assert {k: t.programs for k, t in whole.tasks.items()} == {k: t.programs for k, t in lean.tasks.items()}


EXPECT = {gen: json.loads(expected_path(gen).read_text()) for gen in GENERATIONS}


@pytest.mark.parametrize("generation", GENERATIONS)
def test_partial_fold_agrees_on_golden_logs(generation: str, tmp_path: Path) -> None:
    exp = EXPECT[generation]
    load_prefix(golden_log(generation), exp[STAGES[-1]]["lines"], tmp_path / "log.lmdb")
    with Log.open(tmp_path / "log.lmdb", readonly=True) as lg:
        _agree_event_for_event(lg, every=7)
        for stage in STAGES:
            upto = exp[stage]["events"]
            lean = fold_log(lg, to_seq=upto)
            assert lean.events == upto and projection_digests(lean) == exp[stage]["projection_digests"]
            digested = fold_log(lg, to_seq=upto, digests=True)
            assert digested.stream_digests() == exp[stage]["stream_digests"]
            assert run_digest(digested.stream_digests()) == exp[stage]["run_digest"]


def test_a_view_without_digests_refuses_to_give_them(tmp_path: Path) -> None:
    _write([Pending("domain/d00", 0, None, "t", _llm(None, 1))], tmp_path / "log.lmdb")
    with Log.open(tmp_path / "log.lmdb", readonly=True) as lg:
        view = fold_log(lg)
        with pytest.raises(ValueError, match="without stream digests"):
            view.stream_digests()
        with pytest.raises(ValueError, match="digests=False"):
            fold_log(lg, view, digests=True)
        assert fold_log(lg, digests=True).stream_digests() == fold(lg.read()).stream_digests()


def test_an_unknown_event_type_is_refused_as_by_the_whole_fold(tmp_path: Path) -> None:
    _write([Pending("domain/d00", 0, None, "t", _llm(None, 1)),
            Pending("tool/d00/get", 0, None, "t", ToolRejected(domain="d", tool="get", reasons=[], rounds=1))],
           tmp_path / "log.lmdb")
    narrow = Codec([LlmCalled])  # a reader that does not know tool.rejected
    with Log.open(tmp_path / "log.lmdb", readonly=True, codec=narrow) as lg:
        with pytest.raises(UnknownEventType):
            list(lg.read())
        with pytest.raises(UnknownEventType):
            fold_log(lg)
