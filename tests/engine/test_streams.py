"""Stream ids are built and parsed in one place, and the two agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleenv import _streams as streams

slots = st.integers(0, 250).map(streams.slot_id)
tools = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True)


@given(slots, st.integers(0, 5000), st.integers(0, 99), st.booleans(), tools)
def test_every_built_id_parses_back_to_its_parts(slot: str, k: int, attempt: int, served: bool, tool: str) -> None:
    task = streams.task_id(slot, k)
    episode = (streams.served_episode_id if served else streams.episode_id)(task, attempt)
    assert streams.parse(streams.domain_stream(slot)) == streams.StreamId("domain", slot)
    parsed_tool = streams.parse(streams.tool_stream(slot, tool))
    assert (parsed_tool.kind, parsed_tool.slot, parsed_tool.tool, parsed_tool.id) == ("tool", slot, tool, f"{slot}/{tool}")
    assert streams.parse(streams.task_stream(task)).id == task
    e = streams.parse(streams.episode_stream(episode))
    assert (e.kind, e.slot, e.task, e.episode, e.served, e.attempt) == ("episode", slot, task, episode, served, attempt)
    assert streams.episode_id_of(streams.episode_stream(episode)) == episode
    assert streams.task_of_episode(episode) == task and streams.slot_of(episode) == slot
    assert streams.is_served(episode) is served


@pytest.mark.parametrize("bad", ["", "domain/", "domain/x1", "tool/d00", "task/d00/t1", "episode/d00/t000",
                                 "episode/d00/t000/x1", "episode/../t000/g1", "domain/d00/extra", "other/d00"])
def test_anything_else_is_refused_with_the_forms(bad: str) -> None:
    with pytest.raises(streams.NotAStreamId, match="is not a stream id"):
        streams.parse(bad)
