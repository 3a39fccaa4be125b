"""The link flow in a real browser: Debian's chromium, headless, driven by Selenium through /usr/bin/chromedriver.

An in-process HTTP client decides for itself which cookies to send on a redirect; a browser applies SameSite,
HttpOnly and cross-site navigation rules as a patron's does. The bot is served as `localhost` and the fakes on
`127.0.0.1`, two different sites, so the hops back from Discord and Patreon are real cross-site navigations: a
`SameSite=Strict` cookie would be dropped there, a `Lax` one must arrive.

CI must run this (CI=true and no chromium is a failure, never a skip; tests/browser/test_ci_gate.py); `.ci/run`
installs chromium when missing. How it waits for pages is in tests/browser/chromium.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.accounts.oauth_state import COOKIE_NAME
from fakes.world import SEED, FakeWorld
from tests.browser.chromium import click_to_page, require_browser, start_chromium, wait_for_page

LINKED = "Your Patreon account is linked."
UNDONE = "The link was undone."


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    require_browser(os.environ)
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or a driver
    chrome = start_chromium(tmp_path / "chromium-profile")
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


async def run(call: Callable[..., Any], *args: Any) -> Any:
    """Selenium is synchronous: call it in a thread so the bot and the fakes keep serving on this loop."""
    return await asyncio.to_thread(call, *args)


async def test_a_phone_then_a_desktop_walk_the_whole_chain_and_get_the_role(driver: Any, world: FakeWorld) -> None:
    # `driver` first: chromium starts (slowly, on a loaded machine) before the bot and the fakes are up.
    world.patreon.next_authorizing_user = "p-bob"
    url = await world.run_link_command(SEED.bob)
    assert url.startswith(world.bot_url + "/link/start")
    oauth = world.discord.oauth

    # A phone: its browser isn't signed in to Discord, so Discord asks first; then the first-time consent.
    await run(driver.get, url)
    assert "Welcome back!" in await run(wait_for_page, driver, "Welcome back!")
    await run(lambda: driver.find_element("id", "login").send_keys("bob"))
    consent = await run(click_to_page, driver, "log-in", "Authorize access to your account")
    assert "Authorize access to your account" in consent
    body = await run(click_to_page, driver, "authorize", LINKED)
    assert "Your Patreon account is linked" in body
    assert "Discord account: @bob" in body and "@Bronze Patron" in body
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}

    cookies = {cookie["name"]: cookie for cookie in await run(driver.get_cookies)}
    cookie = cookies[COOKIE_NAME]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax" and cookie["secure"] is False
    assert cookie["domain"] == "localhost" and cookie["path"] == "/"
    assert COOKIE_NAME not in await run(driver.execute_script, "return document.cookie"), "no script can read it"

    # Undo from the result page, in the browser that linked: the role the bot gave goes.
    assert "The link was undone" in await run(click_to_page, driver, "undo", UNDONE)
    assert world.roles_of(SEED.bob) == set()
    assert await world.store.get_link_by_discord(SEED.bob) is None

    # A desktop: signed in to Discord and it has authorised the app: no page between the button and the role.
    pages_before = len(oauth.visits)
    world.patreon.next_authorizing_user = "p-bob"
    await run(driver.get, await world.run_link_command(SEED.bob))
    assert "Your Patreon account is linked" in await run(wait_for_page, driver, LINKED)
    assert oauth.visits[pages_before:] == [
        ("GET", "/oauth2/authorize"),
        ("POST", "/api/v10/oauth2/token"),
        ("GET", "/api/v10/users/@me"),
    ], "Discord skipped its consent screen (prompt=none) and showed no page"
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
