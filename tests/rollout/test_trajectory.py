"""The exported trajectory is what the policy was sent: one fold defines it for every reader."""

from __future__ import annotations

import json
from pathlib import Path

from scaleenv._replay import episode as episode_fold
from scaleenv._replay.export import episode_rows
from scaleenv._replay.projection import fold
from scaleenv._store.events.llm import CallResolver, LlmCalled
from scaleenv._store.log import Log

from .conftest import copy_template, roll


def test_exported_messages_are_the_last_policy_request_plus_its_answer(template: Path, tmp_path: Path) -> None:
    path = copy_template(template, tmp_path / "log")
    roll(path, 6, noise=0.6)  # many tool errors, malformed calls and retried answers
    with Log.open(path, readonly=True) as lg:
        view = fold(lg.read())
        rows = {r["episode_id"]: r for r in episode_rows(view, 5)}
        resolver = CallResolver()
        turns: dict[str, list[list[LlmCalled]]] = {}  # per episode, the policy's turns: their attempts
        for r in lg.read():
            if isinstance(r.event, LlmCalled):
                call = resolver.resolve(r.stream, r.n, r.event)
                if call.role == "policy":
                    by = turns.setdefault(r.stream.removeprefix("episode/"), [])
                    if call.attempt == 0:
                        by.append([])
                    by[-1].append(call)
    checked = errors = 0
    for eid, row in rows.items():
        answered = [t for t in turns.get(eid, []) if any(c.error is None for c in t)]
        if not answered:
            continue  # the user ended the episode before the policy answered
        sent = answered[-1][0].messages  # the last request the policy answered (as first sent; retries add feedback)
        messages = row["messages"]
        assert messages[:-1] == sent, eid
        assert messages[-1]["role"] == "assistant", eid
        assert "[scaleenv" not in json.dumps(messages)  # nothing internal in training text
        errors += sum(1 for m in messages if m["role"] == "tool" and '"error"' in m["content"])
        checked += 1
    assert checked >= 10 and errors > 0


def test_every_reader_folds_an_episode_the_same_way(template: Path, tmp_path: Path) -> None:
    path = copy_template(template, tmp_path / "log")
    roll(path, 2, noise=0.6)
    with Log.open(path, readonly=True) as lg:
        view = fold(lg.read())
        for eid, ep in view.episodes.items():
            task = view.tasks[ep.task_id]
            alone = episode_fold.fold((r.event for r in lg.read_stream(f"episode/{eid}")), task.initial_state, eid)
            assert alone.messages == ep.messages and alone.state == ep.state
            assert (alone.turns, alone.tool_calls) == (ep.ended.turns, ep.ended.tool_calls)  # what the live loop counted
