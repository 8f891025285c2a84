"""A ``scaleenv serve`` SIGKILLed with an episode open: the next server ends that episode.

Real processes, real HTTP, real LMDB: the episode's ending (EpisodeEnded + RewardGiven)
is appended by the restarted server, scored on the state folded from the episode's own
events, and the log still verifies. The episode id handed out carries a capability
derived from the token: the restarted server, given the same token, recognises it; the
log knows the episode only by its plain id.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2 as httpx

from scaleenv._serve.environments import ORPHAN_DETAIL
from scaleenv._replay.projection import fold
from scaleenv._runner import summary
from scaleenv._store.events.episodes import EpisodeEnded, EpisodeStarted, RewardGiven, ToolExecuted
from scaleenv._store.log import Log

TOKEN = "restart-test-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
STARTUP_LIMIT_S = 180.0  # a bound on a hang, not a timing assertion
EXIT_LIMIT_S = 120.0


def _start(log: Path, err: Any) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "scaleenv", "serve", "--log", str(log), "--port", "0", "--json",
         "--no-sync", "--sandbox-workers", "1"],
        stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, "SCALEENV_TOKEN": TOKEN})
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(STARTUP_LIMIT_S):
            _reap(proc)
            raise AssertionError(f"scaleenv serve printed nothing in {STARTUP_LIMIT_S:g}s")
    finally:
        sel.close()
    line = proc.stdout.readline()
    if not line:
        _reap(proc)
        raise AssertionError(f"scaleenv serve exited ({proc.returncode}) before listening")
    return proc, json.loads(line)["url"]


def _reap(proc: subprocess.Popen[str]) -> None:
    """Kill the server if it still runs; wait for it and close its pipe."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


def _stop(proc: subprocess.Popen[str], sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=EXIT_LIMIT_S)
    except subprocess.TimeoutExpired:
        _reap(proc)
        raise AssertionError(f"scaleenv serve did not exit within {EXIT_LIMIT_S:g}s of signal {sig}") from None


def _cli(log: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scaleenv", *argv, "--log", str(log), "--json"],
                          capture_output=True, text=True, timeout=600)


def test_an_episode_left_open_by_a_killed_server_is_ended_by_the_next(run_log: Path, tmp_path: Path) -> None:
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    with open(tmp_path / "serve.err", "w") as err:
        proc, url = _start(run_log, err)
        try:
            with httpx.Client(base_url=url.removesuffix("/v1"), timeout=120, headers=HEADERS) as c:
                tasks = [t["task_id"] for t in c.get("/v1/tasks").json()["tasks"]]
                # A task whose golden chain changes the state: the restarted server must score that
                # change, so the reward proves the state was folded from the episode's events.
                task_id = next(t for t in tasks if view.tasks[t].expected_final != view.tasks[t].initial_state)
                task = view.tasks[task_id]
                r = c.post("/v1/episodes", json={"task_id": task_id})
                assert r.status_code == 200, r.text
                eid = r.json()["episode_id"]
                log_id = r.json()["log_episode_id"]
                assert eid.startswith(log_id + "-") and len(eid) > len(log_id) + 20
                assert not r.json()["ended"], r.text
                for step in task.golden.steps:
                    r = c.post(f"/v1/episodes/{eid}/tool", json={"name": step.tool, "arguments": step.args})
                    assert r.status_code == 200 and r.json()["tool_result"]["ok"], r.text
            assert _stop(proc, signal.SIGKILL) == -signal.SIGKILL
        finally:
            _reap(proc)

        stream = f"episode/{log_id}"
        with Log.open(str(run_log), readonly=True) as event_log:
            before = [r.event for r in event_log.read_stream(stream)]
        assert isinstance(before[0], EpisodeStarted)
        assert not any(isinstance(e, EpisodeEnded) for e in before)  # the kill left it open

        proc, url = _start(run_log, err)  # orphans are ended before the server listens
        try:
            with httpx.Client(base_url=url.removesuffix("/v1"), timeout=120, headers=HEADERS) as c:
                r = c.get(f"/v1/episodes/{eid}")
                assert r.status_code == 200 and r.json()["ended"], r.text
                assert r.json()["tool_calls"] == len(task.golden.steps)
                r = c.post(f"/v1/episodes/{eid}/message", json={"content": "still there?"})
                assert r.status_code == 409 and r.json()["outcome"]["reason"] == "error", r.text
                r = c.get(f"/v1/episodes/{eid}", headers={"Authorization": "Bearer another-token-9876543210"})
                assert r.status_code == 401, r.text
                r = c.post("/v1/episodes", json={"task_id": task_id})
                assert r.status_code == 200 and r.json()["episode_id"] != eid, r.text
                second = r.json()["log_episode_id"]
            assert _stop(proc, signal.SIGTERM) == 0  # a clean stop ends `second` itself
        finally:
            _reap(proc)

    with Log.open(str(run_log), readonly=True) as event_log:
        records = list(event_log.read_stream(stream))
        view = fold(event_log.read())
    assert [r.event for r in records[: len(before)]] == before  # nothing rewritten
    ended, reward = records[-2].event, records[-1].event
    assert len(records) == len(before) + 2, [type(r.event).__name__ for r in records[len(before):]]
    assert isinstance(ended, EpisodeEnded) and isinstance(reward, RewardGiven)
    assert (ended.reason, ended.fault, ended.detail) == ("error", "environment", ORPHAN_DETAIL)
    assert ended.tool_calls == len(task.golden.steps) == sum(isinstance(r.event, ToolExecuted) for r in records)
    assert records[-2].cause is not None and records[-2].cause.n == len(before) - 1
    assert reward.breakdown["state"] == 1.0, reward.diff  # the golden chain's changes, folded from the log
    assert view.episodes[log_id].state == task.expected_final
    assert view.episodes[second].ended is not None and view.episodes[second].ended.reason == "error"

    # Both count as served episodes of their domain; local rollout counts are untouched.
    slot = task.slot
    row = next(d for d in summary(view)["domains"] if d["slot"] == slot)
    assert row["served_episodes"] == 2

    with Log.open(str(run_log), readonly=True) as event_log:  # the capability is nowhere in the log
        assert not any(eid.rsplit("-", 1)[1] in repr(r.event) or eid.rsplit("-", 1)[1] in r.stream
                       for r in event_log.read())

    check = _cli(run_log, "log", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    verify = _cli(run_log, "replay", "--verify")
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
