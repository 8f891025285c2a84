"""Many episodes in one process keep memory flat; episodes never share state."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import scaleenv._runner as runner_module

from scaleenv._replay.projection import RunView, fold
from scaleenv._model.state import canonical
from scaleenv._run_context import RunContext
from scaleenv._store.events.episodes import ToolExecuted
from scaleenv._store.log import Log

from .conftest import copy_template, roll


def _anon_kb(pid: int | str = "self") -> int | None:
    """Anonymous resident memory (the heap; file-backed LMDB pages are not a leak) in kB, or
    None for a process that is gone or exiting (a zombie's status has no RssAnon line)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def _kept(path: Path) -> int:
    with Log.open(path, readonly=True) as log:
        return sum(t.status == "kept" for t in fold(log.read()).tasks.values())


def soak(template: Path, dest: Path, episodes: int, every: int, concurrency: int = 100) -> list[tuple[int, int, int]]:
    """Roll out ``episodes`` episodes in this process; (episodes started, engine kB, workers kB)
    as every ``every``-th episode starts.

    Sampled at chosen episode counts, not on a timer: the samples are the same whatever
    the machine's load (episodes are acknowledged when their commit lands, so hundreds
    can complete at once and a timer may see none of the ones in between)."""
    path = copy_template(template, dest)
    per_task = math.ceil(episodes / _kept(path))
    samples: list[tuple[int, int, int]] = []
    started = 0
    real = runner_module.run_episode

    async def sampled(ctx: RunContext, *args: Any, **kw: Any) -> Any:
        nonlocal started
        started += 1
        if started % every == 0:
            # A worker replaced between listing and reading is left out of this sample.
            workers = sum(kb for p in ctx.sandbox.worker_pids() if (kb := _anon_kb(p)) is not None)
            samples.append((started, _anon_kb() or 0, workers))
        return await real(ctx, *args, **kw)

    runner_module.run_episode = sampled  # type: ignore[assignment]
    try:
        roll(path, per_task, concurrency=concurrency, llm_concurrency=concurrency)
    finally:
        runner_module.run_episode = real  # type: ignore[assignment]
    return samples


def _assert_flat(samples: list[tuple[int, int, int]], plateau_until: int, tolerance: float, slack_kb: int) -> None:
    """The last 3 samples stay within ``tolerance`` + ``slack_kb`` of the highest sample taken
    while at most ``plateau_until`` episodes had started."""
    early = [s for s in samples if s[0] <= plateau_until] or samples[:1]
    for column, who in ((1, "engine"), (2, "sandbox workers")):
        plateau = max(s[column] for s in early)
        limit = plateau * (1 + tolerance) + slack_kb
        grown = [(s[0], s[column]) for s in samples[-3:] if s[column] > limit]
        assert not grown, f"{who} memory keeps growing: plateau {plateau} kB, then {grown}; all samples {samples}"


@pytest.mark.slow
def test_soak_5000_episodes_memory_stays_flat(template: Path, tmp_path: Path) -> None:
    samples = soak(template, tmp_path / "log", episodes=5000, every=250)
    assert samples[-1][0] >= 5000 and sum(s[0] > 3000 for s in samples) >= 8, samples
    # Plateau: the highest sample of the first 2,000 episodes; the last 3 samples stay within 5% + 4 MB of it.
    _assert_flat(samples, plateau_until=2000, tolerance=0.05, slack_kb=4096)


def test_short_soak_memory_shape(template: Path, tmp_path: Path) -> None:
    samples = soak(template, tmp_path / "log", episodes=600, every=50)
    assert samples[-1][0] >= 600 and sum(s[0] > 300 for s in samples) >= 6, samples
    _assert_flat(samples, plateau_until=200, tolerance=0.25, slack_kb=16384)


def _episode_tools(log: Log) -> dict[str, list[tuple[int, ToolExecuted]]]:
    by_episode: dict[str, list[tuple[int, ToolExecuted]]] = {}
    for rec in log.read():
        if isinstance(rec.event, ToolExecuted):
            by_episode.setdefault(rec.stream.removeprefix("episode/"), []).append((rec.seq, rec.event))
    return by_episode


def test_episodes_of_one_task_never_see_each_others_state(template: Path, tmp_path: Path) -> None:
    path = copy_template(template, tmp_path / "log")
    roll(path, 6, concurrency=4)  # interleaved episodes of the same tasks
    with Log.open(path, readonly=True) as log:
        view: RunView = fold(log.read())
        tools = _episode_tools(log)
    mutated_then_read = 0
    for tid, task in view.tasks.items():
        if task.status != "kept":
            continue
        assert task.initial_state is not None
        eps = sorted(e for e in view.episodes if e.startswith(tid + "/"))
        assert len(eps) == 6
        first_writes: dict[str, int] = {}
        for eid in eps:
            # Folding the episode's OWN deltas from the task's initial state explains every change
            # it saw: a record another episode had changed would show up as a wrong `before`.
            state = {t: dict(rows) for t, rows in task.initial_state.items()}
            for seq, ev in tools.get(eid, []):
                for ch in ev.delta if ev.ok else []:
                    assert canonical(state.get(ch.table, {}).get(ch.key)) == canonical(ch.before), (
                        f"{eid} saw {ch.table}/{ch.key} as {ch.before!r}, its own state holds "
                        f"{state.get(ch.table, {}).get(ch.key)!r}")
                    if ch.after is None:
                        state.setdefault(ch.table, {}).pop(ch.key, None)
                    else:
                        state.setdefault(ch.table, {})[ch.key] = ch.after
                    first_writes.setdefault(eid, seq)
        # Identical first calls on the same initial state give identical results, even when
        # another episode of the task had already changed its own copy of the data.
        first_results: dict[tuple[str, str], tuple[str, object]] = {}
        for eid in eps:
            calls = tools.get(eid, [])
            if not calls or not calls[0][1].ok:
                continue
            seq, ev = calls[0]
            key = (ev.tool, repr(canonical(ev.args)))
            if key in first_results:
                other, result = first_results[key]
                assert canonical(ev.result) == canonical(result), f"{eid} and {other} got different first results"
            else:
                first_results[key] = (eid, ev.result)
            if any(w < seq for o, w in first_writes.items() if o != eid):
                mutated_then_read += 1
    assert mutated_then_read > 0, "no episode read after a sibling episode's write: the check proved nothing"
