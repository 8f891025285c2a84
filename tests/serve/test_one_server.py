"""One ``Environments`` per run in a process: a second would end the first one's live
episodes as if a killed server had left them open."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaleenv._serve.environments import Environments, open_environments

from .conftest import OPTIONS


async def test_a_second_environments_on_one_run_is_refused_and_ends_nothing(run_log: Path) -> None:
    async with open_environments(str(run_log), OPTIONS) as envs:
        opened = await envs.open_episode(envs.kept_tasks()[0])
        eid = opened["episode_id"]
        with pytest.raises(RuntimeError, match="already served by an Environments in this process"):
            async with Environments.open(envs.ctx):
                raise AssertionError("a second Environments opened")
        assert not envs.episodes[eid].ended
        await envs.say(eid, "Hello, how can I help?")  # the first one still serves its episode
        await envs.end(eid)
        assert envs.episodes[eid].ended
    assert not envs.ctx.served
