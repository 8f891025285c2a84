"""The tools offered with every policy call are in the log (format 3), by reference.

From the log alone (the current golden run), each policy call's offered tools resolve to
exactly what its episode offers: the OpenAI schemas of the task's environment tools. Logs
older than format 3 record none (None), and keep their digests (tests/replay/test_golden.py).
``export`` writes the recorded tools (both its streaming and its whole-fold paths), and
derives them from the task only for logs that did not record them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scaleenv._model.tool_schemas import environment_tools, openai_tools
from scaleenv._replay.episode import EpisodeView
from scaleenv._replay.export import KINDS, episode_rows, export_to, offered_by_task
from scaleenv._replay.logcopy import copy_log, replace_event
from scaleenv._replay.projection import RunView, fold
from scaleenv._store.events.synth import DomainSynthesized
from scaleenv._store.record import Record
from scaleenv._store.events.llm import CallResolver, LlmCalled
from scaleenv._store.log import Log
from scaleenv._streams import episode_id_of, task_of_episode
from tests.replay.goldens import CURRENT, GENERATIONS, expected_path, golden_log, load_prefix


def _policy_calls(lg: Log) -> list[tuple[str, LlmCalled, LlmCalled]]:
    resolver = CallResolver()
    out = []
    for r in lg.read():
        if isinstance(r.event, LlmCalled):
            whole = resolver.resolve(r.stream, r.n, r.event)
            if whole.role == "policy":
                out.append((r.stream, r.event, whole))
    return out


def test_every_policy_call_of_a_log_names_the_tools_its_episode_offered(tmp_path: Path) -> None:
    lines = json.loads(expected_path(CURRENT).read_text())["rollout"]["lines"]
    load_prefix(golden_log(CURRENT), lines, tmp_path / "log.lmdb")
    with Log.open(tmp_path / "log.lmdb", readonly=True) as lg:
        view = fold(lg.read())
        calls = _policy_calls(lg)
    assert len({s for s, _, _ in calls}) >= 4  # every episode of the golden run
    carried = 0
    for stream, stored, whole in calls:
        task = view.tasks[task_of_episode(episode_id_of(stream))]
        domain = view.domains[task.task_id.split("/", 1)[0]]
        assert domain.spec is not None
        expected = openai_tools(environment_tools(domain.spec.tools, domain.verified, task.env_tools))
        assert whole.tools == expected, f"{stream}: the recorded tools are not the task's environment"
        carried += stored.tools is not None
    # each episode carries its list once; its other calls refer to it
    assert carried == len({s for s, _, _ in calls}) < len(calls)


@pytest.mark.parametrize("generation", [g for g in GENERATIONS if g != CURRENT])
def test_older_logs_record_no_tools(generation: str, tmp_path: Path) -> None:
    lines = json.loads(expected_path(generation).read_text())["rollout"]["lines"]
    load_prefix(golden_log(generation), lines, tmp_path / "log.lmdb")
    with Log.open(tmp_path / "log.lmdb", readonly=True) as lg:
        calls = _policy_calls(lg)
    assert calls and all(whole.tools is None for _, _, whole in calls)


def _without_a_verified_tool(src: Path, dest: Path) -> str:
    """A copy of the log at ``src`` whose domain no longer lists, as verified, one tool its
    first episode's policy was offered (as if the domain were re-verified after the run):
    the task now offers one tool fewer than the episodes were offered. Returns its name."""
    with Log.open(src, readonly=True) as lg:
        view = fold(lg.read())
        eid = min(e for e, ep in view.episodes.items() if ep.reward is not None)
        task = view.tasks[view.episodes[eid].task_id]
        domain = view.domains[task.task_id.split("/", 1)[0]]
        assert domain.spec is not None
        name = environment_tools(domain.spec.tools, domain.verified, task.env_tools)[0].name

        def drop(r: Record) -> Record:
            if isinstance(r.event, DomainSynthesized):
                return replace_event(r, verified=[v for v in r.event.verified if v != name])
            return r

        copy_log(lg, dest, drop)
    return name


def _exported(path: Path, tmp: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], RunView]:
    """(rows of the whole-fold export, rows of the streaming export, the fold), by episode."""
    with Log.open(path, readonly=True) as lg:
        view = fold(lg.read())
        export_to(lg, tmp / "rows.jsonl", "jsonl", KINDS)
    folded = {r["episode_id"]: r for r in episode_rows(view, 0, KINDS)}
    streamed = {r["episode_id"]: r for r in map(json.loads, (tmp / "rows.jsonl").read_text().splitlines())}
    assert folded.keys() == streamed.keys() and folded
    return folded, streamed, view


def test_export_offers_the_tools_the_log_recorded_not_what_the_task_offers_now(tmp_path: Path) -> None:
    """Format 3: a row's tools are those the policy's calls recorded, even when the task's
    environment, derived again from the domain, now differs from what the episode offered."""
    load_prefix(golden_log(CURRENT), 10**9, tmp_path / "golden.lmdb")
    with Log.open(tmp_path / "golden.lmdb", readonly=True) as lg:
        recorded = {episode_id_of(s): whole.tools for s, _, whole in _policy_calls(lg)}
    dropped = _without_a_verified_tool(tmp_path / "golden.lmdb", tmp_path / "log.lmdb")
    folded, streamed, view = _exported(tmp_path / "log.lmdb", tmp_path)
    differs = 0
    for eid, row in folded.items():
        assert recorded[eid] is not None
        assert row["tools"] == recorded[eid] == streamed[eid]["tools"], eid
        ep = view.episodes[eid]
        assert isinstance(ep, EpisodeView) and ep.offered_tools == recorded[eid]
        task = view.tasks[ep.task_id]
        now = offered_by_task(task, view.domains[task.task_id.split("/", 1)[0]])
        differs += now != row["tools"]
        assert dropped not in {t["function"]["name"] for t in now}
    assert differs >= 1  # the dropped tool was offered, and is still in the rows that offered it


@pytest.mark.parametrize("generation", [g for g in GENERATIONS if g != CURRENT])
def test_export_of_an_older_log_derives_the_tools_from_the_task(generation: str, tmp_path: Path) -> None:
    """Before format 3 no call recorded its tools: a row's are the task's, as the domain now says."""
    load_prefix(golden_log(generation), 10**9, tmp_path / "golden.lmdb")
    _without_a_verified_tool(tmp_path / "golden.lmdb", tmp_path / "log.lmdb")
    folded, streamed, view = _exported(tmp_path / "log.lmdb", tmp_path)
    for eid, row in folded.items():
        ep = view.episodes[eid]
        assert isinstance(ep, EpisodeView) and ep.offered_tools is None
        task = view.tasks[ep.task_id]
        assert row["tools"] == streamed[eid]["tools"] == offered_by_task(task, view.domains[task.task_id.split("/", 1)[0]])
