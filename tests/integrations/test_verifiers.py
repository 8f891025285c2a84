"""verifiers' own rollout loop (``evaluate``, its openai client, its rubric) on scaleenv
episodes, the policy being ``scaleenv sim-server`` behind the OpenAI API.

verifiers 0.3.x pins ``mcp<2``, which the test extra's MCP SDK excludes, so this runs in
its own environment (``.ci/run`` makes ``.venv-verifiers``); elsewhere it is skipped.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

vf = pytest.importorskip("verifiers", reason="the verifiers adapter needs verifiers 0.3.x: pip install 'scaleenv[verifiers]'")
if not hasattr(vf, "MultiTurnEnv"):
    pytest.skip("scaleenv's verifiers adapter is for the classic API (verifiers 0.3.x)", allow_module_level=True)

from openai import AsyncOpenAI  # noqa: E402

from scaleenv.integrations.verifiers import ENV_ID, ScaleEnvVerifiersEnv  # noqa: E402

from .conftest import OPTIONS, kept, served  # noqa: E402


@contextmanager
def sim_server() -> Iterator[str]:
    """``scaleenv sim-server`` as a real process on a free loopback port; its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "scaleenv", "sim-server", "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # "scaleenv sim-server: serving MODEL at URL"
        assert " at http://" in line, f"sim-server did not start: {line!r}"
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(60)
        proc.stderr.close()


def test_verifiers_evaluate_rolls_out_scaleenv_episodes(run_log: Path) -> None:
    tasks = list(kept(run_log))
    env = vf.load_environment(ENV_ID, log=str(run_log), options=OPTIONS, max_turns=24)
    assert isinstance(env, ScaleEnvVerifiersEnv) and isinstance(env, vf.MultiTurnEnv)

    async def evaluate(url: str) -> Any:
        async with AsyncOpenAI(base_url=url, api_key="unused") as oai:  # closed in the loop that used it
            client = vf.OpenAIChatCompletionsClient(oai)
            return await env.evaluate(client, model="scaleenv-sim-1", num_examples=-1, rollouts_per_example=2,
                                      state_columns=["scaleenv"])

    try:
        with sim_server() as url:
            results = asyncio.run(evaluate(url))
    finally:
        env.close()
    outputs = results["outputs"]
    assert len(outputs) == 2 * len(tasks)
    episodes = served(run_log)
    rewards = []
    for out in outputs:
        eid = out["scaleenv"]["episode_id"]
        episode = episodes[eid]
        assert episode.task_id == out["info"]["task_id"] and episode.ended is not None
        assert out["reward"] == episode.reward.reward == out["scaleenv"]["result"]["reward"]
        # what verifiers trained on is the episode as the log folds it
        conversation = [m.model_dump(exclude_none=True) if hasattr(m, "model_dump") else m
                        for m in [*out["prompt"], *out["completion"]]]
        roles, logged = [m["role"] for m in conversation], [m["role"] for m in episode.messages]
        if episode.ended.reason == "policy_stopped" and roles[-1:] == ["assistant"]:
            # verifiers stopped at its max_turns after the model's turn, before the environment
            # saw it: that last turn is in verifiers' completion only (the episode ended without it)
            roles = roles[:-1]
        assert roles == logged, (episode.ended, roles[-4:], logged[-4:])
        assert episode.client_seed is not None
        rewards.append(out["reward"])
    assert any(r == 1.0 for r in rewards), "no rollout solved its task: the reward path was not exercised"
    by_row: dict[int, list[int | None]] = {}
    for out in outputs:
        by_row.setdefault(out["example_id"], []).append(episodes[out["scaleenv"]["episode_id"]].client_seed)
    assert all(len(set(seeds)) == 1 for seeds in by_row.values())  # a group's rollouts meet the same user
