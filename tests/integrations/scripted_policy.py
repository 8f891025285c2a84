"""A scripted policy behind the OpenAI chat-completions API (a real HTTP server on a
loopback port, stdlib only, so it runs in any of the test environments): its n-th
assistant turn of a conversation is the n-th entry of its script (a tool call, or a
text reply), counted from the request's own messages, so it keeps no state and answers
a repeated request alike. Past the script's end it says ``after``. Plain JSON or
server-sent events, as the request asks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Step = dict[str, Any] | str  # {"name", "arguments"} tool call, or a text reply


def _message(step: Step, n: int) -> dict[str, Any]:
    if isinstance(step, str):
        return {"role": "assistant", "content": step}
    call = {"id": f"call_{n}", "type": "function",
            "function": {"name": step["name"], "arguments": json.dumps(step["arguments"])}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


class ScriptedPolicy:
    def __init__(self, script: list[Step], after: str = "Is there anything else I can do?") -> None:
        self.script = script
        self.after = after
        self.requests: list[dict[str, Any]] = []

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        n = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        return _message(self.script[n] if n < len(self.script) else self.after, n)


def _handler(policy: ScriptedPolicy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # /v1/models
            self._send(200, json.dumps({"object": "list", "data": [{"id": "scripted", "object": "model"}]}).encode(),
                       "application/json")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, b'{"error": {"message": "only /v1/chat/completions"}}', "application/json")
                return
            msg = policy.answer(body)
            finish = "tool_calls" if msg.get("tool_calls") else "stop"
            usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            base = {"id": f"chatcmpl-{len(policy.requests)}", "created": 0, "model": body.get("model", "scripted")}
            if not body.get("stream"):
                out = {**base, "object": "chat.completion", "usage": usage,
                       "choices": [{"index": 0, "message": msg, "finish_reason": finish}]}
                self._send(200, json.dumps(out).encode(), "application/json")
                return
            delta = dict(msg)
            if delta.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(delta["tool_calls"])]
            chunks = [{**base, "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                      {**base, "object": "chat.completion.chunk", "usage": usage,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}]
            data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
            self._send(200, data, "text/event-stream")

    return Handler


@contextmanager
def serve_policy(policy: ScriptedPolicy) -> Iterator[str]:
    """``policy`` served on a free loopback port for the block; its base URL (``.../v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(policy))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(60)
