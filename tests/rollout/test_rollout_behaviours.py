"""What the rollout loop promises: bad calls are tool errors, every end is explained,
user failures are the user's fault, and an interrupted rollout resumes without redoing work."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import trio

from scaleenv._streams import episode_id
import scaleenv._runner as runner_module
from scaleenv._agents.llm.port import Completion, LlmRequest
from scaleenv._agents.sim import NoiseModel, SimBackend
from scaleenv._agents.llm.user_chat import conversation_of
from scaleenv._replay.projection import fold
from scaleenv._runner import EngineOptions, open_run, project, rollouts, summary
from scaleenv._store.events.episodes import EpisodeEnded, EpisodeStarted, RewardGiven, ToolExecuted
from scaleenv._store.log import Log

from .conftest import config, copy_template, roll


def episode_events(path: Path) -> dict[str, list[Any]]:
    by: dict[str, list[Any]] = {}
    with Log.open(path, readonly=True) as log:
        for rec in log.read():
            if rec.stream.startswith("episode/"):
                by.setdefault(rec.stream, []).append(rec.event)
    return by


def assert_every_episode_ended_once(by: dict[str, list[Any]]) -> None:
    for stream, events in by.items():
        kinds = Counter(type(e).__name__ for e in events)
        assert kinds["EpisodeStarted"] == 1 and kinds["EpisodeEnded"] == 1 and kinds["RewardGiven"] == 1, (stream, kinds)
        ended = next(e for e in events if isinstance(e, EpisodeEnded))
        assert ended.reason and ended.fault
        reward = next(e for e in events if isinstance(e, RewardGiven))
        assert reward.reward in (0.0, 1.0)
        # A failed episode always names whose fault it was (a success may still end on a late user error).
        assert reward.reward == 1.0 or ended.fault != "none", (stream, ended, reward.reward)
        assert isinstance(events[-1], RewardGiven)


def test_malformed_tool_calls_are_tool_errors_and_episodes_still_end(template: Path, tmp_path: Path) -> None:
    path = copy_template(template, tmp_path / "log")
    roll(path, 10, noise=0.8)
    by = episode_events(path)
    assert by
    assert_every_episode_ended_once(by)
    kinds = Counter(e.error_kind for events in by.values() for e in events if isinstance(e, ToolExecuted) and not e.ok)
    assert kinds["bad_json"] + kinds["unknown_tool"] > 0, kinds
    _bad_calls_went_back_to_the_policy(by)


class SlipperyPolicy(SimBackend):
    """The sim, except that the policy's first tool call of each episode is malformed: an
    unknown tool name or cut-off JSON arguments (by the parity of the request's seed)."""

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        out = await super().complete(request, json_schema, schema_name)
        if request.role != "policy" or any(m.get("role") == "tool" for m in request.messages):
            return out
        try:
            turn = json.loads(out.text)
        except json.JSONDecodeError:
            return out
        if not turn.get("tool_calls"):
            return out
        call = turn["tool_calls"][0]
        if request.seed % 2:
            call["name"] = "no_such_tool"
        else:
            call["arguments"] = call["arguments"][: max(1, len(call["arguments"]) // 2)]
        return msgspec.structs.replace(out, text=json.dumps(turn))


def test_injected_bad_json_and_unknown_tools_never_kill_an_episode(template: Path, tmp_path: Path) -> None:
    path = copy_template(template, tmp_path / "log")
    roll(path, 4, backend=SlipperyPolicy(noise=NoiseModel.off()))
    by = episode_events(path)
    assert_every_episode_ended_once(by)
    kinds = Counter(e.error_kind for events in by.values() for e in events if isinstance(e, ToolExecuted) and not e.ok)
    assert kinds["bad_json"] > 0 and kinds["unknown_tool"] > 0, kinds
    _bad_calls_went_back_to_the_policy(by)


def _bad_calls_went_back_to_the_policy(by: dict[str, list[Any]]) -> None:
    """Every episode with a malformed call ended scored, and the policy spoke again after it."""
    bad = [s for s, events in by.items()
           if any(isinstance(e, ToolExecuted) and e.error_kind in ("bad_json", "unknown_tool") for e in events)]
    for stream in bad:
        events = by[stream]
        # The policy went on after the bad call: the error went back to it as a tool result.
        first_bad = next(i for i, e in enumerate(events) if isinstance(e, ToolExecuted) and e.error_kind in ("bad_json", "unknown_tool"))
        assert any(type(e).__name__ == "LlmCalled" and e.role == "policy" for e in events[first_bad:]), stream


class UserBreaksDown(SimBackend):
    """The sim, except that the simulated user answers garbage (never valid JSON) from ``from_turn`` on."""

    def __init__(self, from_turn: int) -> None:
        super().__init__(noise=NoiseModel())
        self.from_turn = from_turn

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        agent_turns = sum(1 for m in conversation_of(request.messages) if m["role"] == "assistant")
        if request.role == "user" and agent_turns >= self.from_turn:
            return Completion(text="I am the customer and I refuse to speak JSON.", prompt_tokens=1, completion_tokens=9)
        return await super().complete(request, json_schema, schema_name)


def test_a_failing_user_simulator_is_the_users_fault(template: Path, tmp_path: Path) -> None:
    for from_turn in (0, 1):  # at the opening, and mid-conversation
        path = copy_template(template, tmp_path / f"log{from_turn}")
        roll(path, 1, backend=UserBreaksDown(from_turn))
        by = episode_events(path)
        assert by
        for stream, events in by.items():
            ended = next(e for e in events if isinstance(e, EpisodeEnded))
            assert (ended.reason, ended.fault) == ("error", "user"), (stream, ended)
            assert "user" in ended.detail
            assert isinstance(events[-1], RewardGiven)
            if from_turn == 0:  # nothing was done: no reward (mid-conversation the goal may already be met)
                assert events[-1].reward == 0.0
        if from_turn == 1:
            assert any(isinstance(e, EpisodeStarted) for events in by.values() for e in events)
            assert any(type(e).__name__ == "LlmCalled" and e.role == "policy" for events in by.values() for e in events)


def test_interrupted_rollout_resumes_without_rerunning_finished_episodes(template: Path, tmp_path: Path, monkeypatch: Any) -> None:
    per_task = 4
    whole = copy_template(template, tmp_path / "whole")
    roll(whole, per_task)
    path = copy_template(template, tmp_path / "interrupted")
    opts = EngineOptions(progress=False, sync=False, concurrency=4)
    real = runner_module.run_episode

    async def interrupted(stop_at: int) -> None:
        # Ctrl-C lands on the run's nursery exactly when its (stop_at + 1)-th episode is
        # about to start: at most `stop_at` episodes of this run were started, so some
        # are finished and, of 20, some are always left for the resumed run.
        begun = 0

        async def stopping(ctx: Any, domain: Any, task: Any, attempt: int, **kw: Any) -> float:
            nonlocal begun
            begun += 1
            if begun > stop_at:
                scope.cancel()
                await trio.lowlevel.checkpoint()
            return await real(ctx, domain, task, attempt, **kw)

        monkeypatch.setattr(runner_module, "run_episode", stopping)
        try:
            async with open_run(str(path), config(per_task), opts) as ctx:
                with trio.CancelScope() as scope:
                    await rollouts(ctx)
                assert scope.cancelled_caught, "the run finished before the interruption"
        finally:
            monkeypatch.setattr(runner_module, "run_episode", real)

    def finished(p: Path) -> set[str]:
        with Log.open(p, readonly=True) as log:
            return {eid for eid, ep in fold(log.read()).episodes.items() if ep.reward is not None}

    for stop in (3, 6):
        trio.run(interrupted, stop)
    done_before = finished(path)
    assert done_before and len(done_before) <= 3 + 6
    started: list[str] = []

    async def counting(ctx: Any, domain: Any, task: Any, attempt: int, **kw: Any) -> float:
        started.append(episode_id(task.task_id, attempt))
        return await real(ctx, domain, task, attempt, **kw)

    monkeypatch.setattr(runner_module, "run_episode", counting)
    roll(path, per_task, concurrency=8)
    assert started and not set(started) & done_before, "a finished episode was run again"
    with Log.open(path, readonly=True) as a, Log.open(whole, readonly=True) as b:
        resumed, uninterrupted = project(a), project(b)
    assert len(resumed.episodes) == len(uninterrupted.episodes) == len(finished(whole))
    by = episode_events(path)
    assert_every_episode_ended_once(by)  # EpisodeStarted exactly once per episode stream
    assert resumed.stream_digests() == uninterrupted.stream_digests()
    assert summary(resumed)["digest"] == summary(uninterrupted)["digest"]
    assert math.isclose(sum(e.reward.reward for e in resumed.episodes.values() if e.reward),
                        sum(e.reward.reward for e in uninterrupted.episodes.values() if e.reward))
