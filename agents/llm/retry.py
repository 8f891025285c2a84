"""When to try a model request again, and how long to wait first. Pure.

A chat completion is a POST: the server may generate (and bill) an answer even if the
client never sees it. So failures are split by what the server can have done:

- ``safe``: the server cannot have acted on the request: no connection, the request
  not wholly sent, or a status by which the server declines it before any work (408,
  425, 429, 503). Retried up to ``retries`` times.
- ``unsafe``: the server may have acted on it: the connection lost after the request
  went out, a timeout, a 5xx other than 503 (or 409), a 200 whose body is not a
  completion, a stream cut short. Retried at most ``unsafe_retries`` times (default
  once) and never silently: each such retry is logged as a warning saying the server
  may have processed the request; the next such failure is raised.
- ``fatal``: anything else (400, 401, 404, 422, ...): the request itself is wrong;
  raised at once.

The wait is exponential (``base_s`` doubling, capped at ``max_s``) with full jitter in
its upper half, so a thousand clients failing together do not come back together. A
``Retry-After`` header (seconds, or an HTTP date) is honoured: the wait is at least what
the server asked, plus up to 10 %; a server asking for more than ``retry_after_max_s``
makes the request fail now instead, with the wait it asked for in the error.
"""

from __future__ import annotations

import email.utils
import random
import time
from typing import Literal

import attrs

Safety = Literal["safe", "unsafe", "fatal"]

SAFE_STATUSES = frozenset({408, 425, 429, 503})
UNSAFE_STATUSES = frozenset({409}) | (frozenset(range(500, 600)) - SAFE_STATUSES)


def status_safety(status: int) -> Safety:
    if status in SAFE_STATUSES:
        return "safe"
    if status in UNSAFE_STATUSES:
        return "unsafe"
    return "fatal"


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@attrs.frozen
class RetryPolicy:
    """How many times, and after how long, a failed request is tried again."""

    retries: int = 4
    unsafe_retries: int = 1
    base_s: float = 0.5
    max_s: float = 8.0
    retry_after_max_s: float = 60.0

    def allows(self, safety: Safety, retried: int, retried_unsafe: int) -> bool:
        """Whether a failure of this safety may be retried after ``retried`` retries so far."""
        if safety == "fatal" or retried >= self.retries:
            return False
        return safety == "safe" or retried_unsafe < self.unsafe_retries

    def delay(self, retried: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retried + 1``."""
        cap = min(self.max_s, self.base_s * (2 ** retried))
        backoff = cap * (0.5 + 0.5 * rng.random())
        if retry_after is None:
            return backoff
        return retry_after * (1.0 + 0.1 * rng.random()) if retry_after > 0 else backoff * 0.5
