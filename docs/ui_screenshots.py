"""Screenshots of every page of `scaleenv ui`, for the README (docs/ui/*.png).

    .venv/bin/python docs/ui_screenshots.py [--log PATH] [--out docs/ui]

Without ``--log`` it makes the README's own run first (``scaleenv run --seed 1``, the
offline sim) in a temporary folder. Then it starts ``scaleenv ui`` on the log and loads
each page by its URL in Debian's headless Chromium (apt-get install chromium
chromium-driver), waits until the page has drawn itself, and saves the page: the run,
a domain with a tool's neighbourhood highlighted in the graph, a tool's audit, a task,
an episode at a middle step, and a filtered episode list.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WIDTH, MAX_HEIGHT = 1400, 2000


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=300) as r:
        return json.loads(r.read())


def shoot(driver: Any, url: str, out: Path, before: Any = None) -> None:
    driver.set_window_size(WIDTH, 1000)
    driver.get(url)
    WebDriverWait(driver, 300).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    if driver.execute_script("return document.body.dataset.error || null"):
        raise RuntimeError(f"{url} shows an error")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(MAX_HEIGHT, height + 20))
    if before is not None:
        before(driver)
    driver.save_screenshot(str(out))
    print(f"wrote {out}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "ui")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ui-shots-"))
    try:
        log = args.log
        if log is None:
            log = work / "scaleenv.lmdb"
            subprocess.run([sys.executable, "-m", "scaleenv", "run", "--seed", "1", "--log", str(log), "--json"],
                           check=True, stdout=subprocess.DEVNULL)
        args.out.mkdir(parents=True, exist_ok=True)
        server = subprocess.Popen([sys.executable, "-m", "scaleenv", "ui", "--log", str(log), "--port", "0", "--json"],
                                  stdout=subprocess.PIPE, text=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={work / 'profile'}"]:
            opts.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        try:
            base = json.loads(server.stdout.readline())["url"].rstrip("/")  # type: ignore[union-attr]
            head = get(base, "/api/head")
            while not head["caught_up"]:
                head = get(base, f"/api/head?after={head['seq']}&wait=5")
            domain = get(base, "/api/domains/d00")
            tool = max(domain["tools"], key=lambda t: t["code_versions"])["name"]
            hub = max(domain["verified"], key=lambda n: sum(n in (e["src"], e["dst"]) for e in domain["edges"]))
            task = get(base, "/api/tasks?domain=d00&status=kept&limit=1")["items"][0]["task_id"]
            episode = max(get(base, f"/api/episodes?task={task}")["items"], key=lambda e: e["events"])["episode_id"]
            steps = get(base, f"/api/episodes/{episode}?step=0")["steps"]

            def hover(driver: Any) -> None:
                node = driver.find_element(By.CSS_SELECTOR, f"svg.graph .node[data-tool='{hub}']")
                ActionChains(driver).move_to_element(node).perform()

            shoot(driver, base + "/", args.out / "run.png")
            shoot(driver, f"{base}/domains/d00", args.out / "domain.png", hover)
            shoot(driver, f"{base}/tools/d00/{tool}", args.out / "tool.png")
            shoot(driver, f"{base}/tasks/{task}", args.out / "task.png")
            shoot(driver, f"{base}/episodes/{episode}?step={max(1, steps // 2)}", args.out / "episode.png")
            shoot(driver, f"{base}/episodes?ending=user_done/policy", args.out / "episodes.png")
        finally:
            driver.quit()
            server.terminate()
            server.wait(timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
