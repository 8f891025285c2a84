"""A vLLM-shaped OpenAI server: an ASGI app served by hypercorn on trio (another HTTP stack).

It answers as vLLM >= 0.12 does: the constraint comes as ``structured_outputs: {"json":
schema}``; responses carry vLLM's extra fields (``stop_reason``, ``reasoning_content``,
``prompt_logprobs``, ``kv_transfer_params``, ``tool_calls: []``); ``logprobs: true``
gives per-token log-probabilities, ``return_token_ids: true`` the token ids (``token_ids``
per choice, ``prompt_token_ids`` at the top; in a stream, each chunk's delta tokens);
errors use vLLM's ``{"error": {"message", "type", "param", "code"}}``; streams are
chunked server-sent events. Answers come from the sim, so a test knows what to expect.
Its "tokenizer" cuts text into 4-character pieces; a piece's id is a hash of it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import attrs

from scaleenv._agents.llm.tool_calls import text_to_message
from scaleenv._agents.sim import SimBackend

MODEL = "Qwen/Qwen3-0.6B"


def pieces(text: str) -> list[str]:
    return [text[i:i + 4] for i in range(0, len(text), 4)]


def token_id(piece: str) -> int:
    return int.from_bytes(hashlib.blake2b(piece.encode(), digest_size=4).digest(), "big") % 151_000


def logprob(piece: str) -> float:
    return -round(0.01 * (token_id(piece) % 97), 2)


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else "output"


@attrs.define
class VllmShaped:
    sim: SimBackend = attrs.field(factory=SimBackend)
    requests: list[dict[str, Any]] = attrs.field(factory=list)
    headers: list[dict[str, str]] = attrs.field(factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
            return await self._json(send, 404, {"error": {"message": f"Not Found: {scope['path']}", "type": "NotFoundError",
                                                          "param": None, "code": 404}})
        request = json.loads(body)
        self.requests.append(request)
        self.headers.append(headers)
        if request.get("model") != MODEL:
            return await self._json(send, 404, {"error": {
                "message": f"The model `{request.get('model')}` does not exist.", "type": "NotFoundError",
                "param": "model", "code": 404}})
        schema = (request.get("structured_outputs") or {}).get("json")
        tools = request.get("tools") or None
        text, prompt_tokens, completion_tokens, _ = self.sim.answer(
            request["messages"], schema or {}, _schema_name(schema or {}), request.get("seed", 0), tools,
            role=headers.get("x-scaleenv-role"), constrained=schema is not None)
        content, calls = text_to_message(text) if tools else (text, None)
        spoken = content or ""
        with_ids = request.get("return_token_ids") is True
        with_logprobs = request.get("logprobs") is True
        prompt_ids = [token_id(p) for p in pieces(json.dumps(request["messages"]))] if with_ids else None
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
                 "completion_tokens": completion_tokens, "prompt_tokens_details": None}
        if request.get("stream"):
            return await self._stream(send, spoken, calls, usage, with_ids, with_logprobs, prompt_ids)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None, "annotations": None, "audio": None,
                        "function_call": None, "tool_calls": calls or [], "reasoning_content": None},
            "logprobs": self._logprobs(spoken) if with_logprobs else None,
            "finish_reason": "tool_calls" if calls else "stop", "stop_reason": None,
        }
        if with_ids:
            choice["token_ids"] = [token_id(p) for p in pieces(spoken)]
        await self._json(send, 200, {
            "id": "chatcmpl-vllm-1", "object": "chat.completion", "created": 1, "model": MODEL, "choices": [choice],
            "service_tier": None, "system_fingerprint": None, "usage": usage, "prompt_logprobs": None,
            "prompt_token_ids": prompt_ids, "kv_transfer_params": None,
        })

    @staticmethod
    def _logprobs(text: str) -> dict[str, Any]:
        return {"content": [{"token": p, "logprob": logprob(p), "bytes": list(p.encode()), "top_logprobs": []}
                            for p in pieces(text)]}

    async def _json(self, send: Any, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def _stream(self, send: Any, content: str, calls: list[dict[str, Any]] | None, usage: dict[str, Any],
                      with_ids: bool, with_logprobs: bool, prompt_ids: list[int] | None) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})

        async def event(choice: dict[str, Any] | None, **top: Any) -> None:
            chunk = {"id": "chatcmpl-vllm-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                     "choices": [choice] if choice else [], **top}
            await send({"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(), "more_body": True})

        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        await event(first, **({"prompt_token_ids": prompt_ids} if with_ids else {}))
        for p in pieces(content):
            choice: dict[str, Any] = {"index": 0, "delta": {"content": p}, "finish_reason": None,
                                      "logprobs": self._logprobs(p) if with_logprobs else None}
            if with_ids:
                choice["token_ids"] = [token_id(p)]
            await event(choice)
        for k, call in enumerate(calls or ()):
            await event({"index": 0, "delta": {"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                                                "function": {"name": call["function"]["name"]}}]}})
            await event({"index": 0, "delta": {"tool_calls": [{"index": k, "function": {
                "arguments": call["function"]["arguments"]}}]}})
        await event({"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else "stop", "stop_reason": None})
        await event(None, usage=usage)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
