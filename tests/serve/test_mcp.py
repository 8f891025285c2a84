"""``scaleenv serve-mcp`` over stdio, driven by the official MCP SDK's client (under trio)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

pytest.importorskip("mcp", reason="serve-mcp needs the mcp SDK: pip install 'scaleenv[mcp]'")

from mcp import Client, StdioServerParameters  # noqa: E402

from scaleenv.replay.projection import fold  # noqa: E402
from scaleenv.store.events.episodes import ToolExecuted  # noqa: E402
from scaleenv.store.log import Log  # noqa: E402


async def test_mcp_stdio_golden_episode(run_log: Path) -> None:
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    task_id = sorted(t for t, v in view.tasks.items() if v.status == "kept")[-1]
    task = view.tasks[task_id]
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "scaleenv", "serve-mcp", "--log", str(run_log), "--task", task_id, "--no-sync"])
    with trio.fail_after(60):
        async with Client(params) as client:
            assert client.instructions and "The customer says" in client.instructions
            names = [t.name for t in (await client.list_tools()).tools]
            assert "talk_to_user" in names and "end_episode" in names
            assert all(step.tool in names for step in task.golden.steps)
            prompt = await client.get_prompt("episode")
            assert prompt.messages[0].content.text
            bad = await client.call_tool(task.golden.steps[0].tool, {"not_a_param": 1})
            assert bad.is_error
            for step in task.golden.steps:
                res = await client.call_tool(step.tool, step.args)
                assert not res.is_error, res.content
                json.loads(res.content[0].text)
            answers = " ".join(str(a) for a in task.golden.expected_answers)
            said = await client.call_tool("talk_to_user", {"message": f"All done: it has been completed. {answers}"})
            assert not said.is_error
            end = await client.call_tool("end_episode", {})
            assert end.structured_content["reward"] == 1.0
    with Log.open(str(run_log), readonly=True) as event_log:
        view = fold(event_log.read())
    ep = view.episodes[f"{task_id}/s0"]
    assert ep.reward is not None and ep.reward.reward == 1.0
    assert sum(1 for e in ep.timeline if isinstance(e, ToolExecuted) and not e.ok) == 1
