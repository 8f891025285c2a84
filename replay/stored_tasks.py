"""A checkpoint's tasks, their database states read from the log only when asked for.

A task's initial state (and the expected final state its golden chain leads to) is most
of what a task weighs: about 70 KB each in the paper preset, against a few KB for
everything else a :class:`~scaleenv._replay.projection.TaskView` holds. Both are already
in the log (the ``TaskInstantiated`` and ``GoldenChainExecuted`` records of the task's
stream), so a projection checkpoint (:mod:`scaleenv._replay.checkpoint`) stores the task
without them: loading it decodes a few KB per task, and a command that never looks at a
task's states (what is left to run, the run summary) never reads them.

:class:`StoredTask` is that task: a ``TaskView`` whose ``initial_state`` and
``expected_final`` are folded, on first read, from the task's own stream through the
checkpoint's seq (:func:`fold_states`: those two events through the projection's own
``_apply_task``, so the values are the cold fold's by construction). Setting either (a
fold continuing past the checkpoint) replaces it as on any ``TaskView``. Its golden chain
(most of what is left of a task without its states) is kept as the checkpoint's bytes
and decoded when first read. Equality is a ``TaskView``'s, field by field (a stored task
equals the eager fold's task).

Reads go to the log while it is open. A view may outlive its log: closing the log reads
nothing (a view kept alive by, say, a Ctrl-C traceback adds nothing to the exit), and a
state first asked for afterwards is read from the log reopened read-only for that read
(:class:`TaskSource`); a log gone or cut short by then raises a one-line ``LogError``.
"""

from __future__ import annotations

import threading
from typing import Any

import attrs
import msgspec

from scaleenv._store.events.tasks import GoldenChainExecuted, TaskInstantiated
from scaleenv._store.errors import LogError
from scaleenv._store.log import Log
from scaleenv._store.record import decode_envelope, event_tag_of_type, peek_tag
from scaleenv._store.specs import DbState
from scaleenv._streams import task_stream

from .projection import TaskView, _apply_task

LAZY_FIELDS = ("initial_state", "expected_final")
"""The fields of a task a checkpoint does not hold (folded from the task's stream when read)."""
LIGHT_FIELDS = tuple(f.name for f in attrs.fields(TaskView) if f.name not in LAZY_FIELDS and f.name != "golden")
"""The fields it holds as they are (``golden`` it holds apart, as bytes: see :func:`golden_bytes`)."""
HAS_INITIAL, HAS_EXPECTED = 1, 2
"""Flags of a stored task: which of its states are not None (the others need no read)."""

_STATE_TAGS = frozenset({event_tag_of_type(TaskInstantiated), event_tag_of_type(GoldenChainExecuted)})
_INITIAL = TaskView.__dict__["initial_state"]  # the slots of TaskView, under the properties below
_EXPECTED = TaskView.__dict__["expected_final"]
_GOLDEN = TaskView.__dict__["golden"]
_golden_enc = msgspec.msgpack.Encoder()
_golden_dec = msgspec.msgpack.Decoder(GoldenChainExecuted)


def state_flags(task: TaskView) -> int:
    """The :data:`HAS_INITIAL` / :data:`HAS_EXPECTED` flags of ``task`` (reads its states)."""
    return (HAS_INITIAL if task.initial_state is not None else 0) | (HAS_EXPECTED if task.expected_final is not None else 0)


def stored_flags(task: TaskView) -> int:
    """Like :func:`state_flags`, but without reading a stored task's states (its flags
    stand for them while they are not read)."""
    if isinstance(task, StoredTask):
        return task._flags_now()
    return state_flags(task)


def light(task: TaskView) -> dict[str, Any]:
    """What a checkpoint stores of ``task`` as it is: :data:`LIGHT_FIELDS`."""
    return {name: getattr(task, name) for name in LIGHT_FIELDS}


def golden_bytes(task: TaskView) -> msgspec.Raw | None:
    """``task``'s golden chain as a checkpoint stores it: its msgpack bytes, decoded when
    first read (most of what is left of a task once its states are out, and read by
    few: the run summary counts its steps, ``verify`` re-executes them). A stored task's
    not read yet are its stored bytes again."""
    raw = getattr(task, "_golden_raw", None)
    if raw is not None:
        return raw  # type: ignore[no-any-return]
    golden = task.golden
    return None if golden is None else msgspec.Raw(_golden_enc.encode(golden))


def fold_states(event_log: Log, task_id: str, through: int) -> TaskView:
    """``task_id``'s ``TaskInstantiated`` and ``GoldenChainExecuted`` events through seq
    ``through`` folded into a scratch ``TaskView`` (its ``initial_state``, ``expected_final``
    and ``golden`` are then the whole fold's at ``through``): the stream is read through the
    per-stream index, and only those records are decoded."""
    scratch = TaskView(task_id=task_id, slot=task_id.split("/", 1)[0])
    decode = event_log.codec.decode
    for seq, raw in event_log.read_stream_raw(task_stream(task_id), to_seq=through):
        if peek_tag(decode_envelope(raw, seq).event, seq) in _STATE_TAGS:
            _apply_task(scratch, decode(raw, seq).event)
    return scratch


class TaskSource:
    """Where a checkpoint's stored tasks read their states: the log and the checkpoint's
    seq. Once the log has closed, a read opens it again read-only for that read (see the
    module doc); closing it reads nothing."""

    def __init__(self, event_log: Log, seq: int) -> None:
        self.log, self.seq = event_log, seq
        self.reads = 0
        """States folded from the log (a task's two states are one read)."""
        self.reopened = 0
        """Of those, read from the log opened again after it closed."""
        self._closed = False
        self._lock = threading.Lock()
        event_log.on_close(self._detach)

    def adopt(self, task: StoredTask, flags: int, golden: msgspec.Raw | None = None) -> None:
        """Make ``task`` (decoded from a checkpoint) read its states here; ``flags``: which
        it has; ``golden``: its golden chain's bytes (None: it has none)."""
        if golden is not None:
            task._golden_raw = golden
        task._source, task._pending = self, flags & (HAS_INITIAL | HAS_EXPECTED)
        if not task._pending:  # neither state: nothing to read
            _INITIAL.__set__(task, None)
            _EXPECTED.__set__(task, None)

    def read(self, task: StoredTask) -> None:
        """Fill in ``task``'s pending states from the log (once; safe from several threads)."""
        with self._lock:
            if not task._pending:
                return
            folded = self._reopened(task.task_id) if self._closed else fold_states(self.log, task.task_id, self.seq)
            self.reads += 1
            if task._pending & HAS_INITIAL:
                _INITIAL.__set__(task, folded.initial_state)
            if task._pending & HAS_EXPECTED:
                _EXPECTED.__set__(task, folded.expected_final)
            task._pending = 0

    def _detach(self) -> None:
        """The log is closing: later reads open it again (nothing is read now)."""
        self._closed = True

    def _reopened(self, task_id: str) -> TaskView:
        """:func:`fold_states` once the log closed: through a log of this process open at
        the same path if there is one (:meth:`Log.open_at`: LMDB forbids a second one),
        else from the log opened again read-only for this read. A log that is gone or
        holds fewer records than the checkpoint covered raises ``LogError``."""
        path = self.log.path
        try:
            again = Log.open_at(path)
            if again is not None:
                return self._fold_checked(again, task_id)
            with Log.open(path, readonly=True) as again:
                folded = self._fold_checked(again, task_id)
        except LogError as exc:
            raise LogError(f"{path}: closed before the states of task {task_id!r} were read, and they cannot "
                           f"be read from it again ({exc})") from None
        self.reopened += 1
        return folded

    def _fold_checked(self, event_log: Log, task_id: str) -> TaskView:
        if event_log.last_seq() < self.seq:
            raise LogError(f"it now ends at seq {event_log.last_seq()}, before the checkpoint's seq {self.seq}")
        return fold_states(event_log, task_id, self.seq)


class StoredTask(TaskView):
    """A checkpoint's task (see the module doc): decoded from it, then adopted by its :class:`TaskSource`."""

    __slots__ = ("_source", "_pending", "_golden_raw")

    _source: TaskSource | None
    _pending: int
    _golden_raw: msgspec.Raw | None

    def _flags_now(self) -> int:
        """Its states' flags: a pending one is known present, the others are looked at."""
        pending = getattr(self, "_pending", 0)
        initial = pending & HAS_INITIAL or _INITIAL.__get__(self) is not None
        expected = pending & HAS_EXPECTED or _EXPECTED.__get__(self) is not None
        return (HAS_INITIAL if initial else 0) | (HAS_EXPECTED if expected else 0)

    def _read(self) -> None:
        source = getattr(self, "_source", None)
        if source is not None and self._pending:
            source.read(self)

    @property  # type: ignore[override]
    def initial_state(self) -> DbState | None:
        if getattr(self, "_pending", 0) & HAS_INITIAL:
            self._read()
        return _INITIAL.__get__(self)  # type: ignore[no-any-return]

    @initial_state.setter
    def initial_state(self, value: DbState | None) -> None:
        if getattr(self, "_pending", 0) & HAS_INITIAL:
            self._pending &= ~HAS_INITIAL
        _INITIAL.__set__(self, value)

    @property  # type: ignore[override]
    def expected_final(self) -> DbState | None:
        if getattr(self, "_pending", 0) & HAS_EXPECTED:
            self._read()
        return _EXPECTED.__get__(self)  # type: ignore[no-any-return]

    @expected_final.setter
    def expected_final(self, value: DbState | None) -> None:
        if getattr(self, "_pending", 0) & HAS_EXPECTED:
            self._pending &= ~HAS_EXPECTED
        _EXPECTED.__set__(self, value)

    @property  # type: ignore[override]
    def golden(self) -> GoldenChainExecuted | None:
        raw = getattr(self, "_golden_raw", None)
        if raw is not None:  # (two threads may both decode it: the same value)
            _GOLDEN.__set__(self, _golden_dec.decode(raw))
            self._golden_raw = None
        return _GOLDEN.__get__(self)  # type: ignore[no-any-return]

    @golden.setter
    def golden(self, value: GoldenChainExecuted | None) -> None:
        self._golden_raw = None
        _GOLDEN.__set__(self, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskView):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in attrs.fields(TaskView))

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Stored" + TaskView.__repr__(self)
