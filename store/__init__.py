"""scaleenv._store: the event types, the LMDB event log, its writer task and readers.

Public API: :class:`Log` (open, read, follow, check, writer), :class:`Writer` /
:class:`Pending` / :class:`Ack` / :class:`Committed` (appending, waiting for commits), :class:`Stream` (the per-stream handle agents emit
through, with resume/verify replay), :class:`Record` and :class:`Codec` (the stored
record and its bytes), the digests, and the typed errors under :class:`LogError`.
"""

from .errors import (
    IncompatibleEvent,
    LogDamaged,
    LogError,
    LogFull,
    LogLocked,
    NewerLogFormat,
    NotALog,
    RecordDamaged,
    StreamPositionError,
    UnencodableEvent,
    UnknownEventType,
    WriterClosed,
)
from .log import Log
from .record import (
    Codec,
    Record,
    StreamDigest,
    default_codec,
    record_digest_bytes,
    run_digest,
    stream_digests,
)
from .stream import Divergence, Stream
from .writer import Ack, Committed, Pending, Writer

__all__ = [
    "Ack", "Codec", "Committed", "Divergence", "IncompatibleEvent", "Log", "LogDamaged", "LogError", "LogFull", "LogLocked",
    "NewerLogFormat", "NotALog", "Pending", "Record", "RecordDamaged", "Stream",
    "StreamDigest", "StreamPositionError", "UnencodableEvent", "UnknownEventType", "Writer",
    "WriterClosed",
    "default_codec", "record_digest_bytes", "run_digest", "stream_digests",
]
