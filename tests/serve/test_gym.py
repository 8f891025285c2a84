"""The gymnasium environments, checked with gymnasium's own ``check_env`` and ``make``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

gymnasium = pytest.importorskip("gymnasium", reason="the gym adapter needs gymnasium: pip install 'scaleenv[gym]'")

from gymnasium.utils.env_checker import check_env  # noqa: E402

import scaleenv._serve.gym as scaleenv_gym  # noqa: E402  (registers the ids)
from scaleenv._replay.projection import TaskView, fold  # noqa: E402
from scaleenv._store.events.episodes import EpisodeStarted  # noqa: E402
from scaleenv._store.log import Log  # noqa: E402

from .conftest import OPTIONS  # noqa: E402


def kept(run_log: Path) -> dict[str, TaskView]:
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    return {t: v for t, v in sorted(view.tasks.items()) if v.status == "kept"}


def golden_call(step: Any, i: int) -> dict[str, Any]:
    return {"id": f"c{i}", "type": "function", "function": {"name": step.tool, "arguments": json.dumps(step.args)}}


def served_episodes(run_log: Path) -> dict[str, Any]:
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    return {e: v for e, v in view.episodes.items() if e.rsplit("/", 1)[-1].startswith("s")}


def test_check_env_passes_in_full_and_labels_its_episodes(run_log: Path) -> None:
    task_id = next(iter(kept(run_log)))
    env = gymnasium.make(scaleenv_gym.CHAT_ID, log=str(run_log), task=task_id, label="checker", options=OPTIONS,
                         render_mode="ansi")
    try:
        check_env(env.unwrapped)  # the whole checker: seeding, step determinism, data reuse, render, close twice
    finally:
        env.close()
    served = served_episodes(run_log)
    assert len(served) >= 8 and all(e.label == "checker" and e.ended is not None for e in served.values())


def test_the_same_seed_and_actions_give_the_same_episode(run_log: Path) -> None:
    tasks = kept(run_log)
    task_id, task = next(iter(tasks.items()))
    env = gymnasium.make(scaleenv_gym.CHAT_ID, log=str(run_log), options=OPTIONS)  # task drawn per reset
    try:
        runs = []
        for seed in (7, 7, 8):
            obs, info = env.reset(seed=seed, options={"task_id": task_id})
            steps = [obs]
            for text in ("Hello, could you tell me more about what you need?", "Could you confirm your details?"):
                obs, reward, terminated, truncated, step_info = env.step(text)
                steps.append((obs, reward, terminated, truncated, step_info))
                if terminated or truncated:
                    break
            runs.append(steps)
        assert runs[0] == runs[1]  # every observation, reward and info, not only the first message
        openings = {env.reset(seed=s, options={"task_id": task_id})[0][1]["content"] for s in range(8, 16)}
        assert len(openings) > 1  # the seed is what decides: other seeds, other conversations
        drawn = {env.reset(seed=s)[1]["task_id"] for s in range(12)}
        assert drawn <= set(tasks) and len(drawn) > 1  # without a task, each reset draws one from the seeded generator
    finally:
        env.close()
    with Log.open(str(run_log), readonly=True) as event_log:
        started = [r.event for r in event_log.read() if isinstance(r.event, EpisodeStarted)
                   and r.stream.rsplit("/", 1)[-1].startswith("s")]
    seeds = [e.client_seed for e in started]
    assert seeds[0] == seeds[1] != seeds[2] and all(s is not None for s in seeds)
    assert started[0].seed == started[1].seed  # the episode seed follows the client seed, not the episode id


def test_chat_env_plays_the_golden_chain_to_reward_one(run_log: Path) -> None:
    tasks = kept(run_log)
    task_id, task = next(iter(tasks.items()))
    env = gymnasium.make(scaleenv_gym.CHAT_ID, log=str(run_log), task=task_id, options=OPTIONS, render_mode="ansi")
    other = gymnasium.make(scaleenv_gym.CHAT_ID, log=str(run_log), task=task_id, options=OPTIONS)  # shares the engine
    try:
        obs, info = env.reset(seed=1)
        assert obs[0]["role"] == "system" and obs[-1]["role"] == "user" and info["tools"]
        messages = list(obs)
        for i, step in enumerate(task.golden.steps):
            action = {"content": "", "tool_calls": [golden_call(step, i)]}
            obs, reward, terminated, truncated, info = env.step(action)
            assert obs[0]["role"] == "tool" and obs[0]["tool_call_id"] == f"c{i}"
            assert reward == 0.0 and not terminated and not truncated
            messages += [{"role": "assistant", "content": "", "tool_calls": action["tool_calls"]}, *obs]
        answers = " ".join(str(a) for a in task.golden.expected_answers)
        obs, reward, terminated, truncated, info = env.step(f"All done: it has been completed. {answers}")
        if not (terminated or truncated):
            reward = env.unwrapped.end()["reward"]
        assert reward == 1.0
        episode_id = env.unwrapped.episode_id
        assert "assistant" in env.render()

        obs, info = other.reset()
        obs, reward, terminated, truncated, info = other.step({"content": "", "tool_calls": []})
        assert terminated and not truncated and reward == 0.0  # an empty turn stops the episode, as local
        assert info["result"]["reason"] == "policy_stopped" and "episode_id" not in info["result"]
        with pytest.raises(RuntimeError, match="has ended"):
            other.step("hello")
    finally:
        other.close()
        env.close()
    episode = served_episodes(run_log)[episode_id]
    assert episode.messages[: len(messages)] == messages  # observations appended in order are the log's fold
    assert episode.reward.reward == 1.0 and episode.label == ""


def test_text_env_reads_hermes_and_json_tool_calls(run_log: Path) -> None:
    task_id, task = next(iter(kept(run_log).items()))
    env = gymnasium.make(scaleenv_gym.TEXT_ID, log=str(run_log), task=task_id, options=OPTIONS, tools_in_prompt=True)
    try:
        obs, info = env.reset(seed=3)
        assert "<tool_call>" in obs[0]["content"] and info["tools"][0]["function"]["name"] in obs[0]["content"]
        for i, step in enumerate(task.golden.steps):
            call = json.dumps({"name": step.tool, "arguments": step.args})
            text = (f"<think>I need {step.tool}.</think>Let me look.\n<tool_call>\n{call}\n</tool_call>" if i % 2 == 0
                    else json.dumps({"content": "", "tool_calls": [golden_call(step, i)]}))
            obs, reward, terminated, truncated, info = env.step(text)
            assert [m["role"] for m in obs] == ["tool"] and '"error"' not in obs[0]["content"], obs
            parsed = info["parsed"]
            assert parsed["tool_calls"][0]["function"]["name"] == step.tool
            assert json.loads(parsed["tool_calls"][0]["function"]["arguments"]) == step.args
            assert parsed["content"] == ("Let me look." if i % 2 == 0 else "")
        answers = " ".join(str(a) for a in task.golden.expected_answers)
        obs, reward, terminated, truncated, info = env.step(f"All done: it has been completed. {answers}")
        if not (terminated or truncated):
            reward = env.unwrapped.end()["reward"]
        assert reward == 1.0
        obs, info = env.reset(seed=4)
        obs, reward, terminated, truncated, info = env.step('<tool_call>{"name": "no_such_tool", "arguments": {}}</tool_call>')
        assert obs[0]["role"] == "tool" and "unknown tool" in obs[0]["content"]  # a tool error, as a real API gives
        obs, reward, terminated, truncated, info = env.step("<tool_call>not json</tool_call>")
        assert info["parsed"] == {"role": "assistant", "content": "<tool_call>not json</tool_call>"}
        assert obs[-1]["role"] == "user" or terminated or truncated  # unparseable: a message to the user
    finally:
        env.close()


def test_bad_arguments_are_one_clear_error(run_log: Path) -> None:
    with pytest.raises(ValueError, match="unknown task 'd99/t999'"):
        gymnasium.make(scaleenv_gym.CHAT_ID, log=str(run_log), task="d99/t999", options=OPTIONS)
    with pytest.raises(ValueError, match="no log at"):
        gymnasium.make(scaleenv_gym.CHAT_ID, log=str(run_log.parent / "missing"), options=OPTIONS)
    with pytest.raises(ValueError, match="'label' must be"):
        env = gymnasium.make(scaleenv_gym.CHAT_ID, log=str(run_log), label="Not A Label", options=OPTIONS)
        try:
            env.reset(seed=0)
        finally:
            env.close()


def _play(env: Any, seed: int, actions: list[Any]) -> Any:
    """A generator: resets ``env`` with ``seed``, then plays one action per ``next()``; yields what each gave."""
    obs, info = env.reset(seed=seed)
    yield obs, info
    for action in actions:
        out = env.step(action)
        yield out
        if out[2] or out[3]:
            return
    yield env.unwrapped.end()


def _episode_plans(task: TaskView) -> tuple[list[Any], list[Any]]:
    """Two ways through ``task``: the whole golden chain then the answers (a pass), and the
    chain without its last call (the goal left undone)."""
    calls = [{"content": "", "tool_calls": [golden_call(step, i)]} for i, step in enumerate(task.golden.steps)]
    answers = " ".join(str(a) for a in task.golden.expected_answers)
    done = f"All done: it has been completed. {answers}"
    return [*calls, done], [*calls[:-1], done]


def _served_streams(path: Path) -> dict[str, str]:
    with Log.open(str(path), readonly=True) as event_log:
        view = fold(event_log.read())
    return {s: d for s, d in view.stream_digests().items() if s.startswith("episode/") and s.rsplit("/", 1)[-1].startswith("s")}


def test_two_episodes_open_at_once_are_independent(base_run: Path, tmp_path: Path) -> None:
    """Two gym envs on one log, each with an episode of the same task open, stepped in
    turn: each sees what it would see alone (every observation, reward and info), its
    database changes only by its own calls (the same golden calls would clash on a shared
    state), and the log holds the same events per episode as when they ran one after the other."""
    import shutil

    task_id, task = next(iter(kept(base_run).items()))
    assert task.golden is not None and any(step.delta for step in task.golden.steps)  # its calls change the state
    plan_a, plan_b = _episode_plans(task)
    logs = {}
    for name in ("alone", "together"):
        logs[name] = tmp_path / name
        shutil.copytree(base_run, logs[name], ignore=shutil.ignore_patterns("writer.lock"))

    def envs(path: Path) -> tuple[Any, Any]:
        return (gymnasium.make(scaleenv_gym.CHAT_ID, log=str(path), task=task_id, options=OPTIONS),
                gymnasium.make(scaleenv_gym.CHAT_ID, log=str(path), task=task_id, options=OPTIONS))

    a, b = envs(logs["alone"])
    try:
        alone_a, alone_b = list(_play(a, 11, plan_a)), list(_play(b, 12, plan_b))
    finally:
        a.close()
        b.close()

    a, b = envs(logs["together"])
    try:
        play_a, play_b = _play(a, 11, plan_a), _play(b, 12, plan_b)
        together_a, together_b = [next(play_a)], [next(play_b)]  # both open now
        assert a.unwrapped.episode_id != b.unwrapped.episode_id
        while len(together_a) < len(alone_a) or len(together_b) < len(alone_b):  # a step of one, then of the other
            for got, play, alone in ((together_a, play_a, alone_a), (together_b, play_b, alone_b)):
                if len(got) < len(alone):
                    got.append(next(play))
    finally:
        a.close()
        b.close()

    assert together_a == alone_a and together_b == alone_b
    reward_a, reward_b = alone_a[-1], alone_b[-1]
    reward_a = reward_a["reward"] if isinstance(reward_a, dict) else reward_a[1]
    reward_b = reward_b["reward"] if isinstance(reward_b, dict) else reward_b[1]
    assert (reward_a, reward_b) == (1.0, 0.0)  # a pass and a goal left undone, each as alone
    served = _served_streams(logs["together"])
    assert len(served) == 2 and served == _served_streams(logs["alone"])  # event for event, per episode
