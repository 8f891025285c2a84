"""``scaleenv sim-server`` as a real process, answering the real openai client."""

from __future__ import annotations

import subprocess
import sys

import trio

from scaleenv._agents.llm.openai_backend import OpenAIBackend
from scaleenv._agents.llm.port import LlmRequest, render_messages, schema_for, strict_schema_for, validation_error
from scaleenv._agents.llm.strict import STRICT_SHAPE
from scaleenv._agents.sim import SimBackend
from scaleenv._serve.sim_http import strict_answer

from .structs import Plan


async def test_sim_server_subcommand() -> None:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", "from scaleenv._cli import main; raise SystemExit(main())", "sim-server", "--port", "0"],
        stderr=subprocess.PIPE,
    )
    try:
        line = b""
        while b"\n" not in line:
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, f"sim-server exited early: {line!r}"
            line += chunk
        url = line.decode().split(" at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        backend = OpenAIBackend(base_url=url, model="scaleenv-sim-1")
        schema, name = schema_for(Plan)
        req = LlmRequest(role="test/x", messages=render_messages("i", {"a": 1}, "t"), context={"a": 1}, seed=11)
        got = await backend.complete(req, schema, name)
        await backend.aclose()
        # Plan has optional fields and a map: the server answered for Plan's own schema, in the strict shape
        said = SimBackend().answer(req.messages, schema, name, 11)[0]
        assert got.shape == STRICT_SHAPE and got.text == strict_answer(said, strict_schema_for(Plan))
        assert validation_error(got.text, Plan, got.shape) == validation_error(said, Plan)
    finally:
        proc.terminate()
        await proc.wait()


def test_bad_port_is_usage_error() -> None:
    from scaleenv._cli import main

    assert main(["sim-server", "--port", "70000"]) == 2
