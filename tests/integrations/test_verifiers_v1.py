"""verifiers 0.4's own episode machinery (``Env.serving``, ``Env.run_episode``: its
interception server, its ``null`` chat harness as a real subprocess talking MCP to the
episode's tools, its task scoring) on episodes of a real ``scaleenv serve-mcp`` process,
the policy a scripted OpenAI-compatible server: the golden chain earns 1.0, the chain
without its last call 0.0, and the log records both episodes as served ones.

verifiers 0.4 pins ``mcp==2.0.0`` (the test extra needs >= 2.3) and pulls its own
stack, so this runs in its own environment (``.ci/run`` makes ``.venv-verifiers4``);
elsewhere it is skipped.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import importlib.metadata  # noqa: E402

try:
    _VERIFIERS = importlib.metadata.version("verifiers")
except importlib.metadata.PackageNotFoundError:
    _VERIFIERS = None
if _VERIFIERS is None or not _VERIFIERS.startswith("0.4"):  # 0.3.x ships a verifiers.v1 of its own
    pytest.skip(f"the verifiers 0.4 adapter needs verifiers 0.4 (found {_VERIFIERS}): see .ci/run",
                allow_module_level=True)
vf = pytest.importorskip("verifiers.v1")

from scaleenv.integrations.verifiers_v1 import ScaleEnvEnv, ScaleEnvTask, load_environment  # noqa: E402

from .conftest import golden, kept, served  # noqa: E402
from .scripted_policy import ScriptedPolicy, serve_policy  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"


@contextmanager
def serve_mcp(log: Path, stderr: Path) -> Iterator[str]:
    """``scaleenv serve-mcp`` over HTTP as a real process on a free loopback port (its
    diagnostics in ``stderr``); its control URL."""
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "scaleenv", "serve-mcp", "--transport", "http", "--log", str(log),
                                 "--port", "0", "--json"], stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("{"), f"serve-mcp did not start: {line!r} {stderr.read_text()[-2000:]}"
        yield json.loads(line)["url"]
    finally:
        proc.terminate()
        proc.wait(120)
        proc.stdout.close()  # type: ignore[union-attr]


def readme_snippet() -> str:
    found = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL) if "import verifiers.v1" in b]
    assert len(found) == 1, "one python snippet using verifiers.v1 in the README"
    return found[0]


def trace_messages(trace: Any) -> list[dict[str, Any]]:
    """The messages of a verifiers trace, as dicts."""
    return [m.model_dump(exclude_none=True) if hasattr(m, "model_dump") else m for m in trace.messages]


def script(calls: list[dict[str, Any]], closing: str) -> list[Any]:
    return [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])} for c in calls] + [closing]


def test_verifiers_v1_plays_served_episodes_golden_one_truncated_zero(run_log: Path, tmp_path: Path) -> None:
    tasks = kept(run_log)
    task_id, view = next((t, v) for t, v in tasks.items() if len(v.golden.steps) >= 2)
    calls, closing = golden(view)
    with serve_mcp(run_log, tmp_path / "serve-mcp.err") as url:
        # the README's snippet as written, on this server and a policy playing the golden chain
        good = ScriptedPolicy(script(calls, closing))
        with serve_policy(good) as base:
            code = (readme_snippet().replace("http://127.0.0.1:8765/mcp", url)
                    .replace("http://127.0.0.1:8000/v1", base).replace("d00/t000", task_id))
            scope: dict[str, Any] = {}
            exec(compile(code, "README.md (verifiers 0.4)", "exec"), scope)  # noqa: S102
        golden_episode = scope["episode"]
        env = scope["env"]
        assert isinstance(env, ScaleEnvEnv) and {t.data.id for t in env.taskset} == set(tasks)

        # the same task, the chain without its last call: the final database is not the expected one
        bad = ScriptedPolicy(script(calls[:-1], closing))
        with serve_policy(bad) as base:
            ctx = vf.ModelContext(model="scripted", client=vf.EvalClientConfig(base_url=base))
            env2 = load_environment(url)
            task = next(t for t in env2.taskset if t.data.id == task_id)
            assert isinstance(task, ScaleEnvTask)

            async def play() -> Any:
                async with env2.serving():
                    return await env2.run_episode(task, ctx)

            truncated_episode = asyncio.run(play())

    episodes = served(run_log)
    for episode, chain, reward in ((golden_episode, calls, 1.0), (truncated_episode, calls[:-1], 0.0)):
        assert episode.ok and not episode.errors, episode.errors
        (trace,) = episode.traces
        assert trace.task.data.id == task_id
        assert trace.rewards["episode_reward"].score == reward, trace.rewards
        logged = episodes[trace.task.data.episode_id]
        assert logged.task_id == task_id and logged.ended is not None and logged.reward.reward == reward
        # the policy's calls reached the episode through verifiers' harness, in order, with their arguments
        made = [(c["function"]["name"], json.loads(c["function"]["arguments"]))
                for m in logged.messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
        assert made == [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in chain]
        # and the agent's first turn was the simulated user's opening message, relayed by the env
        assert [m["role"] for m in logged.messages[:2]] == ["system", "user"]
        first = next(m for m in trace_messages(trace) if m["role"] == "user")
        assert first["content"] == logged.messages[1]["content"]
