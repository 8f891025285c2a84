"""sim-server shares the HTTP front ends' limits (issue 21): bad bodies are 400s, never 500s."""

from __future__ import annotations

import httpx2 as httpx
import trio

from scaleenv.serve.limits import Limits
from scaleenv.serve.sim_http import serve_sim


async def test_sim_server_answers_bad_bodies_with_4xx_naming_the_limit() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_sim(
            "127.0.0.1", 0, limits=Limits(max_body_bytes=64 * 1024), task_status=task_status))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            r = await c.post("/v1/chat/completions", content=b'{"messages": [{"role": "user", "content": "\xff"}]}')
            assert r.status_code == 400 and "not UTF-8" in r.json()["error"]["message"], r.text
            deep = b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"
            r = await c.post("/v1/chat/completions", content=deep)
            assert r.status_code == 400 and r.json()["error"]["param"] == "max_depth", r.text
            r = await c.post("/v1/chat/completions", content=b"x" * (65 * 1024))
            assert r.status_code == 413 and r.json()["error"]["param"] == "max_body_bytes", r.text
            r = await c.get("/v1/models")  # and it keeps serving
            assert r.status_code == 200
        nursery.cancel_scope.cancel()
