"""What a conversation costs the log: LlmCalled stored relative to earlier calls (log
format 2) against stored whole (format 1), by conversation length.

For each length T, one episode-like stream through the real port into a real LMDB log:
T turns, each a policy call (the conversation grows by the user's message, the
assistant's tool call and the tool's result, then the assistant's reply) and a
simulated-user call (the role-flipped chat of ``agents/rollout/user_chat.py``), message
sizes like the sim's. The backend answers valid JSON at once (no model compute).

Printed per T: stored bytes per call (the records as on disk), the bytes the same calls
take stored whole (each resolved call re-encoded by the same codec: what format 1 wrote),
their ratio, and the CPU the log spends per call on each form (record encoding, the
stream digest's bytes and hash), measured on the same events in this process.
``--tools N``: the policy is offered N tools (function schemas shaped like a synthesized
tool's), which the log records once per stream since format 3 (stored whole, every call
would carry them).

    .venv/bin/python bench/llm_log_size.py [--turns 2,8,32,64] [--tools 20] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from scaleenv._agents.llm.port import Completion, Llm, LlmRequest
from scaleenv._agents.rollout.answers import PolicyTurn, UserTurn
from scaleenv._agents.llm.user_chat import user_request
from scaleenv._store import Log, Stream
from scaleenv._store.events.llm import CallResolver, LlmCalled
from scaleenv._store.record import Record, digest_bytes, frame

SYSTEM = ("You are the support agent of a ticketing company. Use the tools to look records up and change "
          "them; never guess an id; confirm before cancelling. " * 6)  # ~1 kB, like the sim's policy prompt
CONTEXT = {"instruction": "You want to cancel the tickets you bought for the Friday show and get a refund "
                          "to the card you paid with.",
           "user_facts": {"email": "dana.ortiz@example.com", "order_id": "ord_58213", "show": "Friday 8pm"},
           "persona": "polite, in a hurry", "max_turns": 64}


class Answers:
    """Valid answers at once: the port, the stream and the log do all the work measured."""

    name = "fixed"
    model = "fixed-1"

    async def complete(self, request: LlmRequest, json_schema: dict[str, Any], schema_name: str) -> Completion:
        await trio.lowlevel.checkpoint()
        if schema_name == "UserTurn":
            return Completion(text='{"message": "Sure, my order id is ord_58213.", "done": false, "gave_up": false}')
        return Completion(text='{"content": "I found your order ord_58213 for the Friday show; cancelling it now.", '
                               '"tool_calls": []}')

    async def aclose(self) -> None:
        return None


def offered_tools(count: int) -> tuple[dict[str, Any], ...] | None:
    """``count`` function tools the size of a synthesized tool's schema (~0.5 kB each)."""
    if not count:
        return None
    return tuple({"type": "function", "function": {
        "name": f"update_booking_{i}", "description": f"Change booking field {i} of an order. Returns: order_id, status.",
        "parameters": {"type": "object", "additionalProperties": False, "required": ["order_id", "value"],
                       "properties": {"order_id": {"type": "string", "description": "the order's id"},
                                      "value": {"type": "string", "description": "the new value"},
                                      "note": {"type": "string", "description": "why it changes"}}}}}
                 for i in range(count))


async def one_stream(log: Log, turns: int, tools: int = 0) -> None:
    llm = Llm(Answers(), run_seed=1)
    offered = offered_tools(tools)
    policy: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    visible: list[dict[str, str]] = []
    async with log.writer() as w:
        s = Stream(w, f"episode/t{turns}")
        for t in range(turns):
            said = (await llm.generate(s, user_request("Play the customer.", CONTEXT, visible), UserTurn)).value.message
            visible.append({"role": "user", "content": said})
            policy += [{"role": "user", "content": said},
                       {"role": "assistant", "content": "", "tool_calls": [
                           {"id": f"call_{t}", "type": "function",
                            "function": {"name": "find_order", "arguments": '{"order_id": "ord_58213"}'}}]},
                       {"role": "tool", "tool_call_id": f"call_{t}",
                        "content": json.dumps({"order_id": "ord_58213", "show": "Friday 8pm", "seats": ["F12", "F13"],
                                               "status": "paid", "amount": 84.0, "card": "visa-4242"})}]
            reply = (await llm.generate(s, LlmRequest(role="policy", messages=list(policy), context={}, tools=offered),
                                        PolicyTurn)).value.content
            policy.append({"role": "assistant", "content": reply})
            visible.append({"role": "assistant", "content": reply})


def cpu_per_call(log: Log, records: list[Record]) -> float:
    """Microseconds per call of what the log does with an event: encode, frame, digest."""
    start = time.perf_counter()
    rounds = max(1, 2000 // len(records))
    for _ in range(rounds):
        for r in records:
            frame(log.codec.encode_body(r.seq, r.stream, r.n, r.cause, r.actor, r.wall_ns, r.event))
            hashlib.blake2b(digest_bytes(r.stream, r.n, r.cause, r.actor, r.event), digest_size=32).digest()
    return (time.perf_counter() - start) / (rounds * len(records)) * 1e6


def measure(turns: int, work: Path, tools: int = 0) -> dict[str, Any]:
    path = work / f"log{turns}"
    with Log.open(path, sync=False) as log:
        trio.run(one_stream, log, turns, tools)
        records = [r for r in log.read() if isinstance(r.event, LlmCalled)]
        stored = [len(v) for chunk in log._raw_chunks(1) for s, v in chunk
                  if log.codec.decode(v, s).type == "llm.called"]
        resolver = CallResolver()
        whole = [r.__class__(seq=r.seq, stream=r.stream, n=r.n, cause=r.cause, actor=r.actor, wall_ns=r.wall_ns,
                             event=resolver.resolve(r.stream, r.n, r.event)) for r in records]
        whole_bytes = [len(frame(log.codec.encode_body(r.seq, r.stream, r.n, r.cause, r.actor, r.wall_ns, r.event)))
                       for r in whole]
        return {"turns": turns, "calls": len(records), "tools": tools,
                "stored_bytes_per_call": round(sum(stored) / len(stored)),
                "whole_bytes_per_call": round(sum(whole_bytes) / len(whole_bytes)),
                "ratio": round(sum(whole_bytes) / sum(stored), 2),
                "stored_us_per_call": round(cpu_per_call(log, records), 1),
                "whole_us_per_call": round(cpu_per_call(log, whole), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", default="2,8,32,64", help="conversation lengths (turns), comma-separated")
    parser.add_argument("--tools", type=int, default=0, help="tools offered to the policy on every call (default 0)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    args = parser.parse_args()
    rows = []
    print(f"{'turns':>5} {'calls':>5} {'stored B/call':>13} {'whole B/call':>12} {'whole/stored':>12} "
          f"{'stored us/call':>14} {'whole us/call':>13}", file=sys.stderr if args.json else sys.stdout)
    with tempfile.TemporaryDirectory(prefix="scaleenv-bench-llmsize-") as tmp:
        for t in (int(x) for x in args.turns.split(",")):
            r = measure(t, Path(tmp), args.tools)
            rows.append(r)
            print(f"{r['turns']:>5} {r['calls']:>5} {r['stored_bytes_per_call']:>13} {r['whole_bytes_per_call']:>12} "
                  f"{r['ratio']:>12} {r['stored_us_per_call']:>14} {r['whole_us_per_call']:>13}",
                  file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
