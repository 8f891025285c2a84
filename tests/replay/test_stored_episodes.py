"""A checkpoint's episodes are read from the log one at a time (scaleenv._replay.stored):
loading decodes none, asking whether one finished reads its entry's header only, and
every episode read lazily equals the cold fold's, also when its entry is damaged or was
written by a newer checkpoint."""

from __future__ import annotations

import itertools
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleenv._replay.checkpoint import projected
from scaleenv._replay.digests import projection_digests
from scaleenv._replay.logcopy import append_all, read_jsonl
from scaleenv._replay.partial import fold_log
from scaleenv._replay.projection import RunView
from scaleenv._replay.stored import HEAD_SIZE, StoredEpisodes, episode_finished, read_head
from scaleenv._store.log import Log
from tests.replay.goldens import golden_log
from tests.replay.test_snapshots import captured

RECORDS = list(read_jsonl(golden_log()))


def _append(path: Path, start: int, stop: int) -> None:
    with Log.open(path, sync=False) as lg:
        trio.run(append_all, lg, itertools.islice(iter(RECORDS), start, stop))


def _lazy_equals_cold(lg: Log, view: RunView) -> None:
    """Every episode of ``view`` (a checkpoint's) equals the cold partial fold's, field for
    field, state and stream digest included; whether it finished is known before any is decoded."""
    cold = fold_log(lg, to_seq=lg.last_seq(), digests=True)
    episodes = view.episodes
    assert isinstance(episodes, StoredEpisodes)
    assert sorted(episodes) == sorted(cold.episodes) and len(episodes) == len(cold.episodes)
    decoded_before = set(episodes.live)
    for tid in cold.tasks:  # the attempts known finished from the checkpoint's head alone
        g = 0
        while getattr(cold.episodes.get(f"{tid}/g{g}"), "reward", None) is not None:
            g += 1
        assert episodes.finished_prefix.get(tid, 0) <= g
        if episodes.seq == lg.last_seq():
            assert episodes.finished_prefix.get(tid, 0) == g
    for eid, ep in cold.episodes.items():
        assert episode_finished(episodes, eid) == (ep.reward is not None)
    assert set(episodes.live) == decoded_before, "asking whether an episode finished decoded it"
    for eid, ep in cold.episodes.items():
        assert episodes[eid] == ep
        assert view.digests[f"episode/{eid}"].hexdigest() == cold.digests[f"episode/{eid}"].hexdigest()
    assert projection_digests(view) == projection_digests(cold)
    assert view.stream_digests() == cold.stream_digests()


def test_loading_a_checkpoint_decodes_no_episode(tmp_path: Path) -> None:
    path = tmp_path / "log.lmdb"
    _append(path, 0, len(RECORDS))
    with Log.open(path) as lg:
        assert projected(lg).folded == len(RECORDS)
        p = projected(lg)
        assert (p.checkpoint, p.folded) == (len(RECORDS), 0)
        episodes = p.view.episodes
        assert isinstance(episodes, StoredEpisodes) and len(episodes) == 4 and not episodes.live
        _lazy_equals_cold(lg, p.view)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, len(RECORDS) - 1), min_size=1, max_size=5, unique=True))
def test_episodes_read_from_checkpoints_at_any_points_equal_the_cold_fold(tmp_path_factory, cuts: list[int]) -> None:  # type: ignore[no-untyped-def]
    """The run appended in pieces, a checkpoint after each (each save writes the episodes
    that changed, the others' entries stay): after each, every episode read lazily from
    the newest checkpoint equals the cold fold of the log so far."""
    path = tmp_path_factory.mktemp("cuts") / "log.lmdb"
    start = 0
    for stop in [*sorted(cuts), len(RECORDS)]:
        _append(path, start, stop)
        with Log.open(path) as lg:
            projected(lg)  # folds what was appended, saves
            p = projected(lg)
            assert (p.checkpoint, p.folded) == (stop, 0)
            _lazy_equals_cold(lg, p.view)
        start = stop


def test_a_save_writes_only_the_episodes_that_changed(tmp_path: Path) -> None:
    path = tmp_path / "log.lmdb"
    last_start = max(i for i, r in enumerate(RECORDS) if r.stream.startswith("episode/") and r.n == 0)
    _append(path, 0, last_start)
    with Log.open(path) as lg:
        projected(lg)
        before = {k: read_head(k, v) for k, v in lg.checkpoint_entries()}
    touched = {r.stream[len("episode/"):] for r in RECORDS[last_start:] if r.stream.startswith("episode/")}
    _append(path, last_start, len(RECORDS))
    with Log.open(path) as lg:
        p = projected(lg)
        assert p.folded == len(RECORDS) - last_start
        after = {k: read_head(k, v) for k, v in lg.checkpoint_entries()}
        rewritten = {k.decode() for k, h in after.items() if h is not None and h.written_at == len(RECORDS)}
        assert rewritten == touched
        assert all(after[k] == h for k, h in before.items() if k.decode() not in touched)
        _lazy_equals_cold(lg, projected(lg).view)


def _damage(lg: Log, key: bytes, at: int) -> None:
    value = bytearray(lg.get_checkpoint_entry(key))  # type: ignore[arg-type]
    value[at] ^= 0xFF
    with lg.env.begin(write=True, db=lg._entry_db(create=False)) as txn:
        txn.put(key, bytes(value))


def test_a_damaged_entry_is_folded_from_its_stream_with_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "log.lmdb"
    _append(path, 0, len(RECORDS))
    with Log.open(path) as lg:
        projected(lg)
        keys = [k for k, _ in lg.checkpoint_entries()]
        _damage(lg, keys[0], HEAD_SIZE + 3)  # its body
        _damage(lg, keys[1], 9)  # its header
        with captured() as logs:
            p = projected(lg, write=False)
            _lazy_equals_cold(lg, p.view)
        warned = [str(e["event"]) for e in logs if "checkpoint entry" in str(e.get("event"))]
        assert len(warned) == 1 and "damaged (checksum mismatch); folded from its stream" in warned[0]
        assert p.view.episodes.damaged >= 2  # type: ignore[union-attr]


def test_entries_of_a_newer_checkpoint_are_not_used_by_an_older_one(tmp_path: Path) -> None:
    """The newest checkpoint damaged: the older one is used, and the episodes whose entries
    the newer one rewrote are folded from their streams (through the older one's seq)
    before the records after it are folded."""
    path = tmp_path / "log.lmdb"
    firsts = [i for i, r in enumerate(RECORDS) if r.stream.startswith("episode/") and r.n == 0]
    middle = firsts[2] + 3  # two episodes whole, the third begun
    _append(path, 0, middle)
    with Log.open(path) as lg:
        projected(lg)
    _append(path, middle, len(RECORDS))
    with Log.open(path) as lg:
        projected(lg)
        newest = lg.checkpoint_seqs()[-1]
        value = bytearray(lg.get_checkpoint(newest))  # type: ignore[arg-type]
        value[len(value) // 2] ^= 0xFF
        lg.put_checkpoint(newest, bytes(value))
        p = projected(lg, write=False)
        assert (p.checkpoint, p.folded) == (middle, len(RECORDS) - middle)
        _lazy_equals_cold(lg, p.view)
        p = projected(lg)  # replaces the damaged one
        assert p.checkpoint == middle
        _lazy_equals_cold(lg, projected(lg).view)


def test_a_view_outliving_its_log_still_answers(tmp_path: Path) -> None:
    """The log closed under a view loaded from its checkpoint: the entries it had not read
    were kept (one decoded before stays), and every episode still equals the cold fold's."""
    path = tmp_path / "log.lmdb"
    _append(path, 0, len(RECORDS))
    with Log.open(path) as lg:
        projected(lg)
        cold = fold_log(lg, digests=True)
        view = projected(lg).view
        first = sorted(cold.episodes)[0]
        assert view.episodes[first] == cold.episodes[first]
    assert sorted(view.episodes) == sorted(cold.episodes)
    for eid, ep in cold.episodes.items():
        assert episode_finished(view.episodes, eid) == (ep.reward is not None)
        assert view.episodes[eid] == ep
    assert list(view.episodes) == sorted(cold.episodes)  # each once, also after decoding them
    assert len(view.episodes) == len(cold.episodes)
    assert "d00/t999/g0" not in view.episodes
    assert view.stream_digests() == cold.stream_digests()
    assert projection_digests(view) == projection_digests(cold)
