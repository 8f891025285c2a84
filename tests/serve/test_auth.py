"""Who may use the network front ends (issue 24), over real sockets.

``scaleenv serve`` with two tokens: no token and a wrong token get 401 and leave no trace
in the log or the server's output; one token's episode is a 404 for the other, exactly
like an id that never existed; ids carry an unguessable part. The comparison of tokens
looks at every configured token every time, on digests of one length. Binding a network
address without a token is refused by every server command; ``--insecure`` starts with
a warning. sim-server takes the token as the OpenAI API key. TLS is served directly.
"""

from __future__ import annotations

import hmac
import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import trio

from scaleenv._agents.llm.errors import BackendError
from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import LlmRequest, render_messages, schema_for
from scaleenv._cli import main as cli_main
from scaleenv._serve.auth import Auth, BindRefused, check_bind, is_loopback, seal, tls_context, unseal
from scaleenv._serve.environments import open_environments
from scaleenv._serve.http import serve_environments
from scaleenv._serve.sim_http import serve_sim
from scaleenv._store.log import Log
from tests.llm.structs import Plan

from .conftest import OPTIONS, self_signed

TOKEN_A = "trainer-a-0123456789abcdefghij"
TOKEN_B = "trainer-b-0123456789abcdefghij"
START_LIMIT_S = 120.0  # a bound on a hang, not a timing assertion


def _count_records(event_log: Log) -> int:
    return sum(1 for _ in event_log.read())


def test_every_token_is_compared_every_time_on_equal_length_digests() -> None:
    calls: list[tuple[int, int]] = []

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return hmac.compare_digest(a, b)

    tokens = [f"token-{i}-0123456789abcdef" for i in range(5)]
    auth = Auth.from_tokens(tokens, compare=counting)
    for header, expected in [(f"Bearer {tokens[0]}", 0), (f"Bearer {tokens[4]}", 4), ("Bearer wrong", None),
                             (f"Bearer {tokens[2][:-1]}", None), (None, None), ("Basic abc", None), ("Bearer ", None)]:
        calls.clear()
        who = auth.authenticate(header)
        assert (who is None) == (expected is None), header
        if expected is not None:
            assert who == auth.principals[expected]
        # no early exit: all five compared, whether the first, the last or none matched
        assert calls == [(32, 32)] * 5, (header, calls)
    assert Auth().authenticate(None) is not None  # no tokens configured: anyone, as the anonymous principal
    with pytest.raises(ValueError, match="token #2 must be at least 16 printable ASCII"):
        Auth.from_tokens([tokens[0], "short"])
    with pytest.raises(ValueError, match="token #1"):
        Auth.from_tokens(["with a space 0123456789"])


def test_capabilities_name_only_their_principal() -> None:
    a = Auth.from_tokens([TOKEN_A, TOKEN_B])
    pa, pb = a.principals
    handle = seal(pa, "d00/t001/s0")
    assert handle.startswith("d00/t001/s0-") and len(handle) == len("d00/t001/s0-") + 26
    assert unseal(pa, handle) == "d00/t001/s0"
    assert unseal(pb, handle) is None and unseal(pa, "d00/t001/s0") is None and unseal(pa, handle[:-1] + "x") is None
    # the same token after a restart derives the same capability; the anonymous key is per process
    assert unseal(Auth.from_tokens([TOKEN_A]).principals[0], handle) == "d00/t001/s0"
    assert seal(Auth().anonymous, "x") != seal(Auth().anonymous, "x")


def test_bind_rule() -> None:
    none, some = Auth(), Auth.from_tokens([TOKEN_A])
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.1.2.3"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.org"))
    assert check_bind("127.0.0.1", none) is None and check_bind("0.0.0.0", some) is None
    with pytest.raises(BindRefused, match="SCALEENV_TOKEN"):
        check_bind("0.0.0.0", none)
    warning = check_bind("0.0.0.0", none, insecure=True)
    assert warning is not None and "--insecure" in warning


async def test_serve_lets_in_only_tokens_and_keeps_episodes_to_their_token(run_log: Path, capfd: Any) -> None:
    auth = Auth.from_tokens([TOKEN_A, TOKEN_B])
    async with open_environments(str(run_log), OPTIONS) as envs:
        task_id = envs.kept_tasks()[0]
        async with trio.open_nursery() as nursery:
            port = await nursery.start(lambda task_status: serve_environments(
                envs, "127.0.0.1", 0, auth=auth, task_status=task_status))
            base = f"http://127.0.0.1:{port}"
            capfd.readouterr()
            before = _count_records(envs.ctx.log)
            async with httpx.AsyncClient(base_url=base, timeout=60) as anon:
                for headers in ({}, {"Authorization": "Bearer not-a-token-at-all-xx"}, {"Authorization": TOKEN_A},
                                {"Authorization": f"Basic {TOKEN_A}"}):
                    for method, path, body in (("GET", "/v1/tasks", None), ("POST", "/v1/episodes", {"task_id": task_id}),
                                               ("POST", f"/v1/episodes/{task_id}/s0/end", None)):
                        r = await anon.request(method, path, headers=headers, json=body)
                        assert r.status_code == 401, (headers, path, r.text)
                        assert r.headers["www-authenticate"].startswith("Bearer")
                        assert r.json()["error"]["type"] == "authentication_error"
                r = await anon.get("/openapi.json")  # the API's description is public
                assert r.status_code == 200 and r.json()["openapi"].startswith("3.1")
            # 401s are recorded nowhere: no event, no output
            assert _count_records(envs.ctx.log) == before
            out, err = capfd.readouterr()
            assert "not-a-token" not in out + err and "401" not in out + err and TOKEN_A not in out + err

            async with httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {TOKEN_A}"}) as a, \
                    httpx.AsyncClient(base_url=base, timeout=60, headers={"Authorization": f"Bearer {TOKEN_B}"}) as b:
                r = await a.post("/v1/episodes", json={"task_id": task_id})
                assert r.status_code == 200, r.text
                eid, log_id = r.json()["episode_id"], r.json()["log_episode_id"]
                assert eid.startswith(log_id + "-") and log_id.startswith(task_id + "/s")
                r = await b.post("/v1/episodes", json={"task_id": task_id})
                eid_b = r.json()["episode_id"]
                assert (await a.get("/v1/health")).json()["open_episodes"] == 1
                absent = f"{task_id}/s99-{eid.rsplit('-', 1)[1]}"
                for path, body in ((f"/v1/episodes/{eid}", None), (f"/v1/episodes/{eid}/step", {"content": "hi"}),
                                   (f"/v1/episodes/{eid}/tool", {"name": "x"}), (f"/v1/episodes/{eid}/message", {"content": "hi"}),
                                   (f"/v1/episodes/{eid}/end", None)):
                    method = "GET" if body is None and not path.endswith("/end") else "POST"
                    theirs = await b.request(method, path, json=body)
                    ghost = await b.request(method, path.replace(eid, absent), json=body)
                    assert theirs.status_code == ghost.status_code == 404, theirs.text
                    # as if absent: the same answer, apart from the id it echoes
                    assert theirs.json()["error"]["type"] == ghost.json()["error"]["type"] == "not_found_error"
                    assert theirs.text.replace(eid, "<id>") == ghost.text.replace(absent, "<id>")
                for guess in (log_id, f"{log_id}-{'a' * 26}", eid[:-1] + ("a" if eid[-1] != "a" else "b")):
                    assert (await a.get(f"/v1/episodes/{guess}")).status_code == 404
                r = await a.get(f"/v1/episodes/{eid}")
                assert r.status_code == 200 and not r.json()["ended"]  # B's attempts changed nothing
                assert (await a.get(f"/v1/episodes/{eid_b}")).status_code == 404
                r = await a.post(f"/v1/episodes/{eid}/end")
                assert r.status_code == 200 and r.json()["episode_id"] == eid and r.json()["log_episode_id"] == log_id
                assert (await b.post(f"/v1/episodes/{eid_b}/end")).status_code == 200
            nursery.cancel_scope.cancel()
    with Log.open(str(run_log), readonly=True) as event_log:
        assert [r.stream for r in event_log.read_stream(f"episode/{log_id}")]  # the log knows it by its plain id


async def test_tls_served_directly_with_tokens(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    auth = Auth.from_tokens([TOKEN_A])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_sim(
            "127.0.0.1", 0, auth=auth, ssl_context=tls_context(cert, key), task_status=task_status))
        url = f"https://127.0.0.1:{port}/v1"
        verify = ssl.create_default_context(cafile=cert)
        async with httpx.AsyncClient(verify=verify, timeout=60) as c:
            r = await c.get(f"{url}/models", headers={"Authorization": f"Bearer {TOKEN_A}"})
            assert r.status_code == 200 and r.json()["data"]
            assert (await c.get(f"{url}/models")).status_code == 401
        async with httpx.AsyncClient(timeout=60) as plain:  # plain HTTP to the TLS port: refused, server unharmed
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{port}/v1/models")
        async with httpx.AsyncClient(verify=verify, timeout=60) as c:
            r = await c.get(f"{url}/models", headers={"Authorization": f"Bearer {TOKEN_A}"})
            assert r.status_code == 200
        nursery.cancel_scope.cancel()


async def test_sim_server_takes_the_token_as_the_openai_api_key() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_sim(
            "127.0.0.1", 0, auth=Auth.from_tokens([TOKEN_A, TOKEN_B]), task_status=task_status))
        schema, name = schema_for(Plan)
        req = LlmRequest(role="test/x", messages=render_messages("i", {"a": 1}, "t"), context={"a": 1}, seed=3)
        for api_key, ok in ((TOKEN_B, True), ("wrong-key-0123456789", False), (None, False)):
            # the real openai client code, as `scaleenv run --llm openai:URL` uses it
            backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", model="scaleenv-sim-1",
                                    api_key=api_key or "", retries=0)
            try:
                if ok:
                    assert (await backend.complete(req, schema, name)).text
                else:
                    with pytest.raises(BackendError, match="missing or invalid bearer token"):
                        await backend.complete(req, schema, name)
            finally:
                await backend.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("argv", [
    ["serve"], ["serve-mcp", "--transport", "http"], ["sim-server"], ["ui"],
])
def test_network_bind_without_token_is_refused(argv: list[str], tmp_path: Path, capsys: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCALEENV_TOKEN", raising=False)
    code = cli_main([*argv, "--host", "0.0.0.0", "--port", "0", "--log", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "refusing to serve" in err and "SCALEENV_TOKEN" in err and "--insecure" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "none").exists()


def test_insecure_starts_with_a_warning_every_time() -> None:
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-m", "scaleenv", "sim-server", "--host", "0.0.0.0", "--port", "0",
                                 "--insecure"], stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            lines = [proc.stderr.readline(), proc.stderr.readline()]
        finally:
            proc.terminate()
            proc.wait(timeout=START_LIMIT_S)
            assert proc.stderr is not None
            proc.stderr.close()
        assert "WARNING" in lines[0] and "without a token" in lines[0], lines
        assert "serving" in lines[1], lines


def test_serve_json_line_says_auth_and_tls(run_log: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "scaleenv", "serve", "--log", str(run_log), "--port", "0", "--json",
                             "--no-sync", "--sandbox-workers", "1", "--token", TOKEN_A, "--tls-cert", cert,
                             "--tls-key", key], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["auth"] is True and line["tls"] is True and line["url"].startswith("https://")
        verify = ssl.create_default_context(cafile=cert)
        with httpx.Client(base_url=line["url"].removesuffix("/v1"), verify=verify, timeout=START_LIMIT_S,
                          headers={"Authorization": f"Bearer {TOKEN_A}"}) as c:
            assert c.get("/v1/tasks").json()["tasks"]
    finally:
        proc.terminate()
        proc.wait(timeout=START_LIMIT_S)
        assert proc.stdout is not None
        proc.stdout.close()
