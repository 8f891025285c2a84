"""The gymnasium adapter, checked with gymnasium's own env checkers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

gymnasium = pytest.importorskip("gymnasium", reason="the gym adapter needs gymnasium: pip install 'scaleenv[gym]'")

from gymnasium.utils import env_checker, passive_env_checker  # noqa: E402

from scaleenv.serve.gym import ScaleEnvGym  # noqa: E402
from scaleenv.replay.projection import fold  # noqa: E402
from scaleenv.store.log import Log  # noqa: E402

from .conftest import OPTIONS  # noqa: E402


def test_gym_golden_and_checkers(run_log: Path) -> None:
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    task_id = sorted(t for t, v in view.tasks.items() if v.status == "kept")[0]
    task = view.tasks[task_id]
    env = ScaleEnvGym(str(run_log), task_id, options=OPTIONS, render_mode="ansi")
    other = ScaleEnvGym(str(run_log), task_id, options=OPTIONS)  # a second env shares the engine thread
    try:
        # gymnasium's checks that apply (a new episode's simulated user is a new seeded
        # stream, so the seed-determinism checks do not: two resets are two conversations)
        passive_env_checker.check_observation_space(env.observation_space)
        passive_env_checker.check_action_space(env.action_space)
        env_checker.check_reset_return_type(env)
        env_checker.check_reset_options(env)
        env_checker.check_reset_return_info_deprecation(env)
        env_checker.check_seed_deprecation(env)
        env_checker.check_returned_data_not_reused(env)
        passive_env_checker.env_reset_passive_checker(env, seed=3)
        passive_env_checker.env_step_passive_checker(env, env.action_space.sample())

        obs, info = env.reset(seed=1)
        assert obs[0]["role"] == "system" and obs[-1]["role"] == "user"
        assert obs in env.observation_space and info["tools"]
        for i, step in enumerate(task.golden.steps):
            action = {"content": "", "tool_calls": [{"id": f"c{i}", "type": "function",
                                                    "function": {"name": step.tool, "arguments": json.dumps(step.args)}}]}
            assert action in env.action_space
            obs, reward, terminated, truncated, info = env.step(action)
            assert obs[0]["role"] == "tool" and obs[0]["tool_call_id"] == f"c{i}"
            assert reward == 0.0 and not terminated and not truncated
        answers = " ".join(str(a) for a in task.golden.expected_answers)
        obs, reward, terminated, truncated, info = env.step(f"All done: it has been completed. {answers}")
        if not (terminated or truncated):
            assert obs[-1]["role"] == "user"
            result = env.end()
            reward = result["reward"]
        assert reward == 1.0
        assert "assistant" in env.render()

        obs, info = other.reset()
        obs, reward, terminated, truncated, info = other.step({"content": "", "tool_calls": []})
        assert terminated and not truncated and reward == 0.0  # an empty turn stops the episode, as local
        assert info["result"]["reason"] == "policy_stopped"
        with pytest.raises(RuntimeError):
            other.step("hello")
    finally:
        other.close()
        env.close()
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    served = [e for e in view.episodes.values() if e.episode_id.rsplit("/", 1)[-1].startswith("s") and e.reward is not None]
    assert len(served) >= 6 and any(e.reward.reward == 1.0 for e in served)  # type: ignore[union-attr]
