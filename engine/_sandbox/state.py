"""Session state inside a worker: the live dicts a tool mutates, plus a committed
msgpack copy used to compute exact deltas and to roll back failed calls.

Change detection compares msgpack encodings (type-exact: 1, 1.0 and True differ),
first per table (one C-level encode), then per record only for tables that
changed. Changed records are replaced by decoded copies on commit, which
normalizes tuples to lists and breaks aliasing between records.
"""

from __future__ import annotations

import msgspec

from scaleenv._sandbox.jsonval import InvalidValue, check_json, check_state
from scaleenv._sandbox.types import DbState, RecordChange

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class InvalidState(ValueError):
    """A call left the database in a shape that is not a DbState."""


def copy_state(state: DbState) -> DbState:
    """Deep copy of a DbState (msgpack round trip)."""
    return _decoder.decode(_encoder.encode(state))  # type: ignore[no-any-return]


def copy_state_encoded(state: DbState) -> tuple[DbState, bytes]:
    """:func:`copy_state`, with the encoding it went through (what encoding the copy gives)."""
    encoded = _encoder.encode(state)
    return _decoder.decode(encoded), encoded


def apply_delta(state: DbState, delta: list[RecordChange]) -> None:
    """Apply a call's delta to `state` in place (the parent's shadow copy uses this)."""
    for change in delta:
        table = state.setdefault(change.table, {})
        if change.after is None:
            table.pop(change.key, None)
        else:
            table[change.key] = change.after


class SessionState:
    """The working db of one session plus its committed encoding."""

    def __init__(self, state: DbState) -> None:
        check_state(state)
        self.db: DbState = state
        self._tables: dict[str, bytes] = {}
        self._records: dict[str, dict[str, bytes]] = {}
        for table, records in state.items():
            self._tables[table] = _encoder.encode(records)
            self._records[table] = {key: _encoder.encode(rec) for key, rec in records.items()}
        self._pending: list[tuple[str, str, bytes | None]] = []
        self._pending_tables: dict[str, bytes] = {}

    def changes(self) -> list[RecordChange]:
        """Diff the working db against the committed copy (sorted by table, key).

        Raises InvalidState if the db is no longer a valid DbState in a changed part.
        """
        db = self.db
        if type(db) is not dict or set(db) != set(self._tables):
            raise InvalidState("tools may not add or remove tables")
        out: list[RecordChange] = []
        pending: list[tuple[str, str, bytes | None]] = []
        pending_tables: dict[str, bytes] = {}
        for table in sorted(db):
            records = db[table]
            if type(records) is not dict:
                raise InvalidState(f"db[{table!r}] must stay a dict of records")
            try:
                encoded = _encoder.encode(records)
            except (TypeError, ValueError, OverflowError) as exc:
                raise InvalidState(f"db[{table!r}]: {exc}") from None
            if encoded == self._tables[table]:
                continue
            pending_tables[table] = encoded
            old = self._records[table]
            keys = set(old) | set(records)
            if any(type(k) is not str for k in keys):
                raise InvalidState(f"db[{table!r}]: record keys must be str")
            for key in sorted(keys):
                before_bytes = old.get(key)
                if key in records:
                    record = records[key]
                    if type(record) is not dict:
                        raise InvalidState(f"db[{table!r}][{key!r}] must be a dict record")
                    try:
                        check_json(record, f"db[{table!r}][{key!r}]")
                    except InvalidValue as exc:
                        raise InvalidState(str(exc)) from None
                    after_bytes: bytes | None = _encoder.encode(record)
                else:
                    after_bytes = None
                if after_bytes == before_bytes:
                    continue
                out.append(
                    RecordChange(
                        table,
                        key,
                        None if before_bytes is None else _decoder.decode(before_bytes),
                        None if after_bytes is None else _decoder.decode(after_bytes),
                    )
                )
                pending.append((table, key, after_bytes))
        self._pending = pending
        self._pending_tables = pending_tables
        return out

    def commit(self, changes: list[RecordChange]) -> None:
        """Make the changes found by the last `changes()` call permanent."""
        del changes  # the pending encodings computed by changes() are authoritative
        for table, key, after_bytes in self._pending:
            if after_bytes is None:
                self._records[table].pop(key, None)
            else:
                self._records[table][key] = after_bytes
                self.db[table][key] = _decoder.decode(after_bytes)  # normalize, de-alias
        self._tables.update(self._pending_tables)
        self._pending, self._pending_tables = [], {}

    def rollback(self) -> None:
        """Restore every table that differs from the committed copy."""
        db = self.db
        if type(db) is not dict:  # pragma: no cover - the db object itself is never rebound
            return
        for table in [t for t in db if t not in self._tables]:
            del db[table]
        for table, encoded in self._tables.items():
            records = db.get(table)
            try:
                same = type(records) is dict and _encoder.encode(records) == encoded
            except (TypeError, ValueError, OverflowError):
                same = False
            if not same:
                db[table] = {key: _decoder.decode(b) for key, b in self._records[table].items()}
        self._pending, self._pending_tables = [], {}

    def snapshot(self) -> DbState:
        """A deep copy of the committed state."""
        return {t: {k: _decoder.decode(b) for k, b in recs.items()} for t, recs in self._records.items()}
