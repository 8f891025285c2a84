"""An episode as a sequence of steps: the conversation, the state and the diff at step K.

Steps are the episode stream's events after ``EpisodeStarted`` except LLM call events
(``llm.called``/``llm.exhausted``), which are attached to the step they led to. Step 0
is the episode's start (the task's initial state); step K is after the K-th step event.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import msgspec

from scaleenv._store.events.episodes import EpisodeEnded, EpisodeStarted, MessageSent, RewardGiven, ToolExecuted
from scaleenv._store.events.llm import LlmCalled, LlmExhausted
from scaleenv._store.log import Log
from scaleenv._store.record import Record
from scaleenv._store.specs import DbState

from .episode_state import task_view
from .snapshots import Seek, seek
from .projection import TaskView
from scaleenv._model.state import compute_delta
from scaleenv._streams import EPISODE, episode_id_of
from scaleenv._streams import episode_stream as stream_of


class UnknownEpisode(LookupError):
    """No such episode stream; ``known`` lists a few that exist."""

    def __init__(self, given: str, known: list[str]) -> None:
        super().__init__(given, known)
        self.given = given
        self.known = known

    def __str__(self) -> str:
        some = ", ".join(self.known) if self.known else "(the log holds no episodes)"
        return f"no episode {self.given!r} in the log; some that exist: {some}"


def resolve(log: Log, given: str) -> str:
    """The stream id of episode ``given`` (``d00/t003/g1`` or ``episode/d00/t003/g1``)."""
    stream = stream_of(given.strip().strip("/"))
    if log.stream_length(stream) > 0:
        return stream
    known = [episode_id_of(s) for s, _ in log.streams(EPISODE)]
    raise UnknownEpisode(given, known[:8])


@attrs.frozen
class Step:
    index: int
    n: int
    record: Record
    llm_calls: tuple[Record, ...] = ()


def _short(v: Any, limit: int = 160) -> str:
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def step_json(step: Step, llm_calls: bool = False) -> dict[str, Any]:
    e = step.record.event
    out: dict[str, Any] = {"step": step.index, "n": step.n, "type": step.record.type, "actor": step.record.actor}
    if isinstance(e, MessageSent):
        out.update(role=e.role, content=e.content,
                   tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in e.tool_calls])
    elif isinstance(e, ToolExecuted):
        out.update(call_id=e.call_id, tool=e.tool, args=e.args, ok=e.ok, result=e.result, error_kind=e.error_kind,
                   error=e.error, delta=[msgspec.to_builtins(c) for c in e.delta])
    elif isinstance(e, EpisodeEnded | RewardGiven):
        out.update(msgspec.to_builtins(e))
        out.pop("type", None)
        out["type"] = step.record.type
    if llm_calls:
        out["llm_calls"] = [_llm_json(r) for r in step.llm_calls]
    return out


def _llm_json(r: Record) -> dict[str, Any]:
    e = r.event
    if isinstance(e, LlmCalled):
        return {"n": r.n, "role": e.role, "attempt": e.attempt, "ok": e.error is None, "error": e.error}
    assert isinstance(e, LlmExhausted)
    return {"n": r.n, "role": e.role, "exhausted": True, "attempts": e.attempts, "error": e.last_error}


def step_text(step: Step, llm_calls: bool = False) -> list[str]:
    e = step.record.event
    head = f"[{step.index}] "
    lines: list[str] = []
    if llm_calls:
        for c in step.llm_calls:
            j = _llm_json(c)
            lines.append(f"    (llm n={j['n']} role={j['role']} attempt={j.get('attempt', j.get('attempts'))}"
                         + ("" if j.get("ok") else f" REJECTED: {_short(j.get('error'), 80)}") + ")")
    if isinstance(e, MessageSent):
        text = e.content if e.content else "(no text)"
        lines.append(f"{head}{e.role}: {_short(text, 300)}")
        for c in e.tool_calls:
            lines.append(f"      -> call {c.name}({_short(c.arguments, 200)})  id={c.id}")
    elif isinstance(e, ToolExecuted):
        if e.ok:
            lines.append(f"{head}tool {e.tool}({_short(e.args, 200)}) -> {_short(e.result, 200)}"
                         + (f"  [{len(e.delta)} record(s) changed]" if e.delta else ""))
        else:
            lines.append(f"{head}tool {e.tool}({_short(e.args, 200)}) ERROR {e.error_kind}: {_short(e.error, 200)}")
    elif isinstance(e, EpisodeEnded):
        lines.append(f"{head}episode ended: {e.reason} (fault {e.fault}), {e.turns} turns, {e.tool_calls} tool calls"
                     + (f": {e.detail}" if e.detail else ""))
    elif isinstance(e, RewardGiven):
        lines.append(f"{head}reward {e.reward:g} ({e.reward_version}) {_short(e.breakdown)}")
        lines.extend(f"      {d}" for d in e.diff[:10])
    else:
        lines.append(f"{head}{step.record.type}")
    return lines


@attrs.define
class EpisodeReplay:
    """One episode's records, split into steps, with state lookups (snapshot-aware)."""

    log: Log
    stream: str
    records: list[Record]
    steps: list[Step]
    task: TaskView | None
    started: EpisodeStarted | None
    use_snapshots: bool = True

    @classmethod
    def load(cls, log: Log, given: str, *, use_snapshots: bool = True) -> EpisodeReplay:
        stream = resolve(log, given)
        records = list(log.read_stream(stream))
        started = records[0].event if records and isinstance(records[0].event, EpisodeStarted) else None
        steps: list[Step] = []
        pending: list[Record] = []
        for r in records:
            if isinstance(r.event, EpisodeStarted):
                continue
            if isinstance(r.event, LlmCalled | LlmExhausted):
                pending.append(r)
                continue
            steps.append(Step(index=len(steps) + 1, n=r.n, record=r, llm_calls=tuple(pending)))
            pending = []
        task_id = started.task_id if started else "/".join(episode_id_of(stream).split("/")[:-1])
        return cls(log=log, stream=stream, records=records, steps=steps, task=task_view(log, task_id),
                   started=started, use_snapshots=use_snapshots)

    @property
    def episode_id(self) -> str:
        return episode_id_of(self.stream)

    @property
    def last_step(self) -> int:
        return len(self.steps)

    def clamp(self, k: int) -> int:
        return max(0, min(k, self.last_step))

    def position(self, k: int) -> int:
        """How many stream records step ``k`` covers (the fold position)."""
        k = self.clamp(k)
        if k == 0:
            return 1 if self.started is not None else 0
        return self.steps[k - 1].n + 1

    def seek(self, k: int) -> Seek:
        return seek(self.log, self.stream, self.position(k), task=self.task, use_snapshots=self.use_snapshots)

    def marks(self) -> dict[tuple[str, str], str]:
        if self.task is None:
            return {}
        out = {(t, k): "needed" for t, k in self.task.needed}
        out.update({(t, k): "distractor" for t, k in self.task.distractors})
        return out

    def at(self, k: int, *, llm_calls: bool = False) -> dict[str, Any]:
        """Everything about step ``k``: conversation so far, state, diff from ``k-1``."""
        k = self.clamp(k)
        now = self.seek(k)
        before = self.seek(k - 1).state if k > 0 else now.state
        delta = compute_delta(before, now.state) if k > 0 else []
        marks = self.marks()
        return {
            "episode": self.episode_id,
            "stream": self.stream,
            "task_id": self.task.task_id if self.task else None,
            "domain": self.started.domain if self.started else None,
            "attempt": self.started.attempt if self.started else None,
            "step": k,
            "steps": self.last_step,
            "n": now.n,
            "conversation": [step_json(s, llm_calls) for s in self.steps[:k]],
            "state": now.state,
            "state_digest_chain": now.digest,
            "marks": [{"table": t, "key": key, "mark": m} for (t, key), m in sorted(marks.items())],
            "diff": [{"table": c.table, "key": c.key, "before": c.before, "after": c.after,
                      "mark": marks.get((c.table, c.key))} for c in delta],
            "events_touched": now.touched,
            "snapshot_n": now.snapshot_n,
        }


def render(view: dict[str, Any], replay: EpisodeReplay, *, llm_calls: bool = False) -> str:
    """Human-readable text of :meth:`EpisodeReplay.at`."""
    k = view["step"]
    lines = [f"episode {view['episode']}  (task {view['task_id']}, domain {view['domain']}, attempt {view['attempt']})",
             f"step {k}/{view['steps']}  (stream position n={view['n']}; {view['events_touched']} events folded"
             + (f" from the snapshot at n={view['snapshot_n']})" if view["snapshot_n"] is not None else ")"), "",
             "conversation:"]
    if k == 0:
        lines.append("  (nothing yet: the episode has just started)")
    for step in replay.steps[:k]:
        lines.extend("  " + s for s in step_text(step, llm_calls))
    state: DbState = view["state"]
    marks = {(m["table"], m["key"]): m["mark"] for m in view["marks"]}
    changed = {(c["table"], c["key"]) for c in view["diff"]}
    total = sum(len(rows) for rows in state.values())
    lines += ["", f"state at step {k}: {total} records in {len(state)} tables"
              f" ({sum(m == 'distractor' and key in state.get(t, {}) for (t, key), m in marks.items())} distractors marked)"]
    for table in sorted(state):
        lines.append(f"  {table}")
        for key in sorted(state[table]):
            tag = marks.get((table, key))
            flag = ("*" if (table, key) in changed else " ") + (f" [{tag}]" if tag else "")
            lines.append(f"   {flag} {key}: {_short(state[table][key], 200)}")
    lines += ["", f"diff from step {k - 1}:" if k > 0 else "diff: (step 0 has no previous step)"]
    if k > 0 and not view["diff"]:
        lines.append("  no record changed")
    for c in view["diff"]:
        tag = f" [{c['mark']}]" if c["mark"] else ""
        if c["before"] is None:
            lines.append(f"  + {c['table']}[{c['key']}]{tag}: created {_short(c['after'])}")
        elif c["after"] is None:
            lines.append(f"  - {c['table']}[{c['key']}]{tag}: deleted (was {_short(c['before'])})")
        else:
            for field in sorted(set(c["before"]) | set(c["after"])):
                old, new = c["before"].get(field), c["after"].get(field)
                if old != new:
                    lines.append(f"  ~ {c['table']}[{c['key']}].{field}{tag}: {old!r} -> {new!r}")
    return "\n".join(lines) + "\n"
