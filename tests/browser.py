"""Debian's chromium, headless, driven by selenium (scripts/ensure-packages chromium), and
the few things the browser tests do with it. Screenshots go under test-artifacts/
(FLASHSALE_TEST_ARTIFACTS moves them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

ARTIFACTS = Path(os.environ.get("FLASHSALE_TEST_ARTIFACTS", "test-artifacts"))


@contextmanager
def chromium_browsers(size: str = "800,700") -> Iterator[Callable[[], WebDriver]]:
    """Yields a launcher; every browser it launched is closed at the end."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium, "no chromium: run scripts/ensure-packages chromium"
    assert driver, "no chromedriver: run scripts/ensure-packages chromium"
    opened: list[WebDriver] = []

    def launch() -> WebDriver:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={size}"):  # fmt: skip
            options.add_argument(flag)
        browser = webdriver.Chrome(service=DriverService(driver), options=options)
        opened.append(browser)
        return browser

    try:
        yield launch
    finally:
        for browser in opened:
            browser.quit()


def text(browser: WebDriver, element_id: str) -> str:
    return str(browser.find_element(By.ID, element_id).text)


def visible(browser: WebDriver, element_id: str) -> bool:
    return bool(browser.find_element(By.ID, element_id).is_displayed())


def wait(browser: WebDriver, what: str, check: Any, within: float = 20) -> Any:
    return WebDriverWait(browser, within, poll_frequency=0.1).until(check, message=what)


def shoot(browser: WebDriver, folder: str, name: str) -> Path:
    path = ARTIFACTS / folder / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(path))
    return path
