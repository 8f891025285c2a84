"""What one request may cost ``scaleenv serve`` (issue 21), over real sockets.

Each limit is answered with a 4xx that names it, nothing over a limit reaches the log,
client input is echoed only clipped, and slow or idle clients (300 half-sent requests, a
client trickling its headers, one sending its body too slowly) are cut off while the
server keeps serving everyone else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2 as httpx
import trio

from scaleenv.serve.environments import open_environments
from scaleenv.serve.http import serve_environments
from scaleenv.serve.limits import Limits

from .conftest import OPTIONS

HANG_LIMIT_S = 120.0  # a bound on a hang, not a timing assertion


async def _response(stream: trio.SocketStream) -> tuple[int, dict[str, Any] | None]:
    """Read one response (or EOF: status 0) from a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return 0, None
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = next(int(v) for k, _, v in (ln.partition(": ") for ln in lines[1:]) if k.lower() == "content-length")
    while len(body) < length:
        body += await stream.receive_some(65536)
    return int(lines[0].split()[1]), json.loads(body[:length])


def _stream_events(envs: Any, log_id: str) -> int:
    return sum(1 for _ in envs.ctx.log.read_stream(f"episode/{log_id}"))


async def test_bad_and_oversized_requests_get_4xx_naming_the_limit(run_log: Path) -> None:
    limits = Limits(max_body_bytes=256 * 1024, max_depth=16)
    async with open_environments(str(run_log), OPTIONS, limits=limits) as envs:
        task_id = envs.kept_tasks()[0]
        tool = envs.view.tasks[task_id].golden.steps[0].tool
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_environments, envs, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                opened = (await c.post("/v1/episodes", json={"task_id": task_id})).json()
                eid, log_id = opened["episode_id"], opened["log_episode_id"]
                size_before = _stream_events(envs, log_id)

                r = await c.post(f"/v1/episodes/{eid}/message", content=b'{"content": "caf\xe9 \xff\xfe"}')
                assert r.status_code == 400 and "UTF-8" in r.json()["error"]["message"], r.text
                deep = b'{"name": "' + tool.encode() + b'", "arguments": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
                r = await c.post(f"/v1/episodes/{eid}/tool", content=deep)
                assert r.status_code == 400 and r.json()["error"]["param"] == "max_depth", r.text
                text = '{"a": ' * 5000 + "1" + "}" * 5000  # the same, as an arguments string
                r = await c.post(f"/v1/episodes/{eid}/tool", json={"name": tool, "arguments": text})
                assert r.status_code == 400 and r.json()["error"]["param"] == "max_depth", r.text
                nested: Any = 1
                for _ in range(17):  # one level past max_depth, well within what the parsers can do
                    nested = {"a": nested}
                r = await c.post(f"/v1/episodes/{eid}/step", json={"tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": tool, "arguments": nested}}]})
                assert r.status_code == 400 and r.json()["error"]["param"] == "max_depth", r.text
                r = await c.post(f"/v1/episodes/{eid}/tool", json={"name": tool, "arguments": {"a": "x" * 100_000}})
                assert r.status_code == 413 and r.json()["error"]["param"] == "max_argument_bytes", r.text
                r = await c.post(f"/v1/episodes/{eid}/tool", json={"name": "t" * 10_000, "arguments": {}})
                assert r.status_code == 400 and r.json()["error"]["param"] == "max_name_chars", r.text
                huge_task = "d00/" + "t" * 200_000
                r = await c.post("/v1/episodes", json={"task_id": huge_task})
                assert r.status_code == 404 and len(r.content) < 2000 and "200006 characters" in r.text, r.text[:300]
                r = await c.get(f"/v1/tasks/{'x' * 8000}")
                assert r.status_code == 404 and len(r.content) < 2000
                r = await c.get("/v1/" + "y" * 20_000)  # past max_header_bytes
                assert r.status_code == 431 and r.json()["error"]["param"] == "max_header_bytes", r.text
                # none of it reached the log, and the episode is untouched
                assert _stream_events(envs, log_id) == size_before
                r = await c.get(f"/v1/episodes/{eid}")
                assert r.status_code == 200 and not r.json()["ended"] and r.json()["tool_calls"] == 0

            # a 50 MB body is refused from its Content-Length, before it is read
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(
                    f"POST /v1/episodes/{eid}/tool HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {50 << 20}\r\n\r\n".encode() + b'{"name": "x", "arguments": {"a": "' + b"x" * 65536)
                status, body = await _response(stream)
                assert status == 413 and body is not None and body["error"]["param"] == "max_body_bytes"
            # chunked, with no length declared: cut off at the limit
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(f"POST /v1/episodes/{eid}/message HTTP/1.1\r\nHost: x\r\n"
                                      "Transfer-Encoding: chunked\r\n\r\n".encode())
                chunk = b"x" * 65536
                status = 0
                with trio.fail_after(HANG_LIMIT_S):
                    try:
                        for _ in range(8):
                            await stream.send_all(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    except trio.BrokenResourceError:
                        pass
                    status, body = await _response(stream)
                assert status == 413 and body is not None and body["error"]["param"] == "max_body_bytes"
            assert _stream_events(envs, log_id) == size_before
            nursery.cancel_scope.cancel()


async def _hold(port: int, kind: str, held: trio.Semaphore, outcomes: dict[str, list[int]]) -> None:
    """One slow client of ``kind``; records the status it finally got (0: closed unanswered)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        if kind == "half_head":
            await stream.send_all(b"POST /v1/episodes HTTP/1.1\r\nHost: x\r\nContent-Type: app")
        elif kind == "half_body":
            await stream.send_all(b"POST /v1/episodes HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"task")
        held.release()
        if kind == "trickle":  # keeps sending, one header byte at a time, never finishing
            async with trio.open_nursery() as inner:
                async def drip() -> None:
                    for byte in b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000:
                        await stream.send_all(bytes([byte]))
                        await trio.sleep(0.2)
                inner.start_soon(drip)
                status, _ = await _response(stream)
                inner.cancel_scope.cancel()
        else:
            status, _ = await _response(stream)
        outcomes[kind].append(status)


KINDS = ["half_head"] * 150 + ["half_body"] * 150 + ["idle"] * 20 + ["trickle"]


async def test_slow_and_idle_clients_do_not_stop_the_server_serving(run_log: Path) -> None:
    """321 held connections (timeouts far away): a whole episode is still served meanwhile."""
    async with open_environments(str(run_log), OPTIONS) as envs:
        task_id = envs.kept_tasks()[0]
        async with trio.open_nursery() as nursery:
            port = await nursery.start(lambda task_status: serve_environments(
                envs, "127.0.0.1", 0, limits=Limits(header_timeout_s=600, body_timeout_s=600), task_status=task_status))
            outcomes: dict[str, list[int]] = {k: [] for k in set(KINDS)}
            held = trio.Semaphore(0)
            with trio.fail_after(HANG_LIMIT_S):
                async with trio.open_nursery() as clients:
                    for kind in KINDS:
                        clients.start_soon(_hold, port, kind, held, outcomes)
                    for _ in KINDS:
                        await held.acquire()
                    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                        assert (await c.get("/v1/tasks")).status_code == 200
                        r = await c.post("/v1/episodes", json={"task_id": task_id})
                        assert r.status_code == 200, r.text
                        eid = r.json()["episode_id"]
                        r = await c.post(f"/v1/episodes/{eid}/message", json={"content": "Hello, how can I help?"})
                        assert r.status_code == 200, r.text
                        assert (await c.post(f"/v1/episodes/{eid}/end")).status_code == 200
                    assert not any(outcomes.values())  # every slow client is still held
                    clients.cancel_scope.cancel()
            nursery.cancel_scope.cancel()


async def test_slow_and_idle_clients_are_cut_off(run_log: Path) -> None:
    """The same 321 against short timeouts: each half-sent request gets 408 naming its
    timeout (the trickling one too, though it never stops sending); idle ones are closed."""
    async with open_environments(str(run_log), OPTIONS) as envs:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(lambda task_status: serve_environments(
                envs, "127.0.0.1", 0, limits=Limits(header_timeout_s=2, body_timeout_s=2), task_status=task_status))
            outcomes: dict[str, list[int]] = {k: [] for k in set(KINDS)}
            held = trio.Semaphore(0)
            with trio.fail_after(HANG_LIMIT_S):
                async with trio.open_nursery() as clients:
                    for kind in KINDS:
                        clients.start_soon(_hold, port, kind, held, outcomes)
            assert outcomes["half_head"] == [408] * 150
            assert outcomes["half_body"] == [408] * 150
            assert outcomes["idle"] == [0] * 20  # an idle connection is closed without an answer
            assert outcomes["trickle"] == [408]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
                assert (await c.get("/v1/tasks")).status_code == 200
            nursery.cancel_scope.cancel()
