"""Debian's chromium under Selenium for the browser tests, and the only ways those tests read or press a page.

Every click that submits a form navigates, and every navigation here ends after server-side redirects, which the
browser follows while Selenium already has its answer. A test that reads the page right after a click races that
navigation: an element found on the old page is stale a moment later, and the new page may not have a `<body>` yet.
So a click waits for the button to go stale (the old page is gone), then for the expected page by its title and a
finished load, and only then reads it; elements are found afresh on each page, never kept across a navigation.
Implicit waits stay off: Selenium's docs warn that mixing them with explicit waits makes wait times unpredictable.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--disable-dev-shm-usage",
)
#: A loaded 2-core CI machine runs chromium, the bot and both fakes at once; each page is a few kB on loopback, so
#: these bounds only decide how long a real failure takes to report, never whether a slow pass passes.
PAGE_LOAD_TIMEOUT = 120
PAGE_WAIT = 60.0


def in_ci(env: Mapping[str, str]) -> bool:
    """CI services set CI=true (GitHub Actions, GitLab, CircleCI); some spell it 1 or True."""
    return env.get("CI", "").strip().lower() in {"true", "1", "yes"}


def require_browser(env: Mapping[str, str], paths: tuple[str, ...] = (CHROMIUM, CHROMEDRIVER)) -> None:
    """Skip on a developer's machine without chromium; fail in CI, where a skip would hide that nothing ran."""
    missing = [path for path in paths if not shutil.which(path)]
    if not missing:
        return
    problem = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    if in_ci(env):
        pytest.fail(f"the browser test must run in CI: {problem}")
    pytest.skip(problem)


def start_chromium(profile: Path) -> WebDriver:
    """A fresh profile each time: no cookie, no Discord session, no cache from another test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    chrome.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    return chrome


def wait_for_page(driver: WebDriver, title: str, timeout: float = PAGE_WAIT) -> str:
    """Wait until the page titled `title` has finished loading, then return its visible text."""
    from selenium.common.exceptions import (
        JavascriptException,
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    def loaded(chrome: WebDriver) -> str | bool:
        if chrome.title != title or chrome.execute_script("return document.readyState") != "complete":
            return False
        return chrome.find_element("tag name", "body").text

    # Only a navigation in flight raises these; each poll asks the browser afresh.
    transient = (NoSuchElementException, StaleElementReferenceException, JavascriptException)
    try:
        text = WebDriverWait(driver, timeout, ignored_exceptions=transient).until(loaded)
    except TimeoutException:
        raise AssertionError(f"never reached the page {title!r}; {where(driver)}") from None
    assert isinstance(text, str)
    return text


def click_to_page(driver: WebDriver, button_id: str, title: str) -> str:
    """Press the button that submits this page's form, wait for this page to go, then for `title`; its text."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    button = driver.find_element("id", button_id)
    button.click()
    WebDriverWait(driver, PAGE_WAIT).until(
        expected_conditions.staleness_of(button), f"pressing #{button_id} never left the page; {where(driver)}"
    )
    return wait_for_page(driver, title)


def where(driver: WebDriver) -> str:
    """What the browser shows now, for a failure message."""
    try:
        text = driver.find_element("tag name", "body").text
    except Exception as error:  # a page mid-navigation: say so rather than hide the first failure
        text = f"(unreadable: {type(error).__name__})"
    return f"it shows {driver.title!r} at {driver.current_url}: {text[:500]}"
