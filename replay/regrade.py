"""Re-score finished episodes with the current reward code; append a new RewardGiven where it changed.

The reward is a pure function of the episode's final state (folded from the log), the
task's expected final state and required answers, and what the agent said; so
re-grading needs no model and no sandbox. The old RewardGiven stays in the stream (the
log is append-only); the new one follows it, and the projection's ``reward`` is the last.
"""

from __future__ import annotations

from typing import Any

import attrs

from scaleenv._store.events.base import Ref
from scaleenv._store.events.episodes import EpisodeEnded, RewardGiven
from scaleenv._store.log import Log
from scaleenv._store.stream import Stream

from . import checkpoint
from .episode import fold as fold_episode
from .projection import EpisodeView, RunView, TaskView
from .stored import episode_summaries
from scaleenv._model.reward import Score
from scaleenv._store.specs import DomainSpec

from .grading import grade
from scaleenv._streams import episode_stream


@attrs.frozen
class Regrade:
    episode: str
    old_reward: float | None
    new_reward: float
    old_version: str | None
    new_version: str
    reasons: list[str]
    score: Score

    def to_json(self) -> dict[str, Any]:
        return {"episode": self.episode, "old_reward": self.old_reward, "new_reward": self.new_reward,
                "old_version": self.old_version, "new_version": self.new_version, "reasons": self.reasons,
                "diff": self.score.diff[:10]}


def rescore(ep: EpisodeView, task: TaskView, spec: DomainSpec | None = None) -> Score:
    """The current reward code on the episode's final state (as the episode loop scores it)."""
    return grade(task, spec, ep.state or {}, ep.said)


def changes(view: RunView, event_log: Log | None = None) -> tuple[list[Regrade], int]:
    """Every finished episode whose score or reward version differs from its last RewardGiven.

    ``view``: whole episodes (:func:`scaleenv._replay.projection.fold`), or the projection
    (:func:`regrade_view`: episode summaries) with ``event_log``, from which each ended
    episode is then folded whole from its own stream, one at a time (what the agent said
    is not in a summary)."""
    out: list[Regrade] = []
    checked = 0
    for summary in episode_summaries(view.episodes):  # one at a time, without their states
        eid = summary.episode_id
        task = view.tasks.get(summary.task_id)
        if summary.ended is None or task is None or task.expected_final is None:
            continue
        if isinstance(summary, EpisodeView):
            ep = summary
        elif event_log is None:
            raise ValueError("episode summaries hold no conversation: pass the log to fold each episode from its stream")
        else:
            ep = fold_episode((r.event for r in event_log.read_stream(episode_stream(eid))), task.initial_state, eid)
        checked += 1
        domain = view.domains.get(task.slot)
        new = rescore(ep, task, domain.spec if domain else None)
        old = summary.reward
        reasons: list[str] = []
        if old is None:
            reasons.append("no reward recorded")
        else:
            if old.reward != new.reward:
                reasons.append(f"reward {old.reward:g} -> {new.reward:g}")
            if old.reward_version != new.version:
                reasons.append(f"reward version {old.reward_version} -> {new.version}")
            if old.breakdown != new.breakdown:
                keys = sorted(k for k in set(old.breakdown) | set(new.breakdown)
                              if old.breakdown.get(k) != new.breakdown.get(k))
                reasons.append("breakdown " + ", ".join(f"{k} {old.breakdown.get(k)} -> {new.breakdown.get(k)}" for k in keys))
        if reasons:
            out.append(Regrade(episode=eid, old_reward=old.reward if old else None, new_reward=new.reward,
                               old_version=old.reward_version if old else None, new_version=new.version,
                               reasons=reasons, score=new))
    out.sort(key=lambda g: g.episode)
    return out, checked


async def append_rewards(event_log: Log, regrades: list[Regrade]) -> int:
    """Append one RewardGiven per regrade, after the episode's recorded events."""
    if not regrades:
        return 0
    async with event_log.writer() as w:
        for g in regrades:
            sid = episode_stream(g.episode)
            recorded = list(event_log.read_stream(sid))
            ended = next((r for r in reversed(recorded) if isinstance(r.event, EpisodeEnded)), None)
            stream = Stream(w, sid, recorded=recorded, mode="append")
            s = g.score
            await stream.emit(
                RewardGiven(reward=s.reward, breakdown=s.breakdown, diff=s.diff[:50], reward_version=s.version),
                actor="grader", cause=ended.ref if ended else Ref(sid, len(recorded) - 1),
            )
    return len(regrades)


def regrade_view(event_log: Log) -> RunView:
    """What :func:`changes` reads: the log's projection (its newest checkpoint and what
    follows; episodes and task states read when asked for), not a fold of the whole log."""
    return checkpoint.project(event_log, write=False, digests=False)
