"""The OpenEnv server (openenv-core's FastAPI app) driven by openenv-core's own WebSocket client."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytest.importorskip("openenv.core", reason="the OpenEnv adapter needs openenv-core: pip install 'scaleenv[openenv]'")
uvicorn = pytest.importorskip("uvicorn")

from scaleenv.integrations.openenv import ScaleEnvAction, ScaleEnvClient, create_app  # noqa: E402

from .conftest import OPTIONS, golden, kept, served  # noqa: E402


@contextmanager
def serving(run_log: Path) -> Iterator[str]:
    """The app on a loopback socket bound here, in a thread; its base URL (stopped on exit)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(str(run_log), options=OPTIONS, max_concurrent_envs=4)
    started = threading.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
            await super().startup(sockets=sockets)
            started.set()

    srv = Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not started.wait(1):
        assert thread.is_alive(), "the server thread ended before serving"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
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
