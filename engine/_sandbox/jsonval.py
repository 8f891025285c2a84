"""Validation of JSON values (records, results, arguments) crossing the sandbox."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, defaultdict
from typing import Any

MAX_DEPTH = 64

_MAPPINGS = frozenset({dict, Counter, OrderedDict, defaultdict})
"""Objects: a dict, or a dict the ``collections`` module made (encoded, and read back, as a plain dict)."""


class InvalidValue(ValueError):
    """A value that is not plain JSON (str, int, float, bool, None, list/tuple, str-keyed dict)."""


def check_json(value: Any, where: str, depth: int = 0) -> None:
    """Raise InvalidValue if `value` is not plain JSON; `where` names it in the message."""
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
            check_json(item, f"{where}[{index}]", depth + 1)
        return
    if kind in _MAPPINGS:
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidValue(f"{where}: dict key {key!r} is not a str")
            check_json(item, f"{where}[{key!r}]", depth + 1)
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
            check_json(record, f"{table}[{key!r}]")
