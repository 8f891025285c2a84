"""Typed failures of LLM backends (distinct from validation failures, which the port retries)."""

from __future__ import annotations


class BackendError(Exception):
    """A backend could not produce any text: the server is unreachable or answered an error.

    Not a model answer, so the port records no ``LlmCalled`` event for it: it propagates
    to the caller (the run stops; running the same command again resumes from the log).
    Transient causes were already retried by the backend (see ``retryable``).

    ``kind`` names the cause: ``connect`` (no connection), ``reset`` (the connection was
    lost), ``timeout``, ``status`` (an HTTP error status, in ``status``), ``protocol``
    (not HTTP), ``malformed`` (a body that is not a completion), ``truncated`` (a stream
    cut short), ``stream`` (an error event in a stream); "" when not known.
    """

    def __init__(self, backend: str, url: str, detail: str, *, status: int | None = None,
                 retryable: bool = False, attempts: int = 1, kind: str = "") -> None:
        where = f" at {url}" if url else ""
        code = f" (HTTP {status})" if status is not None else ""
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{backend} backend{where} failed{code}{tries}: {detail}")
        self.backend = backend
        self.url = url
        self.detail = detail
        self.status = status
        self.retryable = retryable
        self.attempts = attempts
        self.kind = kind


class RecordedDivergence(Exception):
    """The recorded backend got a request that no recorded call answers.

    ``field`` names the first differing field versus the closest recorded request of the
    same role (``messages[1].content``, ``schema``, ``seed``, ...), ``detail`` says how.
    """

    def __init__(self, role: str, field: str, detail: str) -> None:
        super().__init__(f"recorded run diverged for role {role!r}: {field} {detail}".rstrip())
        self.role = role
        self.field = field
        self.detail = detail
