"""What one request may cost ``scaleenv serve`` (issue 21), over real sockets.

Each limit is answered with a 4xx that names it, nothing over a limit reaches the log,
client input is echoed only clipped, and slow or idle clients (300 half-sent requests, a
client trickling its headers, one sending its body too slowly) are cut off while the
server keeps serving everyone else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx2 as httpx
import pytest
import trio

from scaleenv._serve.environments import open_environments
from scaleenv._serve.http import serve_environments
from scaleenv._serve.limits import Limits

from tests.conftest import copy_log

from .conftest import OPTIONS
from .served import Served, serving

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


# ------------------------------------------------------------------ one test per limit
# All against one server process for the module (``limited``), each on its own episode;
# after each, the episode's stream in the log is what it was (nothing over a limit reached
# it) and the episode is untouched.

LIMIT_OPTIONS = ("--max-body-bytes", str(256 * 1024), "--max-depth", "16")


@pytest.fixture(scope="module")
def limited(base_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(copy_log(base_run, tmp_path_factory.mktemp("limits") / "log"), *LIMIT_OPTIONS) as srv:
        yield srv


@attrs.frozen
class Opened:
    eid: str
    log_id: str
    events: int


@pytest.fixture
def episode(limited: Served) -> Iterator[Opened]:
    """An open episode; afterwards its stream must not have grown and it must not have ended."""
    with httpx.Client(base_url=limited.url, timeout=120) as c:
        r = c.post("/v1/episodes", json={"task_id": limited.task_id})
        assert r.status_code == 200, r.text
        opened = Opened(r.json()["episode_id"], r.json()["log_episode_id"], 0)
        opened = attrs.evolve(opened, events=limited.stream_events(opened.log_id))
        yield opened
        assert limited.stream_events(opened.log_id) == opened.events
        r = c.get(f"/v1/episodes/{opened.eid}")
        assert r.status_code == 200 and not r.json()["ended"] and r.json()["tool_calls"] == 0, r.text


def _nested(levels: int) -> Any:
    nested: Any = 1
    for _ in range(levels):
        nested = {"a": nested}
    return nested


def _deep_text(tool: str) -> bytes:
    return b'{"name": "' + tool.encode() + b'", "arguments": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"


REQUESTS: dict[str, tuple[Any, int, Any]] = {  # (client, server, episode) -> response; status; what it must say
    "body not UTF-8": (
        lambda c, s, e: c.post(f"/v1/episodes/{e.eid}/message", content=b'{"content": "caf\xe9 \xff\xfe"}'),
        400, lambda r: "UTF-8" in r.json()["error"]["message"]),
    "arguments nested 5000 deep": (
        lambda c, s, e: c.post(f"/v1/episodes/{e.eid}/tool", content=_deep_text(s.tool)),
        400, lambda r: r.json()["error"]["param"] == "max_depth"),
    "arguments string nested 5000 deep": (
        lambda c, s, e: c.post(f"/v1/episodes/{e.eid}/tool",
                               json={"name": s.tool, "arguments": '{"a": ' * 5000 + "1" + "}" * 5000}),
        400, lambda r: r.json()["error"]["param"] == "max_depth"),
    "step arguments one level past max_depth": (
        lambda c, s, e: c.post(f"/v1/episodes/{e.eid}/step", json={"tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": s.tool, "arguments": _nested(17)}}]}),
        400, lambda r: r.json()["error"]["param"] == "max_depth"),
    "arguments over max_argument_bytes": (
        lambda c, s, e: c.post(f"/v1/episodes/{e.eid}/tool", json={"name": s.tool, "arguments": {"a": "x" * 100_000}}),
        413, lambda r: r.json()["error"]["param"] == "max_argument_bytes"),
    "tool name over max_name_chars": (
        lambda c, s, e: c.post(f"/v1/episodes/{e.eid}/tool", json={"name": "t" * 10_000, "arguments": {}}),
        400, lambda r: r.json()["error"]["param"] == "max_name_chars"),
    "a 200,000-character task id is echoed clipped": (
        lambda c, s, e: c.post("/v1/episodes", json={"task_id": "d00/" + "t" * 200_000}),
        404, lambda r: len(r.content) < 2000 and "200006 characters" in r.text),
    "an 8,000-character task in the path is echoed clipped": (
        lambda c, s, e: c.get(f"/v1/tasks/{'x' * 8000}"), 404, lambda r: len(r.content) < 2000),
    "a request line past max_header_bytes": (
        lambda c, s, e: c.get("/v1/" + "y" * 20_000), 431, lambda r: r.json()["error"]["param"] == "max_header_bytes"),
}


@pytest.mark.parametrize("what", list(REQUESTS))
def test_a_request_over_a_limit_gets_a_4xx_naming_it(what: str, limited: Served, episode: Opened) -> None:
    request, status, says = REQUESTS[what]
    with httpx.Client(base_url=limited.url, timeout=120) as c:
        r = request(c, limited, episode)
    assert r.status_code == status, r.text[:500]
    assert says(r), r.text[:500]


async def test_a_50_mb_body_is_refused_from_its_content_length(limited: Served, episode: Opened) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", limited.port)
    async with stream:
        await stream.send_all(
            f"POST /v1/episodes/{episode.eid}/tool HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {50 << 20}\r\n\r\n".encode() + b'{"name": "x", "arguments": {"a": "' + b"x" * 65536)
        with trio.fail_after(HANG_LIMIT_S):
            status, body = await _response(stream)
    assert status == 413 and body is not None and body["error"]["param"] == "max_body_bytes"


async def test_a_chunked_body_with_no_length_is_cut_off_at_the_limit(limited: Served, episode: Opened) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", limited.port)
    async with stream:
        await stream.send_all(f"POST /v1/episodes/{episode.eid}/message HTTP/1.1\r\nHost: x\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 65536
        with trio.fail_after(HANG_LIMIT_S):
            try:
                for _ in range(8):
                    await stream.send_all(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except trio.BrokenResourceError:
                pass
            status, body = await _response(stream)
    assert status == 413 and body is not None and body["error"]["param"] == "max_body_bytes"


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
