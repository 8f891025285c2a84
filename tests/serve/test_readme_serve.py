"""The README's trainer loop for ``scaleenv serve`` runs as written, against a real server with a token."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import trio

from scaleenv._serve.auth import Auth
from scaleenv._serve.environments import open_environments
from scaleenv._serve.http import serve_environments

from .conftest import OPTIONS

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "readme-token-0123456789abcdef"


def _snippet() -> str:
    text = README.read_text()
    section = text[text.index("## Environments as a service"):text.index("## Distributed rollouts")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the serve section has one Python example"
    return blocks[0]


async def test_readme_trainer_loop_runs(run_log: Path) -> None:
    code = _snippet()
    async with open_environments(str(run_log), OPTIONS) as envs:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(lambda task_status: serve_environments(
                envs, "127.0.0.1", 0, auth=Auth.from_tokens([TOKEN]), task_status=task_status))
            env = {**os.environ, "SCALEENV_URL": f"http://127.0.0.1:{port}", "SCALEENV_TOKEN": TOKEN}
            with trio.fail_after(120):
                done = await trio.run_process([sys.executable, "-c", code], env=env, capture_stdout=True,
                                              capture_stderr=True, check=False)
            assert done.returncode == 0, done.stderr.decode()[-2000:]
            lines = done.stdout.decode().splitlines()
            reward, reason, log_id = lines[-1].split()
            assert float(reward) in (0.0, 1.0) and reason and log_id.startswith(envs.kept_tasks()[0] + "/s")
            assert envs.episodes[log_id].ended
            bad = await trio.run_process([sys.executable, "-c", code], env={**env, "SCALEENV_TOKEN": "wrong-0123456789abc"},
                                         capture_stdout=True, capture_stderr=True, check=False)
            assert bad.returncode != 0  # the same loop without the token gets nothing
            nursery.cancel_scope.cancel()
