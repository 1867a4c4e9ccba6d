"""The reference waiting page in a real headless Chromium (Debian's, driven by selenium),
against a real `flashsale serve`: two shoppers join before the open, wait, one is admitted
and buys the last unit, and the other is told the sale sold out. Screenshots of each step
are kept under test-artifacts/waiting-room/ (FLASHSALE_TEST_ARTIFACTS moves them)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import chromium_browsers, text, visible, wait
from tests.browser import shoot as save_screenshot
from tests.helpers import ADMIN, ADMIN_TOKEN, from_now, sale_body
from tests.servers import redis_server
from tests.service import Service, flashsale_service
from tests.sync_http import request


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = Path(tmp_path_factory.mktemp("waiting-page"))
    with redis_server(root / "redis") as redis_url:
        env = {
            "FLASHSALE_REDIS_URL": redis_url,
            "FLASHSALE_ADMIN_TOKEN": ADMIN_TOKEN,
            "FLASHSALE_QUEUE_POLL_AFTER_SECONDS": "0.5",
            "FLASHSALE_QUEUE_TICK_SECONDS": "0.05",
            "FLASHSALE_QUEUE_REFRESH_SECONDS": "0.05",
        }
        with flashsale_service(root / "serve", env) as running:
            yield running


@pytest.fixture
def browsers() -> Iterator[list[WebDriver]]:
    with chromium_browsers() as launch:
        yield [launch(), launch()]


def api(engine: Service, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    status, answer = request(method, engine.url + path, body, ADMIN)
    assert status in (200, 201), (status, answer)
    return answer


def shoot(browser: WebDriver, name: str) -> None:
    save_screenshot(browser, "waiting-room", name)


def test_join_wait_be_admitted_buy_and_see_sold_out(
    engine: Service, browsers: list[WebDriver]
) -> None:
    sale = api(engine, "POST", "/admin/sales", sale_body(
        stock=1, starts_at=from_now(seconds=4), ends_at=from_now(hours=1),
        waiting_room={"enabled": True, "admit_per_second": 1},
    ))  # fmt: skip
    page = f"{engine.url}/v1/sales/{sale['sale_id']}/waiting-room"
    for browser, shopper in zip(browsers, ("ann", "bob"), strict=True):
        browser.get(page)
        browser.find_element(By.ID, "user").send_keys(shopper)
        browser.find_element(By.ID, "join-button").click()
    for browser in browsers:
        wait(browser, "the pre-queue", lambda b: "in the queue" in text(b, "position"))
    assert "drawn at random" in text(browsers[0], "eta")
    shoot(browsers[0], "1-before-the-open")

    # At the open the two are drawn into an order; the first is admitted within a second.
    first = wait(browsers[0], "an admission", lambda _: next(
        (b for b in browsers if visible(b, "admitted")), False
    ))  # fmt: skip
    other = browsers[1] if first is browsers[0] else browsers[0]
    shoot(first, "2-admitted")
    wait(other, "a place in line", lambda b: "in line" in text(b, "position"))
    assert "s to go" in text(other, "eta")
    shoot(other, "2-waiting-in-line")
    first.find_element(By.ID, "buy").click()
    wait(first, "the reservation", lambda b: "Reserved!" in text(b, "outcome"))
    shoot(first, "3-reserved")
    order_id = text(first, "outcome").split("Order ", 1)[1].split(" ", 1)[0]

    # Paid: nothing can come back to the queue, and the other shopper is told so.
    api(engine, "POST", f"/v1/orders/{order_id}/confirm")
    if visible(other, "admitted"):  # admitted before the unit was taken: buying says it
        other.find_element(By.ID, "buy").click()
    wait(other, "sold out", lambda b: "Sold out" in text(b, "outcome"))
    shoot(other, "4-sold-out")
    assert not visible(other, "waiting")
    assert api(engine, "GET", f"/admin/sales/{sale['sale_id']}")["stock_left"] == 0


def test_a_line_too_slow_to_estimate_is_said_so(engine: Service) -> None:
    """A room admitting at the smallest positive pace has no estimate worth a number: the page
    says so rather than "About 0 s to go"."""
    sale = api(engine, "POST", "/admin/sales", sale_body(
        waiting_room={"enabled": True, "admit_per_second": 5e-324},
    ))  # fmt: skip
    with chromium_browsers() as launch:
        browser = launch()
        browser.get(f"{engine.url}/v1/sales/{sale['sale_id']}/waiting-room")
        browser.find_element(By.ID, "user").send_keys("slow-line")
        browser.find_element(By.ID, "join-button").click()
        wait(browser, "a place in line", lambda b: "in line" in text(b, "position"))
        assert text(browser, "eta") == "No estimate yet: the line is barely moving."


def test_the_page_runs_nothing_but_its_own_script(engine: Service) -> None:
    page_url = f"{engine.url}/v1/sales/any-sale/waiting-room"
    with urllib.request.urlopen(page_url, timeout=10) as response:  # noqa: S310 - http://
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        policy = response.headers["Content-Security-Policy"]
        page = response.read().decode()
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "script-src 'sha256-" in policy
    # Nothing is fetched from elsewhere.
    assert "http://" not in page
    assert "https://" not in page
