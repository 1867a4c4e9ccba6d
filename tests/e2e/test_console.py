"""The operators' console in a real headless Chromium against a real `flashsale serve`: a
wrong token is refused, the live figures move while purchases and refusals come in, and
pause, resume, add stock and end take effect. Screenshots of each step are kept under
test-artifacts/console/; docs/images/console.png in the README is one of them."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests import sync_http as http
from tests.browser import chromium_browsers, shoot, text, visible, wait
from tests.helpers import ADMIN, ADMIN_TOKEN, sale_body
from tests.service import GREEDY_SHOPPERS_SHED, Service, service_with_own_redis

TOKEN_KEY = "flashsale.admin-token"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    # A greedy shopper's repeats are shed: the shed sparkline moves.
    root = Path(tmp_path_factory.mktemp("console"))
    with service_with_own_redis(root, GREEDY_SHOPPERS_SHED, "--workers", "1") as running:
        yield running


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium_browsers("1200,900") as launch:
        yield launch()


class Shoppers:
    """Purchases from a thread until stopped: new shoppers, and one who keeps retrying."""

    def __init__(self, engine: Service, sale_id: str) -> None:
        self._url = f"{engine.url}/v1/sales/{sale_id}/purchases"
        self._stop = threading.Event()
        self.statuses: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            user = "greedy" if n % 3 == 0 else f"shopper-{n}"
            self.statuses.append(http.post(self._url, {"user_id": user, "quantity": 1})[0])
            self._stop.wait(0.02)  # a steady trickle, not a flood: the page is the subject

    def __enter__(self) -> Shoppers:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def sign_in(browser: WebDriver, engine: Service, token: str) -> None:
    browser.get(f"{engine.url}/console")
    field = browser.find_element(By.ID, "token")
    field.send_keys(token)
    browser.find_element(By.ID, "sign-in").click()


def confirm(browser: WebDriver, button: str) -> None:
    browser.find_element(By.ID, button).click()
    wait(browser, "the confirmation", lambda b: visible(b, "confirm"))
    browser.find_element(By.ID, "confirm-yes").click()


def spark(browser: WebDriver, key: str) -> float:
    rows = browser.find_elements(By.ID, f"spark-{key}")
    return float(rows[0].get_attribute("data-peak") or 0) if rows else 0.0


def points(browser: WebDriver, key: str) -> int:
    rows = browser.find_elements(By.ID, f"spark-{key}")
    return int(rows[0].get_attribute("data-points") or 0) if rows else 0


def stored_token(browser: WebDriver) -> Any:
    return browser.execute_script("return sessionStorage.getItem(arguments[0])", TOKEN_KEY)


def test_a_wrong_token_is_refused(engine: Service, browser: WebDriver) -> None:
    sign_in(browser, engine, "not-the-token")
    wait(browser, "the refusal", lambda b: "refused" in text(b, "login-error"))
    assert not visible(browser, "desk")
    assert stored_token(browser) is None  # not kept
    shoot(browser, "console", "1-wrong-token")


def test_figures_move_under_load_and_the_controls_take_effect(
    engine: Service, browser: WebDriver
) -> None:
    body = sale_body(stock=400, per_user_limit=1, name="Anniversary headphones")
    sale_id = body["sale_id"]
    assert http.post(engine.url + "/admin/sales", body, ADMIN)[0] == 201
    sign_in(browser, engine, ADMIN_TOKEN)
    row = wait(browser, "the sale listed", lambda b: next(
        (r for r in b.find_elements(By.CSS_SELECTOR, "tr.sale")
         if r.get_attribute("data-sale-id") == sale_id), False,
    ))  # fmt: skip
    assert stored_token(browser) == ADMIN_TOKEN
    assert ADMIN_TOKEN not in browser.current_url
    row.click()
    wait(browser, "the first event", lambda b: text(b, "stock-left") == "400")

    with Shoppers(engine, sale_id) as shoppers:
        wait(browser, "units held", lambda b: int(text(b, "held") or 0) >= 20, within=30)
        wait(browser, "attempts/s", lambda b: spark(b, "attempts") > 0)
        wait(browser, "shed/s by reason", lambda b: spark(b, "shed-rate_limited_user") > 0)
        wait(browser, "latency", lambda b: text(b, "latency") not in ("-", "- / -"))
        # Some seconds of history, so that the screenshot shows lines, not dots.
        wait(browser, "8 s of sparkline", lambda b: points(b, "attempts") >= 8, within=30)
        shoot(browser, "console", "2-live-under-load")
    assert 201 in shoppers.statuses
    assert 429 in shoppers.statuses
    left = int(text(browser, "stock-left"))
    assert left < 400
    assert text(browser, "breaker") == "closed"

    confirm(browser, "pause")
    wait(browser, "paused", lambda b: text(b, "status") == "paused")
    assert visible(browser, "resume")
    assert not visible(browser, "pause")
    status, answer = http.post(
        f"{engine.url}/v1/sales/{sale_id}/purchases", {"user_id": "after-pause", "quantity": 1}
    )
    assert (status, answer["code"]) == (409, "sale_paused")
    shoot(browser, "console", "3-paused")

    confirm(browser, "resume")
    wait(browser, "live again", lambda b: text(b, "status") == "live")
    units = browser.find_element(By.ID, "add-units")
    units.clear()
    units.send_keys("25")
    confirm(browser, "add-stock")
    wait(browser, "the stock added", lambda b: text(b, "stock-total") == "425")
    confirm(browser, "end")
    wait(browser, "ended", lambda b: text(b, "status") == "ended")
    assert http.get(f"{engine.url}/v1/sales/{sale_id}")[1]["status"] == "ended"
    shoot(browser, "console", "4-ended")


def test_the_console_runs_nothing_but_its_own_script(engine: Service) -> None:
    with urllib.request.urlopen(f"{engine.url}/console", timeout=10) as response:  # noqa: S310
        policy = response.headers["Content-Security-Policy"]
        page = response.read().decode()
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "http://" not in page
    assert "https://" not in page
