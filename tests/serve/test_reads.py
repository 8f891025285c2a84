"""Serving starts from the run's projection checkpoint and the per-stream index, not a fold
of the whole log: a record damaged in a stream serving never needs (a domain's model
call, folded into the checkpoint long ago) does not stop ``serve`` or ``serve-mcp``
(both open :class:`Environments`), and an orphaned served episode is still ended."""

from __future__ import annotations

from pathlib import Path

import lmdb

from scaleenv._replay.checkpoint import projected
from scaleenv._serve.environments import ORPHAN_DETAIL, open_environments
from scaleenv._store.errors import LogError
from scaleenv._store.keys import seq_key
from scaleenv._store.log import Log
from scaleenv._store.events.episodes import EpisodeEnded

from .conftest import OPTIONS


def _damage_a_domain_model_call(path: Path) -> int:
    """Flip a byte of the first model call of a domain stream (its CRC then fails); its seq."""
    with Log.open(path) as lg:
        assert projected(lg).view.events == lg.last_seq()  # the log ends with a checkpoint
        target = next(r.seq for r in lg.read() if r.stream.startswith("domain/") and r.type == "llm.called")
    env = lmdb.open(str(path), max_dbs=8, map_size=1 << 30)  # room to rewrite the record (address space only)
    events = env.open_db(b"events")
    with env.begin(write=True) as txn:
        raw = bytearray(txn.get(seq_key(target), db=events))
        raw[-3] ^= 0xFF
        txn.put(seq_key(target), bytes(raw), db=events)
    env.close()
    with Log.open(path, readonly=True) as lg:
        try:
            lg.get(target)
        except LogError:
            return target
    raise AssertionError("the record was not damaged")


async def test_a_damaged_record_serving_never_reads_does_not_stop_it(run_log: Path) -> None:
    _damage_a_domain_model_call(run_log)
    async with open_environments(str(run_log), OPTIONS) as envs:
        task = envs.kept_tasks()[0]
        opened = await envs.open_episode(task)
        await envs.say(opened["episode_id"], "Hello, how can I help?")
        result = await envs.end(opened["episode_id"])
    assert result["episode_id"] == opened["episode_id"]


async def test_an_orphaned_served_episode_is_ended_from_the_projection(run_log: Path) -> None:
    """Served episodes left open (the server died) are found through the index and ended;
    those that ended are told by their checkpoint entries' headers."""
    async with open_environments(str(run_log), OPTIONS) as envs:
        task = envs.kept_tasks()[0]
        ended = await envs.open_episode(task)
        await envs.end(ended["episode_id"])
        left = await envs.open_episode(task)
        left_id = envs.get(left["episode_id"]).ep.eid
        envs.episodes.clear()  # as if the server had died: nothing ends it on the way out
    with Log.open(run_log) as lg:
        projected(lg)  # checkpointed with one served episode ended and one open
    _damage_a_domain_model_call(run_log)
    async with open_environments(str(run_log), OPTIONS) as envs:
        assert envs._served == sorted(envs._served) and len(envs._served) == 2
        assert left_id in envs.episodes and envs.episodes[left_id].ended
    with Log.open(run_log, readonly=True) as lg:
        ends = [r.event for r in lg.read_stream(f"episode/{left_id}") if isinstance(r.event, EpisodeEnded)]
    assert len(ends) == 1 and ends[0].detail == ORPHAN_DETAIL
