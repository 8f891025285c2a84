"""The OpenEnv server (openenv-core's FastAPI app) driven by openenv-core's own WebSocket client."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytest.importorskip("openenv.core", reason="the OpenEnv adapter needs openenv-core: pip install 'scaleenv[openenv]'")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from scaleenv.integrations.openenv import ScaleEnvAction, ScaleEnvClient, create_app, guard  # noqa: E402
from scaleenv._serve.auth import Auth  # noqa: E402
from tests.serve.conftest import self_signed  # noqa: E402

from .conftest import OPTIONS, golden, kept, served  # noqa: E402

TOKEN_A = "trainer-a-0123456789abcdefghij"
TOKEN_B = "trainer-b-0123456789abcdefghij"


@contextmanager
def serving(run_log: Path, auth: Auth | None = None, tls: tuple[str, str] | None = None) -> Iterator[str]:
    """The app on a loopback socket bound here, in a thread, guarded as ``main`` guards it
    (``auth``: its tokens; ``tls``: certificate and key); its base URL (stopped on exit)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = guard(create_app(str(run_log), options=OPTIONS, max_concurrent_envs=4), "127.0.0.1", auth)
    started = threading.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
            await super().startup(sockets=sockets)
            started.set()

    srv = Server(uvicorn.Config(app, log_level="warning", lifespan="on", ssl_certfile=tls[0] if tls else None,
                                ssl_keyfile=tls[1] if tls else None))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not started.wait(1):
        assert thread.is_alive(), "the server thread ended before serving"
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        srv.should_exit = True
        thread.join(120)
        sock.close()


def test_openenv_client_plays_episodes_to_their_rewards(run_log: Path) -> None:
    task_id, task = next(iter(kept(run_log).items()))
    calls, closing = golden(task)
    with serving(run_log) as server, ScaleEnvClient(base_url=server).sync() as env, \
            ScaleEnvClient(base_url=server).sync() as other:
        result = env.reset(seed=1, task_id=task_id)
        obs = result.observation
        assert not result.done and obs.task_id == task_id and obs.tools and obs.messages[-1]["role"] == "user"
        first = obs.messages
        assert other.reset(seed=1, task_id=task_id).observation.messages == first  # a second session, same seed
        for i, call in enumerate(calls):
            action = (ScaleEnvAction(tool_calls=[call]) if i % 2 == 0 else
                      ScaleEnvAction(text="<tool_call>" + json.dumps({"name": call["function"]["name"],
                                                                      "arguments": json.loads(call["function"]["arguments"])})
                                          + "</tool_call>"))
            result = env.step(action)
            assert [m["role"] for m in result.observation.messages] == ["tool"] and not result.done
            assert '"error"' not in result.observation.messages[0]["content"]
        result = env.step(ScaleEnvAction(content=closing))
        if not result.done:
            result = env.step(ScaleEnvAction())  # an empty turn ends it (policy_stopped), scored as it stands
        assert result.done and result.reward == 1.0 and result.observation.result["reward"] == 1.0
        assert env.state().step_count == len(calls) + (1 if result.observation.result["reason"] != "policy_stopped" else 2)
        episode_id = result.observation.episode_id
        other_id = other.state().episode_id
    episodes = served(run_log)
    assert episodes[episode_id].reward.reward == 1.0
    assert episodes[other_id].ended is not None  # the client that left has its episode ended, not left open


def test_openenv_lets_in_only_tokens(run_log: Path) -> None:
    task_id = next(iter(kept(run_log)))
    with serving(run_log, Auth.from_tokens([TOKEN_A, TOKEN_B])) as server:
        for token in (None, "wrong-token-0123456789abcd"):  # openenv-core's client: the handshake is refused
            with pytest.raises(ConnectionError, match="HTTP 401|HTTP 403"):
                ScaleEnvClient(base_url=server, token=token).sync().connect()
        with httpx.Client(base_url=server, timeout=60) as http:
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abcd"}, {"Authorization": TOKEN_A}):
                r = http.post("/reset", json={"seed": 1}, headers=headers)
                assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), headers
            ok = {"Authorization": f"Bearer {TOKEN_B}"}
            assert http.get("/health", headers=ok).status_code == 200
            # DNS rebinding and web pages of other sites: refused on loopback, token or not
            r = http.get("/health", headers={**ok, "Host": "evil.example"})
            assert r.status_code == 403 and "not served here" in r.json()["error"]["message"]
            r = http.post("/reset", json={"seed": 1}, headers={**ok, "Origin": "http://evil.example"})
            assert r.status_code == 403
        with ScaleEnvClient(base_url=server, token=TOKEN_A).sync() as env:
            result = env.reset(seed=1, task_id=task_id)
            assert result.observation.task_id == task_id and not result.done
            episode_id = result.observation.episode_id
    assert set(served(run_log)) == {episode_id}  # nothing refused reached an environment


def test_openenv_over_tls(run_log: Path, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with serving(run_log, Auth.from_tokens([TOKEN_A]), tls=(cert, key)) as server:
        assert server.startswith("https://")
        trust = ssl.create_default_context(cafile=cert)
        with ScaleEnvClient(base_url=server, token=TOKEN_A, ssl_context=trust).sync() as env:
            assert env.reset(seed=2).observation.messages
        with httpx.Client(base_url=server, verify=trust, timeout=60) as http:
            assert http.get("/health").status_code == 401


def _main(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "SCALEENV_TOKEN"}
    return subprocess.Popen([sys.executable, "-m", "scaleenv.integrations.openenv", "--port", "0", *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("args", "words"), [
    (["--host", "0.0.0.0"], "refusing to serve the OpenEnv server on 0.0.0.0"),
    (["--host", "0.0.0.0", "--token", "short"], "--token/SCALEENV_TOKEN: token #1 must be at least 16"),
    (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
])
def test_openenv_bad_network_options_exit_2_before_opening_the_log(tmp_path: Path, args: list[str], words: str) -> None:
    proc = _main("--log", "none.lmdb", *args, cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert not (tmp_path / "none.lmdb").exists()


def test_openenv_insecure_warns_on_start(run_log: Path) -> None:
    proc = _main("--log", str(run_log), "--host", "0.0.0.0", "--insecure", cwd=run_log.parent)
    try:
        assert proc.stderr is not None
        warning, serving_line = proc.stderr.readline(), proc.stderr.readline()
        assert "WARNING" in warning and "without a token" in warning and "--token" in warning, warning
        assert "serving" in serving_line and "no token" in serving_line, serving_line
    finally:
        proc.terminate()
        proc.communicate(timeout=120)
