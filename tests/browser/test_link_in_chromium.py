"""The link flow in a real browser: Debian's chromium, headless, driven by Selenium through /usr/bin/chromedriver.

An in-process HTTP client decides for itself which cookies to send on a redirect; a browser applies SameSite,
HttpOnly and cross-site navigation rules as a patron's does. The bot is served as `localhost` and the fakes on
`127.0.0.1`, two different sites, so the hops back from Discord and Patreon are real cross-site navigations: a
`SameSite=Strict` cookie would be dropped there, a `Lax` one must arrive.

CI must run this (CI=true and no chromium is a failure, never a skip); `.ci/run` installs chromium when missing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.accounts.oauth_state import COOKIE_NAME
from fakes.world import SEED, FakeWorld

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


def _browser_missing() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    return f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)" if missing else None


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    problem = _browser_missing()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {problem}")
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[FakeWorld]:
    started = await FakeWorld(tmp_path / "bot.sqlite3", bot_host="localhost").start()
    try:
        yield started
    finally:
        await started.close()


async def run(call, *args):
    """Selenium is synchronous: call it in a thread so the bot and the fakes keep serving on this loop."""
    return await asyncio.to_thread(call, *args)


async def wait_for_text(driver, text: str, timeout: float = 20.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = await run(lambda: driver.find_element("tag name", "body").text)
        if text in body:
            return body
        assert loop.time() < deadline, f"never saw {text!r}; the page says: {body[:500]}"
        await asyncio.sleep(0.1)


async def test_a_phone_then_a_desktop_walk_the_whole_chain_and_get_the_role(world: FakeWorld, driver) -> None:
    world.patreon.next_authorizing_user = "p-bob"
    url = await world.run_link_command(SEED.bob)
    assert url.startswith(world.bot_url + "/link/start")
    oauth = world.discord.oauth

    # A phone: its browser isn't signed in to Discord, so Discord asks first; then the first-time consent.
    await run(driver.get, url)
    await wait_for_text(driver, "Welcome back!")
    await run(lambda: driver.find_element("id", "login").send_keys("bob"))
    await run(lambda: driver.find_element("id", "log-in").click())
    await wait_for_text(driver, "Authorize access to your account")
    await run(lambda: driver.find_element("id", "authorize").click())
    body = await wait_for_text(driver, "Your Patreon account is linked")
    assert "Discord account: @bob" in body and "@Bronze Patron" in body
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}

    cookies = {cookie["name"]: cookie for cookie in await run(driver.get_cookies)}
    cookie = cookies[COOKIE_NAME]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax" and cookie["secure"] is False
    assert cookie["domain"] == "localhost" and cookie["path"] == "/"
    assert COOKIE_NAME not in await run(driver.execute_script, "return document.cookie"), "no script can read it"

    # Undo from the result page, in the browser that linked: the role the bot gave goes.
    await run(lambda: driver.find_element("id", "undo").click())
    await wait_for_text(driver, "The link was undone")
    assert world.roles_of(SEED.bob) == set()
    assert await world.store.get_link_by_discord(SEED.bob) is None

    # A desktop: signed in to Discord and it has authorised the app: no page between the button and the role.
    pages_before = len(oauth.visits)
    world.patreon.next_authorizing_user = "p-bob"
    await run(driver.get, await world.run_link_command(SEED.bob))
    await wait_for_text(driver, "Your Patreon account is linked")
    assert oauth.visits[pages_before:] == [
        ("GET", "/oauth2/authorize"),
        ("POST", "/api/v10/oauth2/token"),
        ("GET", "/api/v10/users/@me"),
    ], "Discord skipped its consent screen (prompt=none) and showed no page"
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
