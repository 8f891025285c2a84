"""``scaleenv serve-mcp`` over stdio, driven by the official MCP SDK's client (under trio)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

pytest.importorskip("mcp", reason="serve-mcp needs the mcp SDK: pip install 'scaleenv[mcp]'")

from mcp import Client, StdioServerParameters  # noqa: E402

from scaleenv._replay.projection import fold  # noqa: E402
from scaleenv._store.events.episodes import ToolExecuted  # noqa: E402
from scaleenv._store.log import Log  # noqa: E402


async def test_mcp_stdio_golden_episode(run_log: Path) -> None:
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    task_id = sorted(t for t, v in view.tasks.items() if v.status == "kept")[-1]
    task = view.tasks[task_id]
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "scaleenv", "serve-mcp", "--log", str(run_log), "--task", task_id, "--no-sync"])
    with trio.fail_after(60):
        async with Client(params) as client:
            assert client.instructions and "The customer says" in client.instructions
            names = [t.name for t in (await client.list_tools()).tools]
            assert "talk_to_user" in names and "end_episode" in names
            assert all(step.tool in names for step in task.golden.steps)
            prompt = await client.get_prompt("episode")
            assert prompt.messages[0].content.text
            bad = await client.call_tool(task.golden.steps[0].tool, {"not_a_param": 1})
            assert bad.is_error
            for step in task.golden.steps:
                res = await client.call_tool(step.tool, step.args)
                assert not res.is_error, res.content
                json.loads(res.content[0].text)
            answers = " ".join(str(a) for a in task.golden.expected_answers)
            said = await client.call_tool("talk_to_user", {"message": f"All done: it has been completed. {answers}"})
            assert not said.is_error
            end = await client.call_tool("end_episode", {})
            assert end.structured_content["reward"] == 1.0
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    ep = view.episodes[f"{task_id}/s0"]
    assert ep.reward is not None and ep.reward.reward == 1.0
    assert sum(1 for e in ep.timeline if isinstance(e, ToolExecuted) and not e.ok) == 1


# ---- streamable HTTP: many episodes, tokens -------------------------------------------

from collections.abc import AsyncIterator  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402

import httpx2 as httpx  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from scaleenv._serve.auth import Auth  # noqa: E402
from scaleenv._serve.environments import open_environments  # noqa: E402
from scaleenv._serve.limits import Limits  # noqa: E402
from scaleenv._serve.mcp import serve_mcp_http  # noqa: E402

from .conftest import OPTIONS, self_signed  # noqa: E402

TOKEN_A = "mcp-token-a-0123456789abcdef"
TOKEN_B = "mcp-token-b-0123456789abcdef"


@asynccontextmanager
async def _client(url: str, token: str | None, mode: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(60, read=120)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:  # type: ignore[arg-type]
            yield client


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # sessions (initialize handshake) and the per-request protocol
async def test_mcp_http_serves_many_episodes_each_to_its_token(run_log: Path, mode: str) -> None:
    auth = Auth.from_tokens([TOKEN_A, TOKEN_B])
    async with open_environments(str(run_log), OPTIONS, limits=Limits(max_body_bytes=64 * 1024)) as envs:
        tasks = envs.kept_tasks()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(lambda task_status: serve_mcp_http(
                envs, "127.0.0.1", 0, auth=auth, task_status=task_status))
            base = binds[0]
            with trio.fail_after(120):
                opened: dict[str, dict] = {}

                async def open_one(token: str, task_id: str) -> None:
                    async with _client(f"{base}/mcp", token, mode) as client:
                        names = [t.name for t in (await client.list_tools()).tools]
                        assert names == ["list_tasks", "open_episode"]
                        res = await client.call_tool("open_episode", {"task_id": task_id})
                        assert not res.is_error, res.content
                        opened[res.structured_content["episode_id"]] = {**res.structured_content, "token": token}

                async with trio.open_nursery() as clients:  # several episodes at once, two tokens
                    for i, tid in enumerate(tasks[:4]):
                        clients.start_soon(open_one, TOKEN_A if i % 2 == 0 else TOKEN_B, tid)
                assert len(opened) == 4 and len({o["log_episode_id"] for o in opened.values()}) == 4

                # A plays one of its episodes to reward 1 at the episode's own endpoint
                mine = next(o for o in opened.values() if o["token"] == TOKEN_A)
                task = envs.view.tasks[mine["task_id"]]
                async with _client(f"{base}{mine['mcp_path']}", TOKEN_A, mode) as client:
                    names = [t.name for t in (await client.list_tools()).tools]
                    assert "talk_to_user" in names and all(s.tool in names for s in task.golden.steps)
                    prompt = await client.get_prompt("episode")
                    assert prompt.messages[0].content.text == mine["user"]["message"]
                    deep: dict = {}
                    for _ in range(50):
                        deep = {"x": deep}
                    bad = await client.call_tool(task.golden.steps[0].tool, deep)
                    assert bad.is_error and bad.structured_content["error"]["param"] == "max_depth"
                    for step in task.golden.steps:
                        res = await client.call_tool(step.tool, step.args)
                        assert not res.is_error, res.content
                    answers = " ".join(str(a) for a in task.golden.expected_answers)
                    await client.call_tool("talk_to_user", {"message": f"All done: it has been completed. {answers}"})
                    end = await client.call_tool("end_episode", {})
                    assert end.structured_content["reward"] == 1.0

                # B's token cannot reach A's episode; no token reaches nothing
                async with httpx.AsyncClient(timeout=60) as raw:
                    for token, status in ((TOKEN_B, 404), (None, 401), ("wrong-token-0123456789abcdef", 401)):
                        headers = {"Authorization": f"Bearer {token}"} if token else {}
                        headers.update({"Accept": "application/json, text/event-stream", "Content-Type": "application/json"})
                        for path in (mine["mcp_path"], "/mcp"):
                            r = await raw.post(f"{base}{path}", headers=headers, content=json.dumps(
                                {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}))
                            if status == 404 and path == "/mcp":  # B's token is let in; only A's episode is hidden
                                assert r.status_code not in (401, 404), r.text
                            else:
                                assert r.status_code == status, r.text
                    r = await raw.post(f"{base}/mcp", headers={"Authorization": f"Bearer {TOKEN_A}"},
                                       content=b"x" * (65 * 1024))
                    assert r.status_code == 413 and r.json()["error"]["param"] == "max_body_bytes"
                with pytest.raises(Exception):
                    async with _client(f"{base}{mine['mcp_path']}", TOKEN_B, mode) as client:
                        await client.list_tools()
            nursery.cancel_scope.cancel()
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    served = {o["log_episode_id"]: view.episodes[o["log_episode_id"]] for o in opened.values()}
    assert all(ep.ended is not None for ep in served.values())  # the others were ended when the server stopped
    assert served[mine["log_episode_id"]].reward.reward == 1.0  # type: ignore[union-attr]


async def test_mcp_http_over_tls(run_log: Path, tmp_path: Path) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    async with open_environments(str(run_log), OPTIONS) as envs:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(lambda task_status: serve_mcp_http(
                envs, "127.0.0.1", 0, auth=Auth.from_tokens([TOKEN_A]), certfile=cert, keyfile=key,
                task_id=envs.kept_tasks()[0], task_status=task_status))
            assert binds[0].startswith("https://")
            verify = ssl.create_default_context(cafile=cert)
            with trio.fail_after(120):
                async with httpx.AsyncClient(verify=verify, headers={"Authorization": f"Bearer {TOKEN_A}"},
                                             timeout=60) as http:
                    async with Client(streamable_http_client(f"{binds[0]}/mcp", http_client=http)) as client:  # type: ignore[arg-type]
                        res = await client.call_tool("open_episode", {})  # --task's default
                        assert not res.is_error and res.structured_content["task_id"] == envs.kept_tasks()[0]
            nursery.cancel_scope.cancel()


async def test_mcp_http_cuts_off_slow_clients(run_log: Path) -> None:
    """Hypercorn closes a connection whose head has not arrived within --header-timeout (one
    trickling bytes too); the front middleware answers a slow body with 408 naming the limit."""
    async with open_environments(str(run_log), OPTIONS) as envs:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(lambda task_status: serve_mcp_http(
                envs, "127.0.0.1", 0, auth=Auth.from_tokens([TOKEN_A]),
                limits=Limits(header_timeout_s=1, body_timeout_s=1), task_status=task_status))
            port = int(binds[0].rsplit(":", 1)[1])
            with trio.fail_after(120):
                half_head = await trio.open_tcp_stream("127.0.0.1", port)
                await half_head.send_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                assert await half_head.receive_some(1000) == b""  # closed, unanswered
                await half_head.aclose()

                half_body = await trio.open_tcp_stream("127.0.0.1", port)
                await half_body.send_all(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN_A}\r\n"
                                         "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"js".encode())
                answer = b""
                while b"body_timeout_s" not in answer:
                    chunk = await half_body.receive_some(4096)
                    assert chunk, answer
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 408")
                await half_body.aclose()
            nursery.cancel_scope.cancel()
