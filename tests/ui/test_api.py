"""`scaleenv ui`'s JSON, from the real server process: the same data the CLI prints
(`audit`, `show task`, `replay --episode`), pages and lists, clear errors, read-only."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio

from scaleenv._replay.logcopy import append_all
from scaleenv._store.log import Log
from scaleenv._ui.app import UiApp
from scaleenv._ui.http import Request, Response
from scaleenv._ui.index import Follower
from tests.ui.conftest import UiServer, copy_log
from tests.ui.test_index import episode_items


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read()
            return r.status, json.loads(body) if r.headers.get_content_type() == "application/json" else body
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if e.headers.get_content_type() == "application/json" else body


def cli(*args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "scaleenv", *args, "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def roundtrip(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def test_run_figures_are_the_run_summary(ui_server: UiServer, ui_run: tuple[Path, dict[str, Any]]) -> None:
    status, run = get(ui_server.url + "/api/run")
    assert status == 200
    want = ui_run[1]
    assert run["totals"]["domains"] == len(want["domains"])
    for got, exp in zip(run["domains"], want["domains"]):
        for key, value in exp.items():
            key = "pass_at_k" if key.startswith("pass_at_") and key != "pass_at_1" else key
            assert got[key] == value, key
    scored = sum(d["episodes"] for d in want["domains"])
    assert run["totals"]["episodes_scored"] == scored
    assert sum(sum(v) for v in run["charts"]["reward"]["series"].values()) == scored
    assert sum(n for per in run["charts"]["endings"].values() for n in per.values()) == scored
    assert run["log"]["events"] == want["events"] and run["log"]["caught_up"] in (True, False)
    assert run["throughput"]["series"]["events"] and sum(run["throughput"]["series"]["events"]) > 0


def test_tool_audit_is_what_scaleenv_audit_prints(ui_server: UiServer, ui_run: tuple[Path, dict[str, Any]]) -> None:
    status, domain = get(ui_server.url + "/api/domains/d00")
    assert status == 200
    repaired = max(domain["tools"], key=lambda t: t["code_versions"])
    status, audit = get(f"{ui_server.url}/api/tools/d00/{repaired['name']}")
    assert status == 200
    expected = cli("audit", "--log", str(ui_run[0]), f"d00/{repaired['name']}")
    slot = audit.pop("slot")
    assert slot == "d00" and audit == roundtrip(expected)
    if repaired["code_versions"] > 1:
        assert any(h["type"] == "tool.code_proposed" and h["diff"] for h in audit["history"])


def test_domain_has_the_whole_spec_and_a_layout(ui_server: UiServer, ui_run: tuple[Path, dict[str, Any]]) -> None:
    status, d = get(ui_server.url + "/api/domains/d00")
    shown = cli("show", "--log", str(ui_run[0]), "domain", "d00")
    assert d["spec"] == roundtrip(shown["spec"])  # every field of the spec, whatever the spec holds
    assert d["verified"] == shown["verified"] and d["rejected"] == shown["rejected"]
    assert [{k: v for k, v in e.items() if k != "type"} for e in roundtrip(shown["edges"])] == d["edges"]
    assert {n["name"] for n in d["graph"]["nodes"]} == {t["name"] for t in d["spec"]["tools"]}
    assert d["tasks"]["total"] == d["figures"]["tasks"] + sum(d["figures"]["tasks_discarded"].values()) + d["figures"]["tasks_pending"]
    # by name too
    status, by_name = get(f"{ui_server.url}/api/domains/{d['name']}")
    assert status == 200 and by_name["slot"] == "d00"


def test_task_is_what_scaleenv_show_task_prints(ui_server: UiServer, ui_run: tuple[Path, dict[str, Any]]) -> None:
    status, page = get(ui_server.url + "/api/tasks?domain=d00&status=kept")
    task_id = page["items"][0]["task_id"]
    status, t = get(f"{ui_server.url}/api/tasks/{task_id}")
    assert status == 200
    shown = roundtrip(cli("show", "--log", str(ui_run[0]), "task", task_id))
    v = t["view"]
    for key in ("instruction", "user_facts", "chain", "status", "domain"):
        assert v[key] == shown[key], key
    assert v["initial_state"] == shown["initial_state"]
    assert v["expected_final"] == shown["expected_final_state"]
    assert [s for s in v["golden"]["steps"]] == shown["golden_chain"]
    assert sorted([m["table"], m["key"]] for m in t["marks"] if m["mark"] == "distractor") == sorted(shown["distractors"])
    assert t["episodes"]["total"] == len([e for e in t["episodes"]["items"]]) > 0


@pytest.mark.parametrize("step", [0, 3, None])
def test_episode_step_is_what_scaleenv_replay_prints(ui_server: UiServer, ui_run: tuple[Path, dict[str, Any]],
                                                     step: int | None) -> None:
    status, page = get(ui_server.url + "/api/episodes?domain=d00&status=scored&limit=1")
    eid = page["items"][0]["episode_id"]
    q = "" if step is None else f"?step={step}"
    status, e = get(f"{ui_server.url}/api/episodes/{eid}{q}")
    assert status == 200
    args = ["replay", "--log", str(ui_run[0]), "--episode", eid, "--llm-calls"] + ([] if step is None else ["--step", str(step)])
    want = roundtrip(cli(*args))
    for key in ("episode", "step", "steps", "state", "diff", "conversation", "marks", "task_id"):
        assert e[key] == want[key], key
    assert len(e["timeline"]) == e["steps"] and e["timeline"][: e["step"]] == e["conversation"]
    assert e["summary"]["rewards"] and e["summary"]["ended"]["reason"]


def test_lists_paginate(ui_server: UiServer) -> None:
    _, everything = get(ui_server.url + "/api/episodes?limit=500")
    _, page = get(ui_server.url + "/api/episodes?offset=3&limit=4")
    assert page["total"] == everything["total"] and page["items"] == everything["items"][3:7]
    _, tasks = get(ui_server.url + "/api/tasks")
    assert tasks["total"] == len(tasks["items"]) and tasks["limit"] == 50
    _, ending = get(ui_server.url + "/api/episodes?ending=user_done/none&limit=500")
    assert ending["items"] and all(i["ending"] == "user_done/none" for i in ending["items"])
    _, rewarded = get(ui_server.url + "/api/episodes?min_reward=1&limit=500")
    assert all(i["reward"] >= 1 for i in rewarded["items"])


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/api/domains/d99", 404, "no domain 'd99' in the log; domains: d00, d01"),
    ("/api/tools/d00/no_such_tool", 404, "no tool 'no_such_tool' in domain d00; its tools:"),
    ("/api/tasks/d00/t999", 404, "no task 'd00/t999' in the log; tasks look like d00/t"),
    ("/api/episodes/d00/t000/g99", 404, "no episode 'd00/t000/g99' in the log"),
    ("/api/episodes?limit=0", 400, "?limit=0 is out of range"),
    ("/api/episodes?offset=x", 400, "?offset='x' is not a whole number"),
    ("/api/episodes?status=odd", 400, "?status='odd': use running, ended or scored"),
    ("/api/episodes?min_reward=high", 400, "?min_reward='high' is not a number"),
    ("/api/nothing", 404, "no API route '/nothing'"),
])
def test_bad_requests_get_one_clear_line(ui_server: UiServer, path: str, status: int, words: str) -> None:
    got, body = get(ui_server.url + path)
    assert got == status
    assert words in body["error"]["message"] and "\n" not in body["error"]["message"]


def test_episode_step_out_of_range(ui_server: UiServer) -> None:
    _, page = get(ui_server.url + "/api/episodes?limit=1")
    eid = page["items"][0]["episode_id"]
    status, body = get(f"{ui_server.url}/api/episodes/{eid}?step=9999")
    assert status == 400 and "?step=9999 is out of range (0.." in body["error"]["message"]


def test_pages_and_assets(ui_server: UiServer) -> None:
    for path in ("/", "/episodes", "/domains/d00", "/tasks/d00/t000", "/episodes/d00/t000/g0?step=2", "/tools/d00/x"):
        status, body = get(ui_server.url + path)
        assert status == 200 and b'<script type="module" src="/static/app.js">' in body
    status, _ = get(ui_server.url + "/not/a/page")
    assert status == 404
    conn = http.client.HTTPConnection("127.0.0.1", ui_server.port, timeout=60)
    conn.request("GET", "/static/app.js")
    r = conn.getresponse()
    r.read()
    etag = r.getheader("etag")
    assert r.status == 200 and r.getheader("content-type").startswith("text/javascript")
    assert "default-src 'self'" in r.getheader("content-security-policy")
    conn.request("GET", "/static/app.js", headers={"if-none-match": etag})
    r = conn.getresponse()
    assert r.status == 304 and r.read() == b""
    conn.request("GET", "/static/../app.py")
    r = conn.getresponse()
    assert r.status == 404
    r.read()
    conn.close()


def test_read_only_and_loopback_only(ui_server: UiServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", ui_server.port, timeout=60)
    conn.request("POST", "/api/run", body=b"{}")
    r = conn.getresponse()
    assert r.status == 405 and "read-only" in json.loads(r.read())["error"]["message"]
    conn.request("GET", "/api/run", headers={"Host": "attacker.example:80"})
    r = conn.getresponse()
    assert r.status == 403 and "not served here" in json.loads(r.read())["error"]["message"]
    conn.close()


def test_the_ui_takes_no_writer_lock_and_follows_a_writer(ui_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path = copy_log(ui_run[0], tmp_path / "log")
    server = UiServer(path)
    try:
        _, head = get(server.url + "/api/head")
        # a writer can open the log while the UI serves it: the UI holds no lock
        with Log.open(path) as log:
            _, page = get(server.url + "/api/tasks?status=kept&limit=1")
            task_id = page["items"][0]["task_id"]
            trio.run(append_all, log, episode_items(task_id, "s3", reward=0.0))
            last = log.last_seq()
        # the long poll answers once the index has moved past the seq it was given
        deadline = time.monotonic() + 120
        while True:
            _, head = get(f"{server.url}/api/head?after={head['seq']}&wait=20")
            if head["seq"] >= last or time.monotonic() > deadline:
                break
        assert head["seq"] == last
        status, e = get(f"{server.url}/api/episodes/{task_id}/s3")
        assert status == 200 and e["summary"]["rewards"][0]["reward"] == 0.0
        _, run = get(server.url + "/api/run")
        assert run["totals"]["episodes_served"] == 1
    finally:
        server.close()
    assert server.proc.returncode == 0


async def test_the_auth_hook_answers_before_anything_is_read(ui_run: tuple[Path, dict[str, Any]]) -> None:
    seen: list[str] = []

    def authorize(request: Request) -> Response | None:
        seen.append(request.path)
        if request.headers.get("authorization") == "Bearer let-me-in":
            return None
        return Response(401, b'{"error": "token needed"}')

    with Log.open(ui_run[0], readonly=True) as log:
        app = UiApp(log, Follower(log), authorize=authorize)
        denied = await app(Request("GET", "/api/run", {}, {}))
        allowed = await app(Request("GET", "/api/head", {}, {"authorization": "Bearer let-me-in"}))
    assert denied.status == 401 and allowed.status == 200
    assert seen == ["/api/run", "/api/head"]


def test_the_app_refuses_a_writable_log(tmp_path: Path, ui_run: tuple[Path, dict[str, Any]]) -> None:
    path = copy_log(ui_run[0], tmp_path / "log")
    with Log.open(path) as log, pytest.raises(ValueError, match="readonly=True"):
        UiApp(log, Follower(log))
