"""`scaleenv regrade`: re-scores finished episodes; appends RewardGiven only where the score changed."""

from __future__ import annotations

import json
from pathlib import Path

from scaleenv._replay.projection import fold
from scaleenv._model.reward import REWARD_VERSION
from scaleenv._store.events.episodes import RewardGiven
from scaleenv._store.log import Log


def test_regrade_appends_once_and_keeps_the_old_reward(shop_run: Path, copy_of, cli) -> None:
    path = copy_of(shop_run)
    stream = "episode/d00/t000/g0"
    with Log.open(path, readonly=True) as lg:
        before = lg.stream_length(stream)
    code, out, _ = cli("regrade", "--log", path, "--dry-run", "--json")
    got = json.loads(out)
    assert code == 0 and got["changed"] == 1 and got["appended"] == 0
    code, out, _ = cli("regrade", "--log", path, "--json")
    got = json.loads(out)
    assert code == 0 and got["changed"] == 1 and got["appended"] == 1
    ep = got["episodes"][0]
    # The recorded grade (1.0, strict-0) was stale: the episode also created an extra order.
    assert ep["episode"] == "d00/t000/g0" and ep["old_reward"] == 1.0 and ep["new_reward"] == 0.0
    assert any("reward version strict-0 -> " + REWARD_VERSION in r for r in ep["reasons"])
    with Log.open(path, readonly=True) as lg:
        records = list(lg.read_stream(stream))
        assert len(records) == before + 1 and records[-1].n == before
        rewards = [r.event for r in records if isinstance(r.event, RewardGiven)]
        assert [r.reward_version for r in rewards] == ["strict-0", REWARD_VERSION]
        assert fold(lg.read()).episodes["d00/t000/g0"].reward.reward == 0.0
    code, out, _ = cli("regrade", "--log", path, "--json")
    assert json.loads(out)["changed"] == 0


def test_sim_rewards_are_current(golden_run: Path, cli) -> None:
    code, out, _ = cli("regrade", "--log", golden_run, "--dry-run", "--json")
    got = json.loads(out)
    assert code == 0 and got["episodes_checked"] > 0 and got["changed"] == 0
