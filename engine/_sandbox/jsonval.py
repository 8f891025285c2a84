"""Validation of JSON values (records, results, arguments) crossing the sandbox."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, defaultdict
from typing import Any

MAX_DEPTH = 64

_MAPPINGS = frozenset({dict, Counter, OrderedDict, defaultdict})
"""Objects: a dict, or a dict the ``collections`` module made (encoded, and read back, as a plain dict)."""

_isfinite = math.isfinite


class InvalidValue(ValueError):
    """A value that is not plain JSON (str, int, float, bool, None, list/tuple, str-keyed dict)."""


def is_plain_json(value: Any, depth: int = 0) -> bool:
    """Whether :func:`check_json` accepts ``value`` at ``depth`` (True only if it does).

    The fast path: no location strings are built (they were most of the cost of checking
    an episode's state, record by record), and leaves are checked inline. It may answer
    False for a value that check_json would accept only at the depth limit; callers then
    run check_json, which decides and names the place of any fault.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return depth <= MAX_DEPTH
    if kind is float:
        return depth <= MAX_DEPTH and _isfinite(value)
    if depth >= MAX_DEPTH:
        return False  # its items would be past the limit (or it is): check_json decides
    if kind is list or kind is tuple:
        items: Any = value
    elif kind in _MAPPINGS:
        for key in value:
            if type(key) is not str:
                return False
        items = value.values()
    else:
        return False
    depth += 1
    for item in items:
        t = type(item)
        if t is str or t is int or t is bool or item is None:
            continue
        if t is float:
            if not _isfinite(item):
                return False
            continue
        if not is_plain_json(item, depth):
            return False
    return True


def check_json(value: Any, where: str, depth: int = 0) -> None:
    """Raise InvalidValue if `value` is not plain JSON; `where` names it in the message."""
    if is_plain_json(value, depth):
        return
    _explain(value, where, depth)


def _explain(value: Any, where: str, depth: int = 0) -> None:
    """check_json's slow path: walks ``value`` naming each place, raises at the first fault."""
    if depth > MAX_DEPTH:
        raise InvalidValue(f"{where}: nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return
    if kind is float:
        if not math.isfinite(value):
            raise InvalidValue(f"{where}: non-finite float {value!r} is not JSON")
        return
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            _explain(item, f"{where}[{index}]", depth + 1)
        return
    if kind in _MAPPINGS:
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidValue(f"{where}: dict key {key!r} is not a str")
            _explain(item, f"{where}[{key!r}]", depth + 1)
        return
    raise InvalidValue(f"{where}: {kind.__name__} is not a JSON value (use list/dict/str/int/float/bool/None)")


def check_state(state: Any) -> None:
    """Raise InvalidValue unless `state` is a DbState (table -> str key -> dict record)."""
    if type(state) is not dict:
        raise InvalidValue("state must be a dict of tables")
    for table, records in state.items():
        if type(table) is not str or type(records) is not dict:
            raise InvalidValue(f"table {table!r} must be a str-named dict of records")
        for key, record in records.items():
            if type(key) is not str:
                raise InvalidValue(f"{table}: record key {key!r} is not a str")
            if type(record) is not dict:
                raise InvalidValue(f"{table}[{key!r}] must be a dict record")
            if not is_plain_json(record):
                _explain(record, f"{table}[{key!r}]")
