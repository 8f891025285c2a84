"""``scaleenv serve`` in-process: 20 concurrent episodes over real HTTP, then replay/export them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import trio

from scaleenv._serve.http import serve_environments
from scaleenv._serve.environments import open_environments
from scaleenv._cli import main as cli_main
from scaleenv._replay.projection import fold
from scaleenv._store.events.episodes import EpisodeEnded, EpisodeStarted, MessageSent, RewardGiven, ToolExecuted
from scaleenv._store.log import Log

from tests.conftest import copy_log

from .conftest import OPTIONS
from .served import Served, serving


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


# ------------------------------------------------------------------ one test per error path
# All against one server process for the module (``served``), each on its own episode.


@pytest.fixture(scope="module")
def served(base_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(copy_log(base_run, tmp_path_factory.mktemp("http_errors") / "log")) as srv:
        yield srv


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=120) as c:
        yield c


def _open(c: httpx.Client, served: Served) -> str:
    r = c.post("/v1/episodes", json={"task_id": served.task_id})
    assert r.status_code == 200, r.text
    return r.json()["episode_id"]


def _unknown_episode(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.post("/v1/episodes/d99/t999/s0/tool", json={"name": "x"})


def _unknown_task(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.post("/v1/episodes", json={"task_id": "d99/t999"})


def _body_not_json(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.post("/v1/episodes", content=b"{not json")


def _no_such_route(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.get("/v1/nowhere")


def _wrong_method(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.get("/v1/episodes")


def _unknown_tool(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.post(f"/v1/episodes/{_open(c, srv)}/tool", json={"name": "no_such_tool", "arguments": {}})


def _arguments_not_json(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.post(f"/v1/episodes/{_open(c, srv)}/tool", json={"name": srv.tool, "arguments": "{oops"})


def _unknown_argument(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.post(f"/v1/episodes/{_open(c, srv)}/tool", json={"name": srv.tool, "arguments": {"not_a_param": 1}})


def _tool_without_name(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.post(f"/v1/episodes/{_open(c, srv)}/tool", json={"arguments": {}})


def _empty_message(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.post(f"/v1/episodes/{_open(c, srv)}/message", json={"content": ""})


def _step_with_bad_tool_calls(c: httpx.Client, srv: Served) -> httpx.Response:
    return c.post(f"/v1/episodes/{_open(c, srv)}/step", json={"tool_calls": "nope"})


def _message_after_end(c: httpx.Client, srv: Served) -> httpx.Response:
    eid = _open(c, srv)
    assert c.post(f"/v1/episodes/{eid}/end").status_code == 200
    return c.post(f"/v1/episodes/{eid}/message", json={"content": "hello?"})


ERROR_PATHS = {  # request, status, what the body must say
    "unknown episode": (_unknown_episode, 404, lambda b: b["error"]["type"] == "not_found_error"),
    "unknown task": (_unknown_task, 404, lambda b: "unknown task" in b["error"]["message"]),
    "body not JSON": (_body_not_json, 400, lambda b: "error" in b),
    "no such route": (_no_such_route, 404, lambda b: "error" in b),
    "wrong method": (_wrong_method, 405, lambda b: "error" in b),
    "unknown tool (recorded as the tool error it is)": (
        _unknown_tool, 404, lambda b: b["error"]["type"] == "unknown_tool" and b["tool_result"]["error_kind"] == "unknown_tool"),
    "arguments not JSON": (_arguments_not_json, 400, lambda b: b["error"]["type"] == "bad_json"),
    "unknown argument": (_unknown_argument, 422, lambda b: b["error"]["type"] == "bad_args"),
    "tool call without a name": (_tool_without_name, 400, lambda b: "field `name`" in b["error"]["message"]),
    "empty message": (_empty_message, 400, lambda b: "error" in b),
    "step with tool_calls not a list": (_step_with_bad_tool_calls, 400, lambda b: "error" in b),
    "message after the episode ended": (_message_after_end, 409, lambda b: b["outcome"]["reason"] == "policy_stopped"),
}


@pytest.mark.parametrize("path", list(ERROR_PATHS))
def test_error_path(path: str, client: httpx.Client, served: Served) -> None:
    request, status, says = ERROR_PATHS[path]
    r = request(client, served)
    assert r.status_code == status, r.text
    assert says(r.json()), r.text


def test_bad_tool_calls_count_as_tool_calls_and_the_episode_goes_on(client: httpx.Client, served: Served) -> None:
    """A call to an unknown tool, with arguments that are no JSON or name no parameter, is a
    tool call the policy made (recorded, counted); a request the server cannot read is not."""
    eid = _open(client, served)
    for body in ({"name": "no_such_tool", "arguments": {}}, {"name": served.tool, "arguments": "{oops"},
                 {"name": served.tool, "arguments": {"not_a_param": 1}}, {"arguments": {}}):
        assert client.post(f"/v1/episodes/{eid}/tool", json=body).status_code >= 400
    assert client.post(f"/v1/episodes/{eid}/message", json={"content": ""}).status_code == 400
    r = client.get(f"/v1/episodes/{eid}")
    assert r.status_code == 200 and r.json()["tool_calls"] == 3 and not r.json()["ended"], r.text


def test_end_is_idempotent(client: httpx.Client, served: Served) -> None:
    eid = _open(client, served)
    for _ in range(2):
        r = client.post(f"/v1/episodes/{eid}/end")
        assert r.status_code == 200 and r.json()["reason"] == "policy_stopped", r.text
