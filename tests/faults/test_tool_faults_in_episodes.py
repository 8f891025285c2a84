"""A verified tool that hangs or eats memory inside an episode: the call fails cleanly, the
episode records why (fault "environment"), and other episodes and the server go on."""

from __future__ import annotations

from pathlib import Path

import msgspec
import trio

from scaleenv._serve.environments import open_environments
from scaleenv._config import RunConfig
from scaleenv._runner import EngineOptions
from scaleenv._store.events.episodes import EpisodeEnded, ToolExecuted
from scaleenv._store.log import Log
from scaleenv._store.specs import FieldSpec, ParamSpec, ToolSpec
from tests.replay.shoplog import build_shop_log

HANG = (ToolSpec(name="slow_report", description="A report that never finishes.", params=[],
                 returns=[FieldSpec(name="rows", type="int")], reads=["orders"], writes=[], mutates=False),
        "def slow_report(db):\n    n = 0\n    while True:\n        n = n + 1\n    return {'rows': n}\n")
HOG = (ToolSpec(name="big_report", description="A report that grows without bound.",
                params=[ParamSpec(name="size", type="int", description="rows")],
                returns=[FieldSpec(name="rows", type="int")], reads=["orders"], writes=[], mutates=False),
       "def big_report(db, size):\n    rows = []\n    while True:\n        rows.append('x' * 1000000)\n    return {'rows': len(rows)}\n")


def test_hanging_and_hogging_tools_fail_cleanly_and_are_the_environments_fault(tmp_path: Path) -> None:
    path = tmp_path / "shop"
    build_shop_log(path, extra=(HANG, HOG))
    with Log.open(path) as lg:
        lg.meta_set("run_config", msgspec.to_builtins(RunConfig(seed=1, domains=1)))

    async def main() -> list[dict]:
        results = []
        async with open_environments(str(path), EngineOptions(progress=False, sync=False)) as envs:
            for tool, args in (("slow_report", {}), ("big_report", {"size": 3})):
                opened = await envs.open_episode("d00/t000")
                eid = opened["episode_id"]
                out = await envs.call_tool(eid, tool, args)
                results.append(out["tool_result"])
                # The episode (and the server) go on: a normal call still works.
                ok = await envs.call_tool(eid, "find_customer_by_email", {"email": "ada@example.com"})
                assert ok["tool_result"]["ok"], ok
                results.append(await envs.end(eid))
        return results

    hang, hang_end, hog, hog_end = trio.run(main)
    assert not hang["ok"] and hang["error_kind"] == "timeout"
    assert not hog["ok"] and hog["error_kind"] in ("memory", "crashed")
    for end in (hang_end, hog_end):
        assert end["reward"] == 0.0 and end["fault"] == "environment"
    with Log.open(path, readonly=True) as lg:
        kinds = [r.event.error_kind for r in lg.read() if isinstance(r.event, ToolExecuted) and not r.event.ok]
        ends = [r.event for r in lg.read() if isinstance(r.event, EpisodeEnded) and r.stream.endswith(("/s0", "/s1"))]
    assert "timeout" in kinds and ("memory" in kinds or "crashed" in kinds)
    assert len(ends) == 2 and all(e.fault == "environment" for e in ends), ends
