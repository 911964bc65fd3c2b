"""The web view in a real headless browser (Debian's Chromium through its chromium-driver,
driven by selenium; nothing is downloaded) against a real daemon with a live twin run:
the page loads, the runs table shows the run, the plot receives measured points and the
twin's prediction, a read key's Pause is refused on the page, an operate key's Pause
and Resume steer the run, and the emergency-stop button turns the cell off (each
asserted from the daemon). ``GALVANA_WEB_VIEW_SCREENSHOT=FILE`` keeps a screenshot of the run page.
Without Chromium the test is skipped saying how to install it; CI installs it and sets
GALVANA_REQUIRE_BROWSER=1, which makes its absence a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.actors.test_twin_runs import twin_spec
from tests.runtime._actors import wait_until
from tests.runtime.http._gateway import GatewayDaemon, start_gateway, wait_state

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("GALVANA_REQUIRE_BROWSER") == "1"
# Where to keep a screenshot of the run page (the README's docs/web-view.png was made so).
SCREENSHOT = os.environ.get("GALVANA_WEB_VIEW_SCREENSHOT")

if CHROMIUM is None or DRIVER is None:
    missing = "chromium" if CHROMIUM is None else "chromium-driver"
    why = (
        f"no {missing}: install Debian's browser and its driver "
        "(apt-get install chromium chromium-driver) to test the web view"
    )
    if REQUIRED:
        pytest.fail(f"GALVANA_REQUIRE_BROWSER=1 but {why}", pytrace=False)
    pytest.skip(why, allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only where a browser exists
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    # The system's driver, given explicitly: selenium's manager then downloads nothing.
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayDaemon]:
    daemon = start_gateway(tmp_path)
    yield daemon
    daemon.stop()


def _view(browser: Any) -> dict[str, Any]:
    return dict(browser.execute_script("return window.galvanaView"))


def _use_key(browser: Any, key: str) -> None:
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()


def test_the_web_view_follows_a_live_run_and_its_estop_turns_the_cell_off(
    browser: Any, gateway: GatewayDaemon
) -> None:
    with gateway.http("operate") as client:
        run_id = client.post("/api/v1/runs", json=twin_spec(cycles=40)).json()["id"]
        wait_state(client, run_id, {"running"})

    browser.get(gateway.url + "/")
    _use_key(browser, gateway.keys["read"])
    wait_until(lambda: _view(browser)["runsShown"] >= 2, timeout=30, what="the runs table")
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    row = next(r for r in rows if r.get_attribute("data-run") == run_id)
    assert "running" in row.text

    row.click()
    wait_until(
        lambda: _view(browser)["points"] > 200 and _view(browser)["predicted"] > 100,
        timeout=60,
        what="measured points and the twin's prediction in the plot",
    )
    view = _view(browser)
    assert view["runId"] == run_id
    assert view["state"] == "running"
    assert browser.find_element(By.CSS_SELECTOR, "#plot canvas").size["width"] > 300
    wait_until(lambda: _view(browser)["posteriorVersion"] >= 1, timeout=60, what="a posterior")
    assert browser.find_elements(By.CSS_SELECTOR, "#parameters tbody tr")
    if SCREENSHOT:
        browser.save_screenshot(SCREENSHOT)

    # A read key sees everything but steers nothing: the page says why.
    browser.find_element(By.ID, "pause").click()
    wait_until(lambda: _view(browser)["errors"] >= 1, timeout=30, what="the refusal shown")
    assert "403" in browser.find_element(By.ID, "error").text
    assert "operate" in browser.find_element(By.ID, "error").text
    with gateway.http("read") as client:
        assert client.get(f"/api/v1/runs/{run_id}").json()["state"] == "running"

    # With an operate key the buttons steer the run (the page reopens it, same stream).
    _use_key(browser, gateway.keys["operate"])
    wait_until(lambda: _view(browser)["streamOpen"], timeout=30, what="the stream reopened")
    browser.find_element(By.ID, "pause").click()
    with gateway.http("read") as client:
        assert wait_state(client, run_id, {"paused"}) == "paused"
    wait_until(lambda: _view(browser)["state"] == "paused", timeout=30, what="the page paused")
    browser.find_element(By.ID, "resume").click()
    with gateway.http("read") as client:
        assert wait_state(client, run_id, {"running"}) == "running"
    wait_until(lambda: _view(browser)["state"] == "running", timeout=30, what="the page resumed")

    browser.find_element(By.ID, "estop").click()
    with gateway.http("read") as client:
        wait_until(
            lambda: client.get("/api/v1/instruments").json()["items"][0]["state"] == "tripped",
            timeout=30,
            what="the instrument to report its cell off",
        )
        assert wait_state(client, run_id, {"aborted", "completed"}) == "aborted"
    wait_until(lambda: _view(browser)["state"] == "aborted", timeout=30, what="the page to say so")
    with gateway.client() as owner:
        (sim,) = owner.call("instruments", "list")
        assert "emergency stop from the web view" in sim["trip"]
