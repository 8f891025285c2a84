"""``scaleenv serve`` describes itself (``/openapi.json``, ``/docs``) and keeps to it (issue 18).

Every answer of a played episode is validated against the schema the server publishes
for it (jsonschema, the spec's own components); request bodies are decoded into typed
Structs, so a misspelt field is a 400 naming it and never a turn; names mean one thing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2 as httpx
import jsonschema
import trio

from scaleenv._serve.environments import open_environments
from scaleenv._serve.http import OPERATIONS, serve_environments

from .conftest import OPTIONS


class Checked:
    """An HTTP client that validates every JSON answer against the published OpenAPI schema."""

    def __init__(self, client: httpx.AsyncClient, spec: dict[str, Any]) -> None:
        self.client = client
        self.spec = spec
        self.seen: set[tuple[str, str, int]] = set()

    def _template(self, method: str, path: str) -> str:
        rest = path.removeprefix("/v1/episodes/")
        if path.startswith("/v1/episodes/"):
            action = rest.rpartition("/")[2]
            return "/v1/episodes/{episode_id}" + (f"/{action}" if action in ("step", "tool", "message", "end") else "")
        if path.startswith("/v1/tasks/"):
            return "/v1/tasks/{task_id}"
        if path.startswith("/v1/domains/"):
            return "/v1/domains/{domain}/tasks" if path.endswith("/tasks") else "/v1/domains/{domain}"
        return path

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        r = await self.client.request(method, path, **kw)
        template = self._template(method, path)
        op = self.spec["paths"][template][method.lower()]
        assert str(r.status_code) in op["responses"], (method, path, r.status_code, r.text)
        schema = op["responses"][str(r.status_code)]["content"]["application/json"]["schema"]
        jsonschema.validate(r.json(), {**schema, "components": self.spec["components"]})
        self.seen.add((method, template, r.status_code))
        return r


async def test_openapi_describes_every_route_and_every_answer_fits_it(run_log: Path) -> None:
    async with open_environments(str(run_log), OPTIONS) as envs:
        task_id = envs.kept_tasks()[0]
        task = envs.view.tasks[task_id]
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_environments, envs, "127.0.0.1", 0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as raw:
                spec = (await raw.get("/openapi.json")).json()
                assert spec["openapi"] == "3.1.0"
                jsonschema.Draft202012Validator.check_schema({"$defs": spec["components"]["schemas"]})
                assert {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops} == {
                    (op.method.upper(), op.path) for op in OPERATIONS}
                docs = await raw.get("/docs")
                assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
                assert "/v1/episodes/{episode_id}/step" in docs.text and "<script" not in docs.text
                assert "src=" not in docs.text  # nothing fetched from anywhere (no CDN)

                c = Checked(raw, spec)
                await c.request("GET", "/v1/health")
                await c.request("GET", "/v1/domains")
                await c.request("GET", f"/v1/domains/{task.slot}")
                await c.request("GET", f"/v1/domains/{task.slot}/tasks")
                await c.request("GET", "/v1/tasks")
                await c.request("GET", f"/v1/tasks/{task_id}")
                assert (await c.request("GET", "/v1/tasks/d99/t999")).status_code == 404
                opened = (await c.request("POST", "/v1/episodes", json={"task_id": task_id})).json()
                eid = opened["episode_id"]
                before = len(list(envs.ctx.log.read_stream(f"episode/{opened['log_episode_id']}")))

                # a body that is not a turn is a 400 naming what is wrong, and records nothing
                for body, named in (({"foo": 1}, "unknown field `foo`"), ({}, "'content' and/or 'tool_calls'"),
                                    ({"content": 5}, "`$.content`"),
                                    ({"tool_calls": [{"function": {"name": 3}}]}, "`$.tool_calls[0].function.name`"),
                                    ({"tool_calls": [{"id": "c"}]}, "tool_calls[0]: give either"),
                                    ({"content": "hi", "role": "user"}, "`$.role`")):
                    r = await c.request("POST", f"/v1/episodes/{eid}/step", json=body)
                    assert r.status_code == 400 and named in r.json()["error"]["message"], (body, r.text)
                r = await c.request("POST", f"/v1/episodes/{eid}/tool", json={"name": "x", "argument": {}})
                assert r.status_code == 400 and "unknown field `argument`" in r.json()["error"]["message"]
                r = await c.request("POST", "/v1/episodes", json={"task": task_id})
                assert r.status_code == 400 and "task" in r.json()["error"]["message"]
                r = await c.request("POST", f"/v1/episodes/{eid}/end", json={"reason": "x"})
                assert r.status_code == 400
                assert len(list(envs.ctx.log.read_stream(f"episode/{opened['log_episode_id']}"))) == before
                status = (await c.request("GET", f"/v1/episodes/{eid}")).json()
                assert not status["ended"] and status["turns"] == 0

                # the golden play; OpenAI's own message dump is a valid step body
                for i, step in enumerate(task.golden.steps):
                    call = {"id": f"c{i}", "type": "function",
                            "function": {"name": step.tool, "arguments": json.dumps(step.args)}}
                    if i % 2:
                        r = await c.request("POST", f"/v1/episodes/{eid}/tool", json={"name": step.tool, "arguments": step.args})
                        out = r.json()
                        # `result` is the tool's, inside tool_result; the episode's is `outcome`
                        assert out["tool_result"]["ok"] and "result" in out["tool_result"] and "result" not in out
                    else:
                        message = {"role": "assistant", "content": None, "refusal": None, "annotations": [],
                                   "audio": None, "function_call": None, "tool_calls": [call]}
                        r = await c.request("POST", f"/v1/episodes/{eid}/step", json=message)
                        assert r.json()["tool_results"][0]["ok"] and r.json()["outcome"] is None
                r = await c.request("POST", f"/v1/episodes/{eid}/tool", json={"name": "no_such_tool"})
                assert r.status_code == 404 and r.json()["tool_result"]["error_kind"] == "unknown_tool"
                answers = " ".join(str(a) for a in task.golden.expected_answers)
                r = await c.request("POST", f"/v1/episodes/{eid}/message", json={"content": f"All done. {answers}"})
                end = (await c.request("POST", f"/v1/episodes/{eid}/end")).json()
                assert end["episode_id"] == eid and end["reward"] == 1.0
                r = await c.request("POST", f"/v1/episodes/{eid}/message", json={"content": "still there?"})
                assert r.status_code == 409 and r.json()["outcome"]["reward"] == 1.0 and r.json()["ended"] is True
                assert (await c.request("GET", f"/v1/episodes/{eid}")).json()["outcome"]["reason"] == end["reason"]
                assert (await c.request("POST", f"/v1/episodes/{eid}-x/end")).status_code == 404
            # every operation was exercised and validated
            assert {t for _, t, s in c.seen if s == 200} == {op.path for op in OPERATIONS}
            nursery.cancel_scope.cancel()
