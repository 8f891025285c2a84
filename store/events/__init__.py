"""All event types, and the one union the log decodes.

Each area keeps its events in its own module; this module collects them into
``ALL_EVENT_TYPES``. Adding an event type = define it in its module and list it in that
module's tuple.
"""

from __future__ import annotations

from .base import Event, Ref
from .checks import CHECK_EVENTS
from .episodes import EPISODE_EVENTS
from .llm import LLM_EVENTS
from .synth import SYNTH_EVENTS
from .tasks import TASK_EVENTS

ALL_EVENT_TYPES: tuple[type[Event], ...] = (*LLM_EVENTS, *SYNTH_EVENTS, *TASK_EVENTS, *EPISODE_EVENTS, *CHECK_EVENTS)

__all__ = ["ALL_EVENT_TYPES", "Event", "Ref"]
