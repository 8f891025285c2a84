"""The standard modules tools may import and the session clock behind their time
functions (real worker processes)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import trio

from scaleenv._sandbox import DEFAULT_START, ClockError, Limits, SandboxPool, SessionClock, check_source, task_clock
from scaleenv._sandbox.stdlib import EXPORTS
from tests.sandbox.domain import TOOLS, make_state

# Written the way a capable model writes a tool: imports at the top, a constant, helpers
# from several modules, a timestamp on what it creates.
BOOK = '''
"""Book a visit and stamp it."""
import datetime
import json
import re
from collections import Counter, defaultdict
from decimal import Decimal, ROUND_HALF_UP
import statistics
import itertools
import copy
import string
import math

SLOT = re.compile(r"^(mon|tue|wed)-(\\d{1,2})$")


def book(db, order_id, slot, note="", days=3):
    match = SLOT.match(slot)
    if match is None:
        raise ToolError(f"bad slot {slot!r}: expected like 'mon-10'")
    now = datetime.datetime.now()
    due = (now + datetime.timedelta(days=days)).date()
    order = copy.deepcopy(db["orders"][order_id])
    price = (Decimal("19.99") * order["qty"] * Decimal("1.075")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    words = Counter(re.findall(r"[a-z]+", note.lower()))
    by_status = defaultdict(list)
    for key, o in sorted(db["orders"].items()):
        by_status[o["status"]].append(key)
    order.update({"slot": slot, "booked_at": now.strftime("%Y-%m-%d %H:%M:%S"), "due": due.isoformat(),
                  "price": float(price), "note": string.capwords(note)})
    db["orders"][order_id] = order
    return {
        "day": match.group(1), "hour": int(match.group(2)), "booked_at": order["booked_at"],
        "weekday": f"{now:%A}", "due": str(due), "price": str(price), "top_word": words.most_common(1),
        "by_status": dict(by_status), "mean_qty": statistics.mean(o["qty"] for o in db["orders"].values()),
        "pairs": [list(p) for p in itertools.combinations(sorted(db["stock"]), 2)],
        "payload": json.dumps({"slot": slot, "n": 2}, sort_keys=True), "loaded": json.loads('{"a": [1, 2.5]}'),
        "root": math.isqrt(17), "epoch": now.timestamp(), "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
'''

CLOCKS = '''
import datetime
import time
from datetime import date, datetime as dt


def clocks(db):
    now = dt.now()
    return [str(now), str(dt.today()), str(dt.utcnow()), str(date.today()), str(datetime.date.today()),
            now.now().isoformat(), time.time(), time.time_ns(), time.monotonic(), time.perf_counter(),
            time.strftime("%Y-%m-%d %H:%M:%S"), time.strftime("%H:%M", time.gmtime()), time.localtime().tm_hour,
            dt.now(datetime.timezone(datetime.timedelta(hours=2))).isoformat(),
            datetime.datetime(2024, 1, 1).timestamp(), datetime.datetime.fromtimestamp(0).isoformat(),
            datetime.datetime(2024, 1, 1, 12).astimezone().isoformat(),
            datetime.datetime.strptime("2024-02-29 07:05", "%Y-%m-%d %H:%M").isoformat()]
'''

PLAIN = "def plain(db):\n    return len(db['orders'])\n"
FAILS = "import datetime\ndef fails(db):\n    raise ToolError(f'closed at {datetime.datetime.now():%H:%M}')\n"
ALL_TOOLS = {**TOOLS, "book": BOOK, "clocks": CLOCKS, "plain": PLAIN, "fails": FAILS}


def test_the_policy_accepts_allowed_imports_and_names_the_rest() -> None:
    assert check_source(BOOK, "book") == [] and check_source(CLOCKS, "clocks") == []
    src = "import datetime as dt\nfrom json import loads as parse\ndef f(db):\n    import math\n    return dt, parse, math.tau\n"
    assert check_source(src, "f") == []
    messages = [i.message for i in check_source(
        "import os.path\nimport json\nfrom re import Scanner\ndef f(db):\n    return json.JSONDecoder, json.loads\n", "f")]
    assert messages == [
        "module 'os.path' is not available in tools (allowed: collections, copy, datetime, decimal, itertools, "
        "json, math, re, statistics, string, time)",
        "'Scanner' of module 're' is not available in tools",
        "module 'json' has no attribute 'JSONDecoder' available in tools",
    ]
    # A name that is rebound is not assumed to be the module any more (checked at run time).
    assert check_source("import json\ndef f(db, json=None):\n    return json.anything\n", "f") == []
    assert sorted(EXPORTS) == ["collections", "copy", "datetime", "decimal", "itertools", "json", "math", "re",
                               "statistics", "string", "time"]


async def test_code_as_a_model_writes_it_runs(pool: SandboxPool) -> None:
    await pool.open_session("s", ALL_TOOLS, make_state(), clock=SessionClock.at("2024-03-15 09:30:00"))
    outcome = await pool.call("s", "book", {"order_id": "o1", "slot": "tue-14", "note": "window seat, window"})
    assert outcome.ok, outcome.error
    assert outcome.clock == "2024-03-15 09:30:00"
    assert outcome.result == {
        "day": "tue", "hour": 14, "booked_at": "2024-03-15 09:30:00", "weekday": "Friday", "due": "2024-03-18",
        "price": "42.98", "top_word": [["window", 2]], "by_status": {"open": ["o1", "o2"], "shipped": ["o3"]},
        "mean_qty": 2.6666666666666665, "pairs": [["A", "B"]], "payload": '{"n": 2, "slot": "tue-14"}',
        "loaded": {"a": [1, 2.5]}, "root": 4, "epoch": 1710495000.0, "utc": "2024-03-15T09:30:00+00:00",
    }
    order = (await pool.get_state("s"))["orders"]["o1"]
    assert order["booked_at"] == "2024-03-15 09:30:00" and order["price"] == 42.98 and order["note"] == "Window Seat, Window"
    bad = await pool.call("s", "book", {"order_id": "o2", "slot": "fri-1"})
    assert bad.error is not None and bad.error.kind == "tool_error" and bad.clock is None  # it failed before reading


async def test_every_time_name_reads_the_session_clock_one_step_per_call(pool: SandboxPool) -> None:
    clock = SessionClock.at("2024-02-29 23:59:58", step_s=1.5)
    await pool.open_session("s", ALL_TOOLS, make_state(), clock=clock)
    first = await pool.call("s", "clocks", {})
    assert first.ok and first.clock == "2024-02-29 23:59:58"
    stamp = 1709251198.0
    assert first.result == [
        "2024-02-29 23:59:58", "2024-02-29 23:59:58", "2024-02-29 23:59:58", "2024-02-29", "2024-02-29",
        "2024-02-29T23:59:58", stamp, int(stamp) * 10**9, stamp, stamp, "2024-02-29 23:59:58", "23:59", 23,
        "2024-03-01T01:59:58+02:00",
        1704067200.0, "1970-01-01T00:00:00", "2024-01-01T12:00:00+00:00", "2024-02-29T07:05:00",
    ]
    plain = await pool.call("s", "plain", {})  # reads no time: no reading recorded, the clock still moves
    assert plain.ok and plain.clock is None
    failed = await pool.call("s", "fails", {})  # a failed call that read the time records it too
    assert failed.error is not None and failed.error.message == "closed at 00:00" and failed.clock == "2024-03-01 00:00:01"
    bad_args = await pool.call("s", "clocks", {"x": 1})
    assert bad_args.error is not None and bad_args.error.kind == "bad_args"
    last = await pool.call("s", "clocks", {})
    assert last.clock == "2024-03-01 00:00:04" == clock.reading(4)
    assert last.result[0] == "2024-03-01 00:00:04" and last.result[3] == "2024-03-01"


async def test_a_session_without_a_clock_starts_at_the_default(pool: SandboxPool) -> None:
    once = await pool.run_once(ALL_TOOLS, make_state(), "clocks", {})
    assert once.clock == DEFAULT_START == "2024-03-15 09:30:00"
    again = await pool.run_once(ALL_TOOLS, make_state(), "clocks", {})
    assert again == once


async def _run_calls(pool: SandboxPool, session: str, clock: SessionClock, kill_after: int | None = None) -> list[Any]:
    await pool.open_session(session, ALL_TOOLS, make_state(), clock=clock)
    outcomes = []
    for i, (tool, args) in enumerate([("clocks", {}), ("plain", {}), ("book", {"order_id": "o1", "slot": "mon-9"}),
                                      ("fails", {}), ("book", {"order_id": "o2", "slot": "wed-11"}), ("clocks", {})]):
        if i == kill_after:
            [pid] = pool.worker_pids()
            restarts = pool.restarts()
            os.kill(pid, signal.SIGKILL)
            with trio.fail_after(60):  # a bound on a hang, not a timing assertion
                while pool.restarts() == restarts or -1 in pool.worker_pids():
                    await trio.sleep(0.01)
        outcomes.append(await pool.call(session, tool, args))
    outcomes.append(await pool.get_state(session))
    await pool.close_session(session)
    return outcomes


async def test_same_clock_and_calls_give_the_same_outcomes_in_another_pool_and_across_a_restart() -> None:
    clock = SessionClock.seeded(7)
    async with SandboxPool(workers=1) as pool:
        first = await _run_calls(pool, "a", clock)
    async with SandboxPool(workers=1) as pool:
        second = await _run_calls(pool, "b", clock, kill_after=3)  # the worker dies mid-session
        assert pool.restarts() == 1
    assert first == second
    assert [o.clock for o in first[:-1]] == [clock.reading(0), None, clock.reading(2), clock.reading(3),
                                              clock.reading(4), clock.reading(5)]
    async with SandboxPool(workers=1) as pool:
        other = await _run_calls(pool, "c", SessionClock.seeded(8))
    assert other[0].clock != first[0].clock and other[0].result != first[0].result


def test_seeded_clocks() -> None:
    starts = [SessionClock.seeded(s).start for s in range(200)]
    assert starts == [SessionClock.seeded(s).start for s in range(200)]
    assert len(set(starts)) > 190
    assert all("2024-01-01" <= s < "2027-01-01" and "08:00" <= s[11:16] <= "17:59" and s.endswith(":00")
               for s in starts)
    assert task_clock(1, "d00/t003") == task_clock(1, "d00/t003") != task_clock(2, "d00/t003")
    assert SessionClock.at("2024-03-15T09:30").start == "2024-03-15 09:30:00"
    assert SessionClock.at("2024-03-15 09:30:00", step_s=60).reading(3) == "2024-03-15 09:33:00"
    assert SessionClock(step_s=0.25).reading(1) == "2024-03-15 09:30:00.250000"
    for bad, needle in (("tomorrow", "is not a date and time"), ("2024-03-15 09:30:00+02:00", "has a time zone")):
        with pytest.raises(ClockError, match=needle):
            SessionClock.at(bad)
    with pytest.raises(ClockError, match="clock step"):
        SessionClock(step_s=-1)


async def test_module_values_as_text_and_data(pool: SandboxPool) -> None:
    src = '''
import collections, datetime, decimal, re
def show(db):
    c = collections.Counter("abca")
    od = collections.OrderedDict(b=1, a=2)
    od.move_to_end("b")
    d = collections.deque([1, 2], maxlen=3)
    d.appendleft(0)
    m = re.search(r"(?P<word>\\w+)", "hi there")
    return {"counter": c, "ordered": od, "texts": [str(c), f"{od}", str(d), str(decimal.Decimal("1.50")),
            f"{datetime.timedelta(hours=25)}", str(datetime.date(2024, 1, 2)), str(m.groupdict()), f"{m.span()}"]}
'''
    outcome = await pool.run_once({"show": src}, make_state(), "show", {})
    assert outcome.ok, outcome.error
    assert outcome.result == {"counter": {"a": 2, "b": 1, "c": 1}, "ordered": {"a": 2, "b": 1}, "texts": [
        "Counter({'a': 2, 'b': 1, 'c': 1})", "OrderedDict([('a', 2), ('b', 1)])", "deque([0, 1, 2], maxlen=3)", "1.50",
        "1 day, 1:00:00", "2024-01-02", "{'word': 'hi'}", "(0, 2)"]}


async def test_the_allowed_modules_reach_no_file_no_host_clock_and_no_import(pool: SandboxPool) -> None:
    """A tour of the modules' functions that could touch the host (strptime loads locale
    data, re's \\N{} escapes load unicodedata, localtime reads the zone): the worker's audit
    hook would turn any file open, import or clock syscall wrapper into a policy failure."""
    src = '''
import collections, copy, datetime, decimal, itertools, json, math, re, statistics, string, time
def tour(db):
    fit = statistics.linear_regression([1, 2, 3], [2, 4, 6])
    out = [re.sub(r"\\N{EM DASH}", "-", "a\\u2014b"), time.strptime("2024", "%Y").tm_year,
           datetime.datetime.strptime("Mar 5 2024 +0200", "%b %d %Y %z").isoformat(), time.mktime(time.gmtime(0)),
           json.dumps({"x": decimal.Decimal("1.1")}, default=str), statistics.median([3, 1, 2]),
           statistics.quantiles([1, 2, 3, 4, 5], n=4), math.fsum([0.1] * 10), string.ascii_lowercase[:3],
           datetime.datetime.now().astimezone().tzname(), time.localtime(0).tm_zone,
           collections.Counter("abbccc").most_common(2), [fit.slope, fit.intercept],
           str(json.loads("1.10", parse_float=decimal.Decimal)), f"{decimal.Decimal('1234.5'):n}",
           re.compile("[[a]").pattern, copy.deepcopy({"d": [decimal.Decimal("2")], "t": (1, 2)})["t"],
           [list(g) for _, g in itertools.groupby("aab")], datetime.date(2024, 1, 1).isocalendar().week]
    return out
'''
    assert check_source(src, "tour") == []
    outcome = await pool.run_once({"tour": src}, make_state(), "tour", {})
    assert outcome.ok, outcome.error
    assert outcome.result == ["a-b", 2024, "2024-03-05T00:00:00+02:00", 0.0, '{"x": "1.1"}', 2, [1.5, 3.0, 4.5], 1.0,
                              "abc", "UTC", "UTC", [["c", 3], ["b", 2]], [2.0, 0.0], "1.10", "1234.5", "[[a]", [1, 2],
                              [["a", "a"], ["b"]], 1]


async def test_host_clock_routes_are_closed(pool: SandboxPool) -> None:
    """However a tool reaches for the time, it gets the session clock (never the host's):
    the host's clock is decades away from the session's."""
    src = '''
import datetime, time
def probe(db):
    readers = [datetime.datetime.now, datetime.datetime.today, datetime.datetime.utcnow, datetime.date.today,
               datetime.datetime(2000, 1, 1).now, datetime.date(2000, 1, 1).today, time.time]
    return [str(r()) for r in readers]
'''
    clock = SessionClock.at("1999-12-31 23:59:59")
    await pool.open_session("s", {"probe": src}, make_state(), clock=clock)
    outcome = await pool.call("s", "probe", {})
    assert outcome.ok, outcome.error
    assert outcome.result == ["1999-12-31 23:59:59"] * 3 + ["1999-12-31", "1999-12-31 23:59:59", "1999-12-31",
                                                             "946684799.0"]
    assert abs(time.time() - 946684799) > 10 * 365 * 86400
