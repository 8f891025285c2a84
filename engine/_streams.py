"""Stream ids: built and parsed here, nowhere else.

A run's log holds one stream per unit of work:

===================================  ===========================================
``domain/<slot>``                    a domain's design and tool graph (``d00``)
``tool/<slot>/<tool>``               one tool's synthesis: code, tests, repairs
``task/<slot>/t<k>``                 one task's instantiation (task id ``d00/t003``)
``episode/<slot>/t<k>/g<attempt>``   a local rollout (episode id ``d00/t003/g1``)
``episode/<slot>/t<k>/s<k>``         an episode served to an outside policy
``check/<checker>``                  what ``replay --verify`` (``verify``) or ``rerun``
                                     (``rerun``) found: about the run, not part of it
===================================  ===========================================

Ids inside a stream (slot, task id, episode id) are the stream id without its kind.
"""

from __future__ import annotations

import re
from typing import Literal

import attrs

Kind = Literal["domain", "tool", "task", "episode"]
KINDS: tuple[Kind, ...] = ("domain", "tool", "task", "episode")

DOMAIN = "domain/"
TOOL = "tool/"
TASK = "task/"
EPISODE = "episode/"
CHECK = "check/"
"""Prefixes of each kind's stream ids (to list a kind: ``log.streams(EPISODE)``)."""

_SLOT = r"d\d{2,}"
_TASK = rf"{_SLOT}/t\d{{3,}}"
_STREAM = re.compile(
    rf"^(?:domain/(?P<d>{_SLOT})|tool/(?P<ts>{_SLOT})/(?P<tool>[A-Za-z_][A-Za-z0-9_]*)"
    rf"|task/(?P<task>{_TASK})|episode/(?P<etask>{_TASK})/(?P<mode>[gs])(?P<n>\d+)(?P<tag>-[A-Za-z0-9]+)?)$"
)


def slot_id(slot: int) -> str:
    """The id of domain slot ``slot``: ``d00``, ``d01``, ... (``d100`` past 99)."""
    return f"d{slot:02d}"


def slot_index(slot: str) -> int:
    """The number of a domain slot (``d03`` -> 3)."""
    if not re.fullmatch(_SLOT, slot):
        raise ValueError(f"not a domain slot: {slot!r}")
    return int(slot[1:])


def task_id(slot: str, k: int) -> str:
    """The id of the ``k``-th task of domain ``slot``: ``d00/t003``."""
    return f"{slot}/t{k:03d}"


def episode_id(task: str, attempt: int) -> str:
    """A local rollout's id: ``d00/t003/g1`` (attempt 1 of the task)."""
    return f"{task}/g{attempt}"


def served_episode_id(task: str, k: int) -> str:
    """The id of the ``k``-th episode of ``task`` served to an outside policy: ``d00/t003/s0``."""
    return f"{task}/s{k}"


def domain_stream(slot: str) -> str:
    return DOMAIN + slot


def tool_stream(slot: str, tool: str) -> str:
    return f"{TOOL}{slot}/{tool}"


def task_stream(task: str) -> str:
    return TASK + task


def episode_stream(episode: str) -> str:
    """The stream of an episode id (an episode's stream id is returned as it is)."""
    return episode if episode.startswith(EPISODE) else EPISODE + episode


CHECKERS = ("verify", "rerun")
"""What records checks: ``replay --verify`` re-executes tool calls, ``rerun`` re-runs agents."""


def check_stream(checker: str) -> str:
    """The stream that records ``checker``'s findings: ``check/verify`` or ``check/rerun``."""
    if checker not in CHECKERS:
        raise ValueError(f"unknown checker {checker!r}: the checkers are {', '.join(CHECKERS)}")
    return CHECK + checker


def is_check(stream: str) -> bool:
    """Whether ``stream`` records checks of the run (left out of the run digest and of ``diff``)."""
    return stream.startswith(CHECK)


def tool_streams_of(slot: str) -> str:
    """The prefix of every tool stream of domain ``slot`` (for ``log.streams``)."""
    return f"{TOOL}{slot}/"


@attrs.frozen
class StreamId:
    """A parsed stream id. ``slot`` is always set; the rest as the kind has them."""

    kind: Kind
    slot: str
    tool: str | None = None
    task: str | None = None
    episode: str | None = None
    served: bool = False
    attempt: int | None = None
    """The attempt (``g<k>``) or the served number (``s<k>``) of an episode."""

    @property
    def id(self) -> str:
        """The id inside the stream: the slot, ``slot/tool``, the task id or the episode id."""
        return {"domain": self.slot, "tool": f"{self.slot}/{self.tool}", "task": self.task,
                "episode": self.episode}[self.kind] or ""


class NotAStreamId(ValueError):
    """A string that is no scaleenv stream id."""


def parse(stream: str) -> StreamId:
    """The parts of a stream id; raises :class:`NotAStreamId` for anything else."""
    m = _STREAM.match(stream)
    if m is None:
        raise NotAStreamId(f"{stream!r} is not a stream id (domain/d00, tool/d00/NAME, task/d00/t000 "
                           "or episode/d00/t000/g0)")
    if m["d"]:
        return StreamId("domain", m["d"])
    if m["ts"]:
        return StreamId("tool", m["ts"], tool=m["tool"])
    if m["task"]:
        return StreamId("task", m["task"].split("/", 1)[0], task=m["task"])
    task = m["etask"]
    return StreamId("episode", task.split("/", 1)[0], task=task, episode=f"{task}/{m['mode']}{m['n']}{m['tag'] or ''}",
                    served=m["mode"] == "s", attempt=int(m["n"]))


def kind_of(stream: str) -> str:
    """The kind of a stream id (its first part), without validating the rest."""
    return stream.split("/", 1)[0]


def episode_id_of(stream: str) -> str:
    """``episode/d00/t003/g1`` -> ``d00/t003/g1`` (an episode id is returned as it is)."""
    return stream[len(EPISODE):] if stream.startswith(EPISODE) else stream


def task_of_episode(episode: str) -> str:
    """``d00/t003/g1`` -> ``d00/t003``."""
    return episode_id_of(episode).rsplit("/", 1)[0]


def slot_of(some_id: str) -> str:
    """The domain slot of a task or episode id (``d00/t003/g1`` -> ``d00``)."""
    return some_id.split("/", 1)[0]


def is_served(episode: str) -> bool:
    """Whether an episode (id or stream) was served to an outside policy (``.../s<k>``)."""
    return episode.rsplit("/", 1)[-1].startswith("s")
