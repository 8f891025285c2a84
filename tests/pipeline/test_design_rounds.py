"""A rejected outline or tool group goes back to the architect whole, beside its problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from scaleenv._agents.llm.port import parse_rendered
from scaleenv._store.events.llm import CallResolver, LlmCalled
from scaleenv._store.events.synth import DomainOutlined, ToolsDesigned
from scaleenv._store.log import Log


def test_a_redesign_round_sees_the_rejected_answer_whole(synth8: Path) -> None:
    resolver = CallResolver()
    last_context: dict[str, dict[str, Any]] = {}  # stream -> the context of its latest architect call
    answers: dict[tuple[str, str], Any] = {}      # (stream, outline | group) -> the latest answer
    checked = 0
    with Log.open(synth8, readonly=True) as log:
        for r in log.read():
            ev = r.event
            if isinstance(ev, LlmCalled):
                call = resolver.resolve(r.stream, r.n, ev)
                if call.role == "architect":
                    last_context[r.stream] = parse_rendered(call.messages)
            elif isinstance(ev, (DomainOutlined, ToolsDesigned)):
                key = (r.stream, "outline" if isinstance(ev, DomainOutlined) else ev.group)
                sent = last_context[r.stream]
                if ev.round > 0:
                    assert sent["feedback"], (key, ev.round)
                    assert sent["previous"] == answers[key], key
                    checked += 1
                else:
                    assert "previous" not in sent
                answers[key] = msgspec.to_builtins(ev.outline if isinstance(ev, DomainOutlined) else ev.tools)
    assert checked >= 1
