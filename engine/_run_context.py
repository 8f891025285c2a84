"""What every agent of a run shares: the log, the LLM port, the sandbox, the seed, limits.

``ctx.stream(id)`` hands an agent its stream. A stream that the log already holds is
resumed: the agent runs again from the top, deterministically, its events are checked
against the recorded ones (and recorded LLM outputs are reused) until it passes the
end of what was recorded, and only then appends. In "verify" mode (``scaleenv rerun``)
nothing is appended and every event is compared against a reference log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import attrs
import trio

from scaleenv._agents.llm.port import Llm
from scaleenv._model.integrity import Constraints, constraints_of
from scaleenv._store.log import Log
from scaleenv._config import RunConfig
from scaleenv._store.specs import DomainSpec
from scaleenv._store.stream import AckMode, Divergence, Stream

from ._errors import leaf_exceptions

from ._progress import Progress


CONSTRAINTS_KEPT = 256
"""Domains whose integrity constraints a run keeps built (the most recently used)."""


@attrs.define
class RunContext:
    log: Log
    writer: Any
    llm: Llm
    sandbox: Any
    config: RunConfig
    agents: trio.CapacityLimiter
    progress: Progress = attrs.field(factory=Progress)
    mode: Literal["append", "verify"] = "append"
    reference: Log | None = None
    # verify mode: the first divergence of each stream, and every stream an agent ran.
    divergences: list[Divergence] = attrs.field(factory=list)
    streams_run: list[Stream] = attrs.field(factory=list)
    # True while an agents.rollout.served.Environments serves this run (one at a time: a
    # second would take the first one's live episodes for a killed server's orphans).
    served: bool = False
    memo: dict[str, Any] = attrs.field(factory=dict)
    checkpoint_every: int = 0
    """Store a projection checkpoint after every this many finished rollouts (0: only at stage
    boundaries; see ``scaleenv._replay.checkpoint``)."""
    """What agents keep for the whole run under their own names (e.g. the tools offered to
    each domain's episodes); it lives and dies with the run."""

    @property
    def seed(self) -> int:
        return self.config.seed

    def constraints(self, slot: str, spec: DomainSpec) -> Constraints:
        """The integrity constraints of domain ``slot``'s schema ``spec``, which every sandbox
        session opened for its tools enforces: built once per domain and kept while in use
        (built again for another spec object, e.g. after stage 1 rewrote the schema, or once
        :data:`CONSTRAINTS_KEPT` other domains were used since: a run of many domains keeps
        those of the domains in flight, not one per domain finished)."""
        cache: dict[str, tuple[DomainSpec, Constraints]] = self.memo.setdefault("integrity.constraints", {})
        hit = cache.pop(slot, None)
        if hit is None or hit[0] is not spec:
            hit = (spec, constraints_of(spec))
        cache[slot] = hit  # the most recently used last: the oldest goes first past the bound
        if len(cache) > CONSTRAINTS_KEPT:
            del cache[next(iter(cache))]
        return hit[1]

    def stream(self, stream_id: str, *, ack: AckMode = "each") -> Stream:
        """The stream ``stream_id``: resumed if the log holds some of it, verified in verify mode.

        ``ack="deferred"``: emits do not wait for their commits; the agent must
        ``await stream.flush()`` before it counts as done (see :mod:`scaleenv._store.stream`).
        """
        source = self.reference if self.reference is not None else self.log
        recorded = list(source.read_stream(stream_id))
        if self.mode == "verify":
            stream = Stream(None, stream_id, recorded=recorded, mode="verify")
            self.streams_run.append(stream)
            return stream
        return Stream(self.writer, stream_id, recorded=recorded, mode="resume" if recorded else "append", ack=ack)

    async def guarded(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run one agent; in verify mode a divergence is recorded (the others go on)."""
        if self.mode != "verify":
            return await fn(*args)
        try:
            return await fn(*args)
        except (Divergence, BaseExceptionGroup) as exc:
            leaves = leaf_exceptions(exc)
            found = [e for e in leaves if isinstance(e, Divergence)]
            if not found or len(found) != len(leaves):
                raise
            self.divergences.extend(found)
            return None
