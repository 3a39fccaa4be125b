"""The cookie the bot sets behind https, in a real browser (review 5, R5-11).

Browsers silently drop a `__Host-` cookie that lacks Secure or Path=/, or has a Domain: a wrong attribute would
break every https deployment's sign-in with no error anywhere. Chromium treats loopback as a secure context for
cookies (it keeps a Secure cookie from http://localhost), so the bot served as `localhost` over plain http, with an
https public URL, sets exactly the cookie it sets in production, and chromium decides whether to keep and send it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import URLSafeSerializer

from bot.accounts.oauth_state import COOKIE_NAME, HOST_COOKIE_NAME
from fakes.world import DISCORD_CLIENT_SECRET, SEED, FakeWorld
from tests.browser.chromium import wait_for_page
from tests.browser.test_link_in_chromium import driver, run  # noqa: F401 (a fixture)

PUBLIC = "https://roles.example.com"


@pytest.fixture
async def https_world(tmp_path: Path) -> AsyncIterator[FakeWorld]:
    world = await FakeWorld(tmp_path / "bot.sqlite3", bot_host="localhost").start(start_bot=False)
    world.extra_environment["PUBLIC_URL"] = PUBLIC
    try:
        await world.seed_store()
        await world.start_bot()
        world.discord.oauth.register(DISCORD_CLIENT_SECRET, (f"{PUBLIC}/discord/callback",))
        yield world
    finally:
        await world.close()


async def test_chromium_keeps_the_host_prefixed_cookie_and_sends_it_back(
    driver: Any,  # noqa: F811
    https_world: FakeWorld,
) -> None:
    world = https_world
    start = (await world.run_link_command(SEED.bob)).replace(PUBLIC, world.bot_url)
    await run(driver.get, start)
    assert "Welcome back!" in await run(wait_for_page, driver, "Welcome back!"), "on to Discord's sign-in"
    cookies = {c["name"]: c for c in (await run(driver.execute_cdp_cmd, "Network.getAllCookies", {}))["cookies"]}
    assert COOKIE_NAME not in cookies
    kept = cookies[HOST_COOKIE_NAME]
    assert kept["secure"] is True and kept["httpOnly"] is True and kept["sameSite"] == "Lax"
    assert kept["domain"] == "localhost" and kept["path"] == "/", kept  # host-only: no Domain

    await run(driver.get, start)  # the start page again: the browser sends the cookie, the bot keeps its browser id
    await run(wait_for_page, driver, "Welcome back!")
    again = {c["name"]: c for c in (await run(driver.execute_cdp_cmd, "Network.getAllCookies", {}))["cookies"]}
    assert world.bot is not None
    read = URLSafeSerializer(world.bot.services.config.signing_key, salt="link-browser").loads
    assert read(again[HOST_COOKIE_NAME]["value"])["b"] == read(kept["value"])["b"]
