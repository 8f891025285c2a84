"""Every page in a real browser: headless Chromium (Debian's) driven through WebDriver.

Each test loads a page by its stable URL and waits for the page to say it is drawn
(``body[data-ready=1]``); the browser's console must hold no error."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import trio
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from scaleenv._replay.logcopy import append_all
from scaleenv._store.log import Log
from tests.ui.conftest import UiServer, copy_log
from tests.ui.test_index import episode_items

WAIT = 120  # generous: the machine is shared


def api(server: UiServer, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=WAIT) as r:
        return json.loads(r.read())


def load(browser: Any, url: str) -> None:
    browser.get(url)
    wait_ready(browser)


def wait_ready(browser: Any) -> None:
    until(browser, lambda b: b.execute_script("return document.body.dataset.ready") == "1")


def until(browser: Any, condition: Any) -> Any:
    """Wait for ``condition(browser)``; a page redrawing itself meanwhile replaces the elements
    a check held (stale), which only means: look again."""
    return WebDriverWait(browser, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def console_errors(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def css(browser: Any, selector: str) -> list[Any]:
    return browser.find_elements(By.CSS_SELECTOR, selector)


@pytest.fixture(autouse=True)
def _clean_console(browser: Any) -> Any:
    browser.get_log("browser")  # drop what an earlier test left
    yield
    assert console_errors(browser) == []


def test_run_page(browser: Any, ui_server: UiServer) -> None:
    load(browser, ui_server.url + "/")
    run = api(ui_server, "/api/run")
    assert browser.execute_script("return document.body.dataset.page") == "run"
    links = [a.text for a in css(browser, "table.data a[href^='/domains/']")]
    assert [d["slot"] for d in run["domains"]] == links[::2]
    charts = {f.get_attribute("data-chart"): f for f in css(browser, "figure.chart")}
    assert {"Reward (scored episodes)", "pass@1 and pass@k by domain", "Turns per episode", "Tool calls per episode",
            "Episode endings (reason/fault)"} <= set(charts)
    reward_bars = charts["Reward (scored episodes)"].find_elements(By.CSS_SELECTOR, "rect.bar")
    assert sum(float(b.get_attribute("data-value")) for b in reward_bars) == run["totals"]["episodes_scored"]
    assert any(k.startswith("Throughput") for k in charts)
    # an ending's bar opens the episodes with that ending
    bar = charts["Episode endings (reason/fault)"].find_elements(By.CSS_SELECTOR, "rect.bar")[0]
    ending = bar.get_attribute("data-category")
    bar.click()
    until(browser, lambda b: "/episodes?ending=" in b.current_url)
    wait_ready(browser)
    until(browser, lambda b: css(b, "td[data-col='ending']"))
    shown = {td.text for td in css(browser, "td[data-col='ending']")}
    assert shown == {ending}


def test_domain_page_graph_and_hover(browser: Any, ui_server: UiServer) -> None:
    d = api(ui_server, "/api/domains/d00")
    load(browser, ui_server.url + "/domains/d00")
    nodes = css(browser, "svg.graph .node")
    assert sorted(n.get_attribute("data-tool") for n in nodes) == sorted(t["name"] for t in d["tools"])
    edges = css(browser, "svg.graph path.edge")
    assert len(edges) == len(d["edges"])
    assert {e.get_attribute("data-kind") for e in edges} == {e["kind"] for e in d["edges"]}
    swatches = css(browser, ".legend .swatch-line")
    assert {s.get_attribute("data-kind") for s in swatches} == {e["kind"] for e in d["edges"]}
    colours = [s.value_of_css_property("border-top-color") for s in swatches]
    assert len(set(colours)) == len(colours)  # edge kinds are told apart
    # pointing at a tool highlights it, exactly its neighbours and exactly its edges
    name = max(d["verified"], key=lambda n: sum(n in (e["src"], e["dst"]) for e in d["edges"]))
    node = next(n for n in nodes if n.get_attribute("data-tool") == name)
    ActionChains(browser).move_to_element(node).perform()
    until(browser, lambda b: css(b, "svg.graph.focused"))
    neighbours = {e["dst"] for e in d["edges"] if e["src"] == name} | {e["src"] for e in d["edges"] if e["dst"] == name}
    assert [n.get_attribute("data-tool") for n in css(browser, "svg.graph .node.hl")] == [name]
    assert {n.get_attribute("data-tool") for n in css(browser, "svg.graph .node.nb")} == neighbours - {name}
    assert len(css(browser, "svg.graph .edge.hl")) == sum(name in (e["src"], e["dst"]) for e in d["edges"])
    assert name in css(browser, ".graph-info")[0].text
    # the schema shows every table with its primary key marked
    tables = [t.get_attribute("data-table") for t in css(browser, ".schema-table")]
    assert tables == [t["name"] for t in d["spec"]["tables"]]
    assert len(css(browser, ".schema-table .badge-pk")) == len(tables)
    # clicking a tool opens its audit
    ActionChains(browser).move_to_element(node).click().perform()
    until(browser, lambda b: b.current_url.endswith(f"/tools/d00/{name}"))
    wait_ready(browser)
    assert css(browser, "h1")[0].text == name


def test_domain_page_builds_tool_cards_edges_and_history_when_opened(browser: Any, ui_server: UiServer) -> None:
    """A paper-sized domain has 60-80 tools and hundreds of edges: their cards, the edge table
    and the design history are built the first time they are opened, and then show it all."""
    d = api(ui_server, "/api/domains/d00")
    load(browser, ui_server.url + "/domains/d00")
    cards = css(browser, "details.tool")
    assert sorted(c.get_attribute("data-tool") for c in cards) == sorted(t["name"] for t in d["tools"])
    assert css(browser, "details.tool ul.contract") == []  # nothing built before it is opened
    tool = next(t for t in d["tools"] if t["contract"])
    card = next(c for c in cards if c.get_attribute("data-tool") == tool["name"])
    card.find_element(By.CSS_SELECTOR, "summary").click()
    until(browser, lambda b: card.find_elements(By.CSS_SELECTOR, "ul.contract li"))
    assert [li.find_element(By.CSS_SELECTOR, "code").text for li in card.find_elements(By.CSS_SELECTOR, "ul.contract li")] \
        == [c["text"] for c in tool["contract"]]
    card.find_element(By.CSS_SELECTOR, "summary").click()  # closed and opened again: built once
    card.find_element(By.CSS_SELECTOR, "summary").click()
    assert len(card.find_elements(By.CSS_SELECTOR, "ul.contract")) == 1
    edges = next(x for x in css(browser, "details") if x.find_element(By.CSS_SELECTOR, "summary").text == f"{len(d['edges'])} edges")
    assert edges.find_elements(By.CSS_SELECTOR, "table") == []
    edges.find_element(By.CSS_SELECTOR, "summary").click()
    until(browser, lambda b: edges.find_elements(By.CSS_SELECTOR, "table tbody tr"))
    assert len(edges.find_elements(By.CSS_SELECTOR, "table tbody tr")) == len(d["edges"])
    if d["design_events"]:
        history = next(x for x in css(browser, "details")
                       if x.find_element(By.CSS_SELECTOR, "summary").text == f"{len(d['design_events'])} design events")
        history.find_element(By.CSS_SELECTOR, "summary").click()
        until(browser, lambda b: history.find_elements(By.CSS_SELECTOR, "ol.events li"))
        assert len(history.find_elements(By.CSS_SELECTOR, "ol.events li")) == len(d["design_events"])
    assert console_errors(browser) == []


def test_tool_audit_page(browser: Any, ui_server: UiServer) -> None:
    d = api(ui_server, "/api/domains/d00")
    tool = max(d["tools"], key=lambda t: t["code_versions"])
    audit = api(ui_server, f"/api/tools/d00/{tool['name']}")
    load(browser, f"{ui_server.url}/tools/d00/{tool['name']}")
    entries = css(browser, "ol.timeline > li.entry")
    assert [e.get_attribute("data-type") for e in entries] == [h["type"] for h in audit["history"]]
    assert len(css(browser, "ol.timeline pre.code, ol.timeline pre.diff")) >= tool["code_versions"]
    if tool["code_versions"] > 1:  # a repair is shown as a diff against the version before
        assert css(browser, "pre.diff .d-add") or css(browser, "pre.diff .d-del")
    runs = [h for h in audit["history"] if h["type"] == "tool.tests_run"]
    for run, el in zip(runs, [e for e in entries if e.get_attribute("data-type") == "tool.tests_run"]):
        assert len(el.find_elements(By.CSS_SELECTOR, "tbody tr")) == len(run["results"])
    assert audit["verdict"]["status"] in css(browser, ".page-head")[0].text


def test_task_page_marks_distractors(browser: Any, ui_server: UiServer) -> None:
    kept = api(ui_server, "/api/tasks?status=kept&limit=500")["items"]
    task_id = max(kept, key=lambda row: (row["distractors"], row["task_id"]))["task_id"]
    t = api(ui_server, f"/api/tasks/{task_id}")
    load(browser, f"{ui_server.url}/tasks/{task_id}")
    states = css(browser, "section.card .state")
    initial, final = states[0], states[1]
    marked = initial.find_elements(By.CSS_SELECTOR, "tr.mark-distractor")
    state = t["view"]["initial_state"]
    present = [(tb, k) for tb, k in t["view"]["distractors"] if k in state.get(tb, {})]
    assert sorted((r.find_element(By.XPATH, "ancestor::div[@data-table]").get_attribute("data-table"), r.get_attribute("data-key"))
                  for r in marked) == sorted(present)
    assert present
    absent = css(browser, ".absent-distractors")  # listed by task.instantiated but missing from the state: flagged
    assert len(absent) == (len(present) < len(t["view"]["distractors"]))
    assert len(final.find_elements(By.CSS_SELECTOR, "tr.changed")) == len(t["changed"])
    assert t["view"]["instruction"] in css(browser, "blockquote.instruction")[0].text
    assert len(css(browser, "ol.golden > li")) == len(t["view"]["golden"]["steps"])
    assert len(css(browser, "td[data-col='episode'] a")) == t["episodes"]["total"]


def at_step(k: int) -> Any:
    """The episode page shows step ``k`` and its URL says so."""
    return lambda b: b.current_url.endswith(f"?step={k}") and css(b, ".step.current")[0].get_attribute("data-step") == str(k)


def test_episode_replay_steps(browser: Any, ui_server: UiServer) -> None:
    eid = api(ui_server, "/api/episodes?status=scored&min_reward=1&limit=1")["items"][0]["episode_id"]
    e2 = api(ui_server, f"/api/episodes/{eid}?step=2")
    load(browser, f"{ui_server.url}/episodes/{eid}?step=2")
    assert css(browser, ".step.current")[0].get_attribute("data-step") == "2"
    assert len(css(browser, ".step.future")) == e2["steps"] - 2
    assert css(browser, ".step-label")[0].text == f"step 2 of {e2['steps']}"
    # next: the URL names step 3 and the state pane shows what step 3 changed
    css(browser, "button.next")[0].click()
    until(browser, at_step(3))
    e3 = api(ui_server, f"/api/episodes/{eid}?step=3")
    assert len(css(browser, ".state-pane ul.delta > li")) == len(e3["diff"])
    assert len(css(browser, ".state-pane tr.changed")) == len(e3["diff"])
    # the arrow keys step too; the last step shows the reward breakdown
    css(browser, "button.last")[0].click()
    until(browser, at_step(e2["steps"]))
    reward = e2["summary"]["rewards"][-1]
    assert "reward " + ("1" if reward["reward"] == 1 else str(reward["reward"])) in css(browser, ".state-pane .reward-line")[0].text
    body = css(browser, "body")[0]
    ActionChains(browser).move_to_element(body).send_keys("\ue012").perform()  # ArrowLeft
    until(browser, at_step(e2["steps"] - 1))


def test_unknown_ids_show_the_servers_message(browser: Any, ui_server: UiServer) -> None:
    load(browser, ui_server.url + "/episodes/d00/t000/g99")
    assert browser.execute_script("return document.body.dataset.error") == "404"
    assert "no episode 'd00/t000/g99' in the log" in css(browser, ".error-message")[0].text
    browser.get_log("browser")  # the 404 response itself is logged by the browser: expected here


def test_any_field_is_shown(browser: Any, ui_server: UiServer) -> None:
    """The generic renderer shows fields no page knows about (a spec's future column policies)."""
    load(browser, ui_server.url + "/")
    html = browser.execute_script("""
        const el = window.scaleenvUi.renderValue({fields: [
            {name: "total", type: "float", reward_policy: "exact"},
            {name: "note", type: "str", reward_policy: "semantic", tolerance: 0.01}],
          goals: ["cancel", "refund"]});
        return [...el.querySelectorAll("th")].map((t) => t.textContent).join(",") + "|" + el.textContent;""")
    headers, text = html.split("|", 1)
    assert headers == "name,type,reward_policy,tolerance"
    assert "semantic" in text and "refund" in text


def test_pages_follow_a_run_live_and_show_model_text_as_text(browser: Any, ui_run: tuple[Path, dict[str, Any]],
                                                              tmp_path: Path) -> None:
    path = copy_log(ui_run[0], tmp_path / "log")
    server = UiServer(path)
    try:
        load(browser, server.url + "/")
        until(browser, lambda b: "live" in css(b, "#live")[0].text)
        before = api(server, "/api/run")["totals"]["episodes_served"]
        task_id = api(server, "/api/tasks?status=kept&limit=1")["items"][0]["task_id"]
        hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'
        with Log.open(path) as log:
            trio.run(append_all, log, episode_items(task_id, "s0", reward=1.0, content=hostile))
        # the run page redraws itself when the log moves (no reload)
        stat = lambda b: [s.text for s in css(b, ".stat") if "episodes scored" in s.text][0]  # noqa: E731
        until(browser, lambda b: f"{before + 1} served" in stat(b))
        assert browser.execute_script("return window.performance.getEntriesByType('navigation').length") == 1
        load(browser, f"{server.url}/episodes/{task_id}/s0?step=1")
        bubble = css(browser, ".step.current .bubble .content")[0]
        assert bubble.text == hostile
        assert browser.execute_script("return window.pwned") is None
        assert not css(browser, ".bubble img") and not css(browser, ".bubble script")
        assert console_errors(browser) == []
    finally:
        browser.get("about:blank")  # leave before the server stops (its long poll would be refused)
        browser.get_log("browser")
        server.close()


def test_a_browser_logs_in_once_with_the_token(browser: Any, ui_run: tuple[Path, dict[str, Any]]) -> None:
    token = "browser-0123456789abcdefghij"
    server = UiServer(ui_run[0], env={"SCALEENV_TOKEN": token})
    try:
        browser.get(server.url + "/domains/d00")
        until(browser, lambda b: css(b, "input#token"))
        assert browser.current_url == server.url + "/login?next=%2Fdomains%2Fd00"
        css(browser, "input#token")[0].send_keys(token)
        css(browser, "button#login")[0].click()
        until(browser, lambda b: b.current_url == server.url + "/domains/d00")
        wait_ready(browser)
        assert browser.execute_script("return document.body.dataset.error") is None
        assert css(browser, "svg.graph .node")  # drawn from /api/domains/d00, fetched with the cookie
        (cookie,) = [c for c in browser.get_cookies() if c["name"].startswith("scaleenv_ui_")]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and token not in cookie["value"]
        assert browser.execute_script("return document.cookie") == ""  # no page script can read it
        load(browser, server.url + "/")  # the next page needs no login
        assert browser.execute_script("return document.body.dataset.page") == "run"
    finally:
        browser.delete_all_cookies()  # this host's: the next tests start logged out
        browser.get("about:blank")  # leave before the server stops (its long poll would be refused)
        browser.get_log("browser")
        server.close()
