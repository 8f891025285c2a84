"""Typed errors of the event log.

Every error the store raises on purpose subclasses :class:`LogError`, so callers can
catch the family, and each one names what it is about (a seq, a tag, a path, a pid).
"""

from __future__ import annotations


class LogError(Exception):
    """Base of every error the event log raises on purpose."""


class RecordDamaged(LogError):
    """A stored record failed its integrity check (bad magic, CRC mismatch, truncated).

    :meth:`Log.check` also reports a run of missing seqs as one ``RecordDamaged``: ``seq``
    is the first missing seq and ``through`` the last (``None`` for a single record).
    """

    def __init__(self, seq: int, reason: str, through: int | None = None) -> None:
        super().__init__(seq, reason, through)
        self.seq = seq
        self.reason = reason
        self.through = through

    def __str__(self) -> str:
        if self.through is not None and self.through != self.seq:
            return f"records seq={self.seq}..{self.through} are damaged: {self.reason}"
        return f"record seq={self.seq} is damaged: {self.reason}"


class UnknownEventType(LogError):
    """A record holds an event whose tag this code does not know (a newer writer?)."""

    def __init__(self, seq: int, tag: object) -> None:
        super().__init__(seq, tag)
        self.seq = seq
        self.tag = tag

    def __str__(self) -> str:
        return (f"record seq={self.seq} holds an event of unknown type {self.tag!r} "
                "(written by a newer scaleenv, or an event type was removed)")


class IncompatibleEvent(LogError):
    """A record's event has a known tag but does not fit the current schema of that type."""

    def __init__(self, seq: int, tag: object, reason: str) -> None:
        super().__init__(seq, tag, reason)
        self.seq = seq
        self.tag = tag
        self.reason = reason

    def __str__(self) -> str:
        return (f"record seq={self.seq}: event {self.tag!r} does not match its current schema: "
                f"{self.reason} (a field changed type? see the schema evolution rules in "
                "scaleenv._store.events.base)")


class NewerLogFormat(LogError):
    """The log (or one record) was written in a format newer than this code supports."""

    def __init__(self, found: int, supported: int, where: str = "") -> None:
        super().__init__(found, supported, where)
        self.found = found
        self.supported = supported
        self.where = where

    def __str__(self) -> str:
        at = f"{self.where}: " if self.where else ""
        return (f"{at}log format version {self.found} is newer than this scaleenv supports "
                f"(up to {self.supported}); upgrade scaleenv to read it")


class NotALog(LogError):
    """The path is not a scaleenv log (missing, not a directory, foreign LMDB, not LMDB)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path} is not a scaleenv log: {self.reason}"


class LogDamaged(LogError):
    """The LMDB file under the log is damaged (truncated, or pages LMDB reports as corrupt).

    Unlike :class:`RecordDamaged` (one record's bytes), nothing can be read safely through
    LMDB: the log is refused before it is mapped, or at the first read LMDB rejects.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path} is damaged: {self.reason}"


class LogLocked(LogError):
    """Another process (or another Log in this process) holds the log open for writing."""

    def __init__(self, path: str, pid: int | None) -> None:
        super().__init__(path, pid)
        self.path = path
        self.pid = pid

    def __str__(self) -> str:
        holder = f"process {self.pid}" if self.pid else "another process"
        return (f"{self.path} is open for writing by {holder}; only one writer per log "
                "(readers may still open it with readonly=True)")


class LogFull(LogError):
    """The disk (or a file size limit) is full: nothing of the failed batch was committed."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return (f"cannot write to {self.path}: {self.reason}; everything acknowledged before "
                "is intact and readable. Free space and run the same command again to resume.")


class StreamPositionError(LogError):
    """An append's position is not the stream's next one (a gap or a duplicate)."""

    def __init__(self, stream: str, expected: int, got: int) -> None:
        super().__init__(stream, expected, got)
        self.stream = stream
        self.expected = expected
        self.got = got

    def __str__(self) -> str:
        what = "a duplicate" if self.got < self.expected else "a gap"
        return (f"stream {self.stream!r}: append at n={self.got}, but the next position is "
                f"n={self.expected} ({what}; two emitters on one stream is a bug)")


class UnencodableEvent(LogError):
    """An event could not be encoded (e.g. a str with lone surrogates): its append failed alone."""

    def __init__(self, stream: str, n: int, reason: str) -> None:
        super().__init__(stream, n, reason)
        self.stream = stream
        self.n = n
        self.reason = reason

    def __str__(self) -> str:
        return f"stream {self.stream!r} n={self.n}: the event cannot be stored: {self.reason}"


class WriterClosed(LogError):
    """The writer task has stopped (closed, or failed: see ``__cause__``)."""
