"""Login CSRF through Discord's step (review F1), with the victim in a real browser.

An in-process HTTP client sends whatever cookies its jar holds; chromium applies SameSite to a navigation another
site starts, as the victim's browser would. Here the attacker's page is another site (a `data:` page: an opaque
origin) that navigates Alice's browser twice at top level, to Dave's start link and then to the bot's Discord
callback Dave's own sign-in led to (his unused code). `SameSite=Lax` lets the cookie through on such navigations,
so the cookie alone proves nothing: the start page's proof in Discord's state is what must refuse it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from bot.accounts.oauth_state import COOKIE_NAME
from fakes.world import SEED, FakeWorld
from tests.browser.chromium import wait_for_page
from tests.browser.test_link_in_chromium import driver, run, world  # noqa: F401 (fixtures)

REFUSED = "This sign-in was started in another browser."


def from_another_site(url: str) -> str:
    """A page of another site that sends the browser to `url` (a top-level, cross-site GET)."""
    return "data:text/html," + quote(
        f"<!doctype html><title>cats</title><script>location.href={json.dumps(url)}</script>"
    )


async def test_an_attackers_discord_callback_opened_in_the_victims_browser_links_nothing(
    driver: Any,  # noqa: F811
    world: FakeWorld,  # noqa: F811
) -> None:
    start_url = await world.run_link_command(SEED.dave)
    callback = await world.browser_of(SEED.dave).url_before(start_url, world.bot_url + "/discord/callback")

    await run(driver.get, from_another_site(start_url))
    assert "Welcome back!" in await run(wait_for_page, driver, "Welcome back!"), "Discord asks Alice to sign in"
    world.patreon.next_authorizing_user = "p-alice"  # were she sent to Patreon, she would approve
    await run(driver.get, from_another_site(callback))

    page = await run(wait_for_page, driver, REFUSED)
    assert "Nothing was linked" in page
    cookies = {cookie["name"] for cookie in await run(driver.get_cookies)}
    assert COOKIE_NAME in cookies, "the cookie arrived: SameSite didn't stop it, the proof did"
    assert await world.store.get_link_by_discord(SEED.dave) is None
    assert await world.store.get_link_by_patreon("p-alice") is None
    assert SEED.gold_role not in world.roles_of(SEED.dave)
