"""``scaleenv serve`` in-process: 20 concurrent episodes over real HTTP, then replay/export them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2 as httpx
import trio

from scaleenv.serve.http import serve_environments
from scaleenv.serve.environments import open_environments
from scaleenv.cli import main as cli_main
from scaleenv.replay.projection import fold
from scaleenv.store.events.episodes import EpisodeEnded, EpisodeStarted, MessageSent, RewardGiven, ToolExecuted
from scaleenv.store.log import Log

from .conftest import OPTIONS


async def golden_policy(c: httpx.AsyncClient, task: Any, task_id: str) -> dict[str, Any]:
    """Replays the task's golden chain, tells the user the answers, ends: reward 1."""
    r = await c.post("/v1/episodes", json={"task_id": task_id})
    assert r.status_code == 200, r.text
    opened = r.json()
    eid = opened["episode_id"]
    assert eid.startswith(task_id + "/s")
    assert opened["user"]["message"] and opened["tools"][0]["type"] == "function"
    for i, step in enumerate(task.golden.steps):
        if i % 2:  # both shapes: one tool per request, and a whole assistant turn (OpenAI tool_calls)
            r = await c.post(f"/v1/episodes/{eid}/tool", json={"name": step.tool, "arguments": step.args})
            assert r.status_code == 200, r.text
            assert r.json()["tool_result"]["ok"], r.text
        else:
            call = {"id": f"golden_{i}", "type": "function",
                    "function": {"name": step.tool, "arguments": json.dumps(step.args)}}
            r = await c.post(f"/v1/episodes/{eid}/step", json={"content": "", "tool_calls": [call]})
            assert r.status_code == 200, r.text
            assert r.json()["tool_results"][0]["ok"], r.text
    answers = " ".join(str(a) for a in task.golden.expected_answers)
    r = await c.post(f"/v1/episodes/{eid}/message", json={"content": f"All done: your request has been completed. {answers}"})
    assert r.status_code == 200, r.text
    assert r.json()["user"] is None or isinstance(r.json()["user"]["message"], str)
    r = await c.post(f"/v1/episodes/{eid}/end")
    assert r.status_code == 200, r.text
    return r.json()


async def idle_policy(c: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    """Opens and ends at once: nothing done, reward 0."""
    r = await c.post("/v1/episodes", json={"task_id": task_id})
    assert r.status_code == 200, r.text
    r = await c.post(f"/v1/episodes/{r.json()['episode_id']}/end")
    assert r.status_code == 200, r.text
    return r.json()


async def test_serve_concurrent_episodes_replay_export(run_log: Path, tmp_path: Path) -> None:
    results: dict[str, dict[str, Any]] = {}
    async with open_environments(str(run_log), OPTIONS) as envs:
        tasks = envs.kept_tasks()
        assert len(tasks) >= 5
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_environments, envs, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                r = await c.get("/v1/domains")
                assert r.status_code == 200 and len(r.json()["domains"]) >= 1
                r = await c.get("/v1/tasks")
                assert [t["task_id"] for t in r.json()["tasks"]] == tasks
                r = await c.get(f"/v1/domains/{tasks[0].split('/')[0]}/tasks")
                assert r.status_code == 200 and r.json()["tasks"]

                async def one(i: int) -> None:
                    tid = tasks[i % len(tasks)]
                    if i % 2 == 0:
                        res = await golden_policy(c, envs.view.tasks[tid], tid)
                    else:
                        res = await idle_policy(c, tid)
                    results[res["log_episode_id"]] = res

                async with trio.open_nursery() as clients:  # 20 episodes at once
                    for i in range(20):
                        clients.start_soon(one, i)
                await _errors(c, tasks[0], envs.view.tasks[tasks[0]])
            nursery.cancel_scope.cancel()

    assert len(results) == 20
    golden = [r for r in results.values() if r["detail"] != "the client ended the episode" or r["tool_calls"]]
    idle = [r for r in results.values() if r["tool_calls"] == 0 and r["turns"] == 0]
    assert len(idle) == 10 and all(r["reward"] == 0.0 and r["fault"] == "policy" for r in idle), \
        [(r["log_episode_id"], r["reward"], r["fault"], r["diff"]) for r in idle if r["reward"] != 0.0 or r["fault"] != "policy"]
    assert len(golden) == 10 and all(r["reward"] == 1.0 for r in golden), [r for r in golden if r["reward"] != 1.0]

    # The log holds them exactly as local rollouts are recorded.
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
        for eid in results:
            kinds = [type(r.event) for r in event_log.read_stream(f"episode/{eid}")]
            assert kinds[0] is EpisodeStarted and kinds[-2:] == [EpisodeEnded, RewardGiven]
            assert MessageSent in kinds
        ep = view.episodes[next(e for e, r in results.items() if r["reward"] == 1.0)]
        assert ep.reward is not None and ep.reward.reward == 1.0
        assert any(isinstance(e, ToolExecuted) and e.ok for e in ep.timeline)
        assert any(isinstance(e, MessageSent) and e.role == "assistant" and e.tool_calls for e in ep.timeline)
        assert not any(e.endswith(("/g1", "/g2")) for e in results)

    # replay, verify and export them like local episodes
    def cli(*argv: str) -> int:
        return cli_main([*argv, "--log", str(run_log), "--json"])

    some = sorted(results)[0]
    assert await trio.to_thread.run_sync(cli, "replay", "--episode", some) == 0
    assert await trio.to_thread.run_sync(cli, "replay", "--verify") == 0
    assert await trio.to_thread.run_sync(cli, "rerun") == 0  # served episodes (plain ids in the log) are skipped
    out = tmp_path / "episodes.jsonl"
    assert await trio.to_thread.run_sync(cli, "export", "--out", str(out)) == 0
    rows = {row["episode_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    for eid, res in results.items():
        assert rows[eid]["reward"] == res["reward"]
        assert rows[eid]["messages"][0]["role"] == "system"


async def _errors(c: httpx.AsyncClient, task_id: str, task: Any) -> None:
    r = await c.post("/v1/episodes/d99/t999/s0/tool", json={"name": "x"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = await c.post("/v1/episodes", json={"task_id": "d99/t999"})
    assert r.status_code == 404 and "unknown task" in r.json()["error"]["message"]
    r = await c.post("/v1/episodes", content=b"{not json")
    assert r.status_code == 400
    r = await c.get("/v1/nowhere")
    assert r.status_code == 404
    r = await c.get("/v1/episodes")
    assert r.status_code == 405
    r = await c.post("/v1/episodes", json={"task_id": task_id})
    eid = r.json()["episode_id"]
    tool = task.golden.steps[0].tool
    r = await c.post(f"/v1/episodes/{eid}/tool", json={"name": "no_such_tool", "arguments": {}})
    assert r.status_code == 404 and r.json()["error"]["type"] == "unknown_tool"
    assert r.json()["tool_result"]["error_kind"] == "unknown_tool"  # recorded as the tool error it is
    r = await c.post(f"/v1/episodes/{eid}/tool", json={"name": tool, "arguments": "{oops"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "bad_json"
    r = await c.post(f"/v1/episodes/{eid}/tool", json={"name": tool, "arguments": {"not_a_param": 1}})
    assert r.status_code == 422 and r.json()["error"]["type"] == "bad_args"
    r = await c.post(f"/v1/episodes/{eid}/tool", json={"arguments": {}})
    assert r.status_code == 400 and "field `name`" in r.json()["error"]["message"]
    r = await c.post(f"/v1/episodes/{eid}/message", json={"content": ""})
    assert r.status_code == 400
    r = await c.post(f"/v1/episodes/{eid}/step", json={"tool_calls": "nope"})
    assert r.status_code == 400
    r = await c.get(f"/v1/episodes/{eid}")
    assert r.status_code == 200 and r.json()["tool_calls"] == 3 and not r.json()["ended"]
    r = await c.post(f"/v1/episodes/{eid}/end")
    assert r.status_code == 200 and r.json()["reason"] == "policy_stopped"
    r = await c.post(f"/v1/episodes/{eid}/end")  # idempotent
    assert r.status_code == 200 and r.json()["reason"] == "policy_stopped"
    r = await c.post(f"/v1/episodes/{eid}/message", json={"content": "hello?"})
    assert r.status_code == 409 and r.json()["outcome"]["reason"] == "policy_stopped"
