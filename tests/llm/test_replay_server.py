"""``scaleenv sim-server --replay LOG``: recorded answers, served as the live sim server serves them.

The proof that the answers are the right ones: a run through ``--llm openai:`` against the
replay server (a real process on a local socket, replaying an in-process sim run of the
same seed) has the run digest of the same run against the live ``scaleenv sim-server``,
and the events of the in-process run apart from the fields naming the backend and the
shape answers travel in (tests/llm/test_run_over_http.py shows the live server's run
equals the in-process one the same way). Through ``--llm vllm:`` (no strict shape) the
events are the in-process run's apart from the naming fields alone.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from scaleenv._agents.llm.errors import BackendError
from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import LlmRequest, render_messages, schema_for
from scaleenv._agents.llm.recorded import read_calls
from scaleenv._agents.sim import LatencyModel
from scaleenv._cli import main
from scaleenv._serve.auth import Auth
from scaleenv._serve.replay_http import ReplayAnswers, ReplayServer
from scaleenv._store.events.llm import LlmCalled
from scaleenv._store.log import Log
from scaleenv._store.record import run_digest, stream_digests

from .sim_server_process import sim_server_process
from .structs import Plan
from .test_run_over_http import _events  # a log's events by stream, calls without naming/shape fields

RUN = ["--seed", "5", "--domains", "1", "--tasks-per-domain", "2", "--episodes-per-task", "3", "--noise", "0.2",
       "--no-sync", "--quiet"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "local.lmdb"
    assert main(["run", "--log", str(path), *RUN]) == 0
    return path


def _run_digest(path: Path) -> str:
    with Log.open(path, readonly=True) as log:
        return run_digest(stream_digests(log.read()))


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/replay/stats") as r:  # noqa: S310 - loopback
        return json.loads(r.read())


def test_a_run_through_the_replay_server_is_the_run_through_the_live_sim_server(recorded: Path,
                                                                                  tmp_path: Path) -> None:
    replayed, live = tmp_path / "replayed.lmdb", tmp_path / "live.lmdb"
    with sim_server_process("--replay", str(recorded), "--latency", "--latency-median", "0.01") as url:
        assert main(["run", "--log", str(replayed), *RUN, "--llm", f"openai:{url}", "--model", "scaleenv-sim-1"]) == 0
        stats = _stats(url)
    with sim_server_process("--noise", "0.2") as url:
        assert main(["run", "--log", str(live), *RUN, "--llm", f"openai:{url}", "--model", "scaleenv-sim-1"]) == 0
    assert _run_digest(replayed) == _run_digest(live)
    # ... and the in-process run's events, but for the backend's name and the answers' strict shape
    local, there = _events(recorded), _events(replayed)
    assert local == there
    calls = [e for rows in local.values() for _, _, _, e in rows if e.get("type") == "llm.called"]
    assert stats["served"] == len(calls) > 20 and stats["missed"] == 0 and stats["mean_latency_s"] > 0
    assert any(c["error"] for c in calls) and any(c["role"] == "policy" for c in calls)  # retries and tool calls


def test_through_vllm_structured_outputs_the_answers_are_the_recorded_text(recorded: Path, tmp_path: Path) -> None:
    replayed = tmp_path / "vllm.lmdb"
    with sim_server_process("--replay", str(recorded)) as url:
        assert main(["run", "--log", str(replayed), *RUN, "--llm", f"vllm:{url}", "--model", "scaleenv-sim-1"]) == 0
    here, there = _events(recorded), _events(replayed)
    assert here == there
    with Log.open(recorded, readonly=True) as a, Log.open(replayed, readonly=True) as b:
        local = {(r.stream, r.n): (r.event.raw, r.event.answer_shape) for r in a.read() if isinstance(r.event, LlmCalled)}
        remote = {(r.stream, r.n): (r.event.raw, r.event.answer_shape) for r in b.read() if isinstance(r.event, LlmCalled)}
    assert local == remote


async def test_a_request_the_log_never_made_is_a_404_the_client_does_not_retry(recorded: Path) -> None:
    with sim_server_process("--replay", str(recorded)) as url:
        backend = OpenAIBackend(base_url=url, model="scaleenv-sim-1")
        schema, name = schema_for(Plan)
        req = LlmRequest(role="test/x", messages=render_messages("i", {"a": 1}, "t"), context={"a": 1}, seed=12345)
        with pytest.raises(BackendError) as caught:
            await backend.complete(req, schema, name)
        await backend.aclose()
        stats = await trio.to_thread.run_sync(_stats, url)
    assert caught.value.status == 404 and caught.value.attempts == 1
    assert "no recorded answer for seed 12345" in str(caught.value) and str(recorded) in str(caught.value)
    assert stats["missed"] == 1 and stats["served"] == 0


def _request(body: dict[str, Any], path: bytes = b"/v1/chat/completions", method: bytes = b"POST",
             headers: bytes = b"") -> tuple[bytes, bytes, bytes]:
    head = b"%s %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json%s" % (method, path, headers)
    return head, head.lower(), msgspec.json.encode(body)


def _status(response: bytes) -> int:
    return int(response[9:12])


def _body(response: bytes) -> Any:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


@pytest.fixture(scope="module")
def table(recorded: Path) -> ReplayAnswers:
    return ReplayAnswers.of(read_calls(recorded), latency=LatencyModel(enabled=True, base_s=1.0, per_token_s=0.0,
                                                                        sigma=0.75))


def test_the_answer_is_found_by_the_request_seed_alone(table: ReplayAnswers) -> None:
    srv = ReplayServer(table)
    seed = next(iter(table.answers))
    # the seed after a schema with a property called "seed" and messages that mention it
    body = {"model": "m", "messages": [{"role": "user", "content": '{"seed":1}'}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "default", "schema": {
                "type": "object", "properties": {"seed": {"type": "integer", "default": 7}}}}},
            "seed": seed, "temperature": 1.0}
    response, delay = srv.respond(*_request(body))
    assert _status(response) == 200 and response == table.answers[seed].plain
    assert delay == table.answers[seed].latency_s > 0
    assert _body(response)["choices"][0]["message"]["role"] == "assistant"
    # offered tools come after the seed, and may hold integer "seed" members of their own
    tools = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "object", "default": {"seed": 99}}}}}}]
    response, _ = srv.respond(*_request({"model": "m", "messages": [], "seed": seed, "tools": tools}))
    assert response == table.answers[seed].plain
    assert srv.stats()["served"] == 2


def test_a_schema_with_strict_marks_gets_the_strict_shape(table: ReplayAnswers) -> None:
    srv = ReplayServer(table)
    seed, answer = next((s, a) for s, a in table.answers.items() if a.strict is not None)
    marked = {"type": "object", "properties": {"x": {"anyOf": [{"type": "string"}, {"type": "null"}],
                                                      "description": "[optional] the x"}}}
    plain = {"type": "object", "properties": {"x": {"type": "string", "description": "[a bracket] the x"}}}
    for schema, expected in ((marked, answer.strict), (plain, answer.plain)):
        body = {"messages": [], "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
                "seed": seed}
        assert srv.respond(*_request(body))[0] == expected
    assert answer.strict != answer.plain


def test_requests_it_cannot_answer_get_clear_errors(table: ReplayAnswers) -> None:
    srv = ReplayServer(table)
    seed = next(iter(table.answers))
    cases = [
        (_request({"messages": [], "seed": seed, "stream": True}), 400, "does not stream"),
        (_request({"messages": [], "seed": seed, "n": 2}), 400, "n=1 only"),
        (_request({"messages": []}), 404, "no integer seed"),
        (_request({"messages": [], "seed": "12"}), 404, "no integer seed"),
        (_request({}, method=b"GET"), 405, "use POST"),
        (_request({}, path=b"/v2/other", method=b"GET"), 404, "no route GET /v2/other"),
    ]
    for request, status, words in cases:
        response, delay = srv.respond(*request)
        assert (_status(response), delay) == (status, 0.0), words
        assert words in _body(response)["error"]["message"]
    models, _ = srv.respond(*_request({}, path=b"/v1/models", method=b"GET"))
    assert _body(models)["data"][0]["id"] == table.model


def test_a_token_is_required_when_one_is_set(table: ReplayAnswers) -> None:
    token = "t0ken-for-the-replay-server-0123456789"
    srv = ReplayServer(table, auth=Auth.from_tokens([token]))
    seed = next(iter(table.answers))
    body = {"messages": [{"role": "user", "content": "x"}], "seed": seed}
    refused, _ = srv.respond(*_request(body, headers=b"\r\nAuthorization: Bearer wrong-token-0123456789abcdef"))
    assert _status(refused) == 401
    granted, _ = srv.respond(*_request(body, headers=f"\r\nAuthorization: Bearer {token}".encode()))
    assert _status(granted) == 200


def test_two_different_answers_for_one_seed_are_refused_by_name(recorded: Path) -> None:
    calls = read_calls(recorded)
    twin = msgspec.structs.replace(calls[1], seed=calls[0].seed, raw=calls[0].raw + " ")
    table = ReplayAnswers.of([calls[0], twin, *calls[2:]])
    response, _ = ReplayServer(table).respond(*_request({"messages": [], "seed": calls[0].seed}))
    assert _status(response) == 404 and "2 different answers" in _body(response)["error"]["message"]


@pytest.mark.parametrize("args, words", [
    (["--replay", "/nonexistent/log"], "no log there"),
    (["--replay", "LOG", "--noise", "0.1"], "--noise does not apply to --replay"),
    (["--replay", "LOG", "--unconstrained"], "--unconstrained does not apply to --replay"),
])
def test_bad_replay_options_are_usage_errors(recorded: Path, args: list[str], words: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(recorded) if a == "LOG" else a for a in args]
    assert main(["sim-server", "--port", "0", *args]) == 2
    assert words in capsys.readouterr().err


def test_a_log_without_model_calls_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.lmdb"
    with Log.open(empty, sync=False):
        pass
    assert main(["sim-server", "--port", "0", "--replay", str(empty)]) == 2
    assert "records no model calls" in capsys.readouterr().err


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """One response (status, body) read off ``sock``; ``buf`` keeps what follows it."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        buf += data
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    if status == 100:
        del buf[:end + 4]
        return 100, b""
    at = head.index(b"content-length:") + 15
    size = int(head[at:head.find(b"\r\n", at) if b"\r\n" in head[at:] else len(head)])
    while len(buf) < end + 4 + size:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        buf += data
    body = bytes(buf[end + 4:end + 4 + size])
    del buf[:end + 4 + size]
    return status, body


def _choices(body: bytes) -> Any:
    reply = json.loads(body)
    return reply["id"], reply["choices"]  # not "created": the time it was encoded


def _post(body: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n%s\r\n%s" % (len(body), extra, body))


def test_on_a_socket_pipelined_answers_keep_their_order_and_limits_hold(recorded: Path, table: ReplayAnswers) -> None:
    seeds = sorted(table.answers, key=lambda s: table.answers[s].latency_s)
    slow, fast = seeds[-1], seeds[0]  # the first request sleeps longest: its answer must still come first
    with sim_server_process("--replay", str(recorded), "--latency", "--latency-median", "0.02", "--max-body-bytes", "5000") as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            buf = bytearray()
            sock.sendall(_post(b'{"seed":%d}' % slow) + _post(b'{"seed":%d}' % fast))
            first, second = _read_response(sock, buf), _read_response(sock, buf)
            assert (first[0], second[0]) == (200, 200)
            assert _choices(first[1]) == _choices(table.answers[slow].plain.split(b"\r\n\r\n", 1)[1])
            assert _choices(second[1]) == _choices(table.answers[fast].plain.split(b"\r\n\r\n", 1)[1])
            # curl's Expect: 100-continue, then the body
            body = b'{"seed":%d}' % fast
            request = _post(body, b"Expect: 100-continue")
            sock.sendall(request[:-len(body)])
            assert _read_response(sock, buf)[0] == 100
            sock.sendall(body)
            assert _read_response(sock, buf) == second
            # over --max-body-bytes: refused before the body is read, and the connection closed
            sock.sendall(_post(b"x" * 6000))
            status, error = _read_response(sock, buf)
            assert status == 413 and "--max-body-bytes" in json.loads(error)["error"]["message"]
            assert sock.recv(1) == b""
