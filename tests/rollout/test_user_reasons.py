"""The sim user's corrections and refusals reach the log (``MessageSent.reason``), and a
rollout replays to the same events (issue 16 item 7)."""

from __future__ import annotations

from pathlib import Path

from scaleenv._agents.sim.user import CORRECTED_RE
from scaleenv._replay.projection import fold
from scaleenv._store.events.episodes import MessageSent
from scaleenv._store.log import Log

from .conftest import copy_template, roll


def _rolled(template: Path, dest: Path) -> tuple[dict[str, str], list[MessageSent]]:
    path = copy_template(template, dest)
    roll(path, 4)
    with Log.open(path, readonly=True) as log:
        digests = {s: d for s, d in fold(log.read()).stream_digests().items() if s.startswith("episode/")}
        users = [r.event for r in log.read() if isinstance(r.event, MessageSent) and r.event.role == "user"]
    return digests, users


def test_user_reasons_are_logged_and_a_rollout_replays_to_the_same_events(template: Path, tmp_path: Path) -> None:
    a, users = _rolled(template, tmp_path / "a")
    b, _ = _rolled(template, tmp_path / "b")
    assert a and a == b  # same seed, same events
    reasons = [m.reason for m in users]
    assert set(reasons) <= {"", "correct", "refuse_info", "refuse_action"}
    assert "refuse_info" in reasons
    for m in users:  # the reason is the turn's own: a correction reads as one, and so does a refusal
        assert (m.reason == "correct") == bool(CORRECTED_RE.match(m.content)), m
        if m.reason.startswith("refuse"):
            assert m.content.startswith(("No", "I"))
