"""sim-server as a network front end: the shared limits (bad bodies are 400s, never 500s)
and the token, which scaleenv's own client sends from OPENAI_API_KEY."""

from __future__ import annotations

import httpx2 as httpx
import pytest
import trio

from scaleenv._agents.llm.errors import BackendError
from scaleenv._agents.llm.port import LlmRequest, render_messages, schema_for
from scaleenv._backend_spec import backend_from_spec
from scaleenv._serve.auth import Auth
from scaleenv._serve.limits import Limits
from scaleenv._serve.sim_http import serve_sim

from .structs import Plan


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


async def test_openai_backend_sends_openai_api_key_as_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "sim-token-0123456789abcdef"
    schema, name = schema_for(Plan)
    req = LlmRequest(role="test/x", messages=render_messages("i", {"a": 1}, "t"), context={"a": 1}, seed=5)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_sim(
            "127.0.0.1", 0, auth=Auth.from_tokens([token]), task_status=task_status))
        url = f"openai:http://127.0.0.1:{port}/v1"
        for key, ok in ((token, True), (None, False)):
            if key is None:
                monkeypatch.delenv("OPENAI_API_KEY", raising=False)
            else:
                monkeypatch.setenv("OPENAI_API_KEY", key)
            backend = backend_from_spec(url, model="scaleenv-sim-1", retries=0)
            try:
                if ok:
                    assert (await backend.complete(req, schema, name)).text
                else:
                    with pytest.raises(BackendError, match="401|bearer token"):
                        await backend.complete(req, schema, name)
            finally:
                await backend.aclose()
        nursery.cancel_scope.cancel()
