"""The episode page links to the first divergence `replay --verify` recorded.

A copy of the UI's run with one episode tool result altered: `scaleenv replay --verify`
records the divergence at that call's position, `/api/episodes/<id>` carries it with its
step, and in headless Chromium the page says "diverged at step K" with both sides, and its
link opens step K scrolled into view."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scaleenv._replay.logcopy import copy_log, replace_event
from scaleenv._store.events.episodes import ToolExecuted
from scaleenv._store.log import Log
from scaleenv._store.record import Record
from scaleenv._streams import episode_id_of, is_served
from tests.ui.conftest import UiServer
from tests.ui.test_browser import api, console_errors, css, load, until, wait_ready

TAMPERED = {"tampered": "a value no tool returned"}


def _target(path: Path) -> Record:
    """The last successful tool call of the local episode with the most events (so its step is far down the page)."""
    with Log.open(path, readonly=True) as lg:
        calls = [r for r in lg.read() if isinstance(r.event, ToolExecuted) and r.event.ok and r.stream.startswith("episode/")
                 and not is_served(r.stream)]
        assert calls, "the UI's run holds no successful episode tool call"
        longest = max({r.stream for r in calls}, key=lg.stream_length)
    return [r for r in calls if r.stream == longest][-1]


@pytest.fixture(scope="module")
def diverged(ui_run: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UiServer, Record, dict[str, Any]]]:
    """The run copied with the target call's result altered, verified (recording), and served."""
    target = _target(ui_run[0])
    dest = tmp_path_factory.mktemp("diverged") / "log"
    with Log.open(ui_run[0], readonly=True) as lg:
        copy_log(lg, dest, lambda r: replace_event(r, result=TAMPERED) if (r.stream, r.n) == (target.stream, target.n) else r)
    out = subprocess.run([sys.executable, "-m", "scaleenv", "replay", "--log", str(dest), "--verify", "--json"],
                         capture_output=True, text=True, timeout=900)
    report = json.loads(out.stdout.splitlines()[-1])
    assert out.returncode == 1, out.stderr
    server = UiServer(dest)
    try:
        yield server, target, report
    finally:
        server.close()


def test_verify_records_the_altered_call(diverged: tuple[UiServer, Record, dict[str, Any]]) -> None:
    _, target, report = diverged
    assert report["recorded"] is True
    assert [(d["stream"], d["n"], d["fields"]) for d in report["divergence_list"]] == [(target.stream, target.n, ["result"])]


def test_the_episode_json_carries_the_divergence_and_its_step(diverged: tuple[UiServer, Record, dict[str, Any]]) -> None:
    server, target, _ = diverged
    eid = episode_id_of(target.stream)
    page = api(server, f"/api/episodes/{eid}")
    [d] = page["divergences"]
    step = next(s for s in page["timeline"] if s["n"] == target.n)
    assert (d["checker"], d["stream"], d["n"], d["kind"], d["step"]) == ("verify", target.stream, target.n, "episode", step["step"])
    assert d["where"] == f"call {target.event.call_id!r}" and d["check"] == "check/verify#1"
    [field] = d["differences"]
    assert field["field"] == "result" and field["expected"] == TAMPERED
    assert field["got"] == json.loads(json.dumps(target.event.result))  # what the tool returns again: the original
    # an episode nothing diverged in carries none
    other = next(e["episode_id"] for e in api(server, "/api/episodes?limit=50")["items"] if e["episode_id"] != eid)
    assert api(server, f"/api/episodes/{other}")["divergences"] == []


def test_the_page_links_to_the_step_and_scrolls_to_it(browser: Any, diverged: tuple[UiServer, Record, dict[str, Any]]) -> None:
    server, target, _ = diverged
    eid = episode_id_of(target.stream)
    k = api(server, f"/api/episodes/{eid}")["divergences"][0]["step"]
    browser.get_log("browser")  # drop what an earlier test left
    browser.set_window_size(1400, 500)  # short: the step is out of view until the link is followed
    try:
        load(browser, f"{server.url}/episodes/{eid}?step=0")
        [box] = css(browser, ".divergence")
        assert f"diverged at step {k}" in box.text and "expected" in box.text and TAMPERED["tampered"] in box.text
        assert css(browser, f"#step-{k}")[0].get_attribute("class").split().count("diverged") == 1
        browser.execute_script("window.scrollTo(0, 0)")
        assert not _in_view(browser, f"#step-{k}")
        box.find_element("css selector", "a").click()
        until(browser, lambda b: b.current_url.endswith(f"/episodes/{eid}?step={k}#step-{k}"))
        wait_ready(browser)
        until(browser, lambda b: css(b, ".step.current")[0].get_attribute("data-step") == str(k))
        until(browser, lambda b: _in_view(b, f"#step-{k}"))
        # the link works from outside the app too: a fresh load of the URL lands on the step
        browser.execute_script("window.scrollTo(0, 0)")
        load(browser, f"{server.url}/episodes/{eid}?step={k}#step-{k}")
        until(browser, lambda b: _in_view(b, f"#step-{k}"))
        assert console_errors(browser) == []
    finally:
        browser.set_window_size(1400, 1000)


def _in_view(browser: Any, selector: str) -> bool:
    return bool(browser.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return r.height > 0 && r.top >= 0 && r.top < window.innerHeight;", selector))
