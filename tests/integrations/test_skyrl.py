"""The SkyRL-gym environment, made with skyrl_gym's own ``make`` and stepped with raw model text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

skyrl_gym = pytest.importorskip("skyrl_gym", reason="the SkyRL adapter needs skyrl-gym: pip install 'scaleenv[skyrl]'")

from skyrl_gym.envs.base_text_env import BaseTextEnv  # noqa: E402

from scaleenv.integrations.skyrl import ENV_CLASS, dataset_rows  # noqa: E402

from .conftest import OPTIONS, golden, kept, served  # noqa: E402


def test_skyrl_env_plays_a_task_from_its_dataset_row(run_log: Path) -> None:
    tasks = kept(run_log)
    rows = dataset_rows(str(run_log), repeats=2)
    assert [r["extra_info"]["task_id"] for r in rows[::2]] == list(tasks) and rows[0]["env_class"] == ENV_CLASS
    row = rows[0]
    task = tasks[row["extra_info"]["task_id"]]
    calls, closing = golden(task)
    env = skyrl_gym.make(ENV_CLASS, env_config={"log": str(run_log), "options": OPTIONS}, extras=row)
    twin = skyrl_gym.make(ENV_CLASS, env_config={"log": str(run_log), "options": OPTIONS}, extras=row)
    try:
        assert isinstance(env, BaseTextEnv)
        prompt, metadata = env.init(row["prompt"])
        assert [m["role"] for m in prompt] == ["system", "user"] and "<tool_call>" in prompt[0]["content"]
        assert twin.init(row["prompt"])[0] == prompt  # the row's seed: the same conversation
        for call in calls:
            fn = call["function"]
            text = f"<think>Next: {fn['name']}.</think>\n<tool_call>\n" + json.dumps(
                {"name": fn["name"], "arguments": json.loads(fn["arguments"])}) + "\n</tool_call>"
            out = env.step(text)
            assert not out["done"] and out["reward"] == 0.0
            assert [m["role"] for m in out["observations"]] == ["tool"]
            assert out["metadata"]["parsed"]["tool_calls"][0]["function"]["name"] == fn["name"]
        out = env.step(closing)
        if not out["done"]:
            out = env.step("")  # an empty turn ends it, scored as it stands
        assert out["done"] and out["reward"] == 1.0
        assert env.get_metrics()["reward"] == 1.0
        episode_id = env.episode_id
        twin_id = twin.episode_id
    finally:
        twin.close()
        env.close()
    episodes = served(run_log)
    assert episodes[episode_id].reward.reward == 1.0 and episodes[twin_id].ended.reason == "policy_stopped"
    with pytest.raises(ValueError, match="needs the run's log"):
        skyrl_gym.make(ENV_CLASS, env_config={}, extras={"extra_info": {"task_id": "d00/t000"}})
