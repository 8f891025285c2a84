"""The tools offered with every policy call are in the log (format 3), by reference.

From the log alone (the current golden run), each policy call's offered tools resolve to
exactly what its episode offers: the OpenAI schemas of the task's environment tools. Logs
older than format 3 record none (None), and keep their digests (tests/replay/test_golden.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scaleenv.model.tool_schemas import environment_tools, openai_tools
from scaleenv.replay.projection import fold
from scaleenv.store.events.llm import CallResolver, LlmCalled
from scaleenv.store.log import Log
from scaleenv.streams import episode_id_of, task_of_episode
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
