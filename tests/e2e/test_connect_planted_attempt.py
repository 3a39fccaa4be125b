"""Login CSRF on the connect flow: Eve plants her own half-finished connect attempt in the creator's browser.

Eve runs `/patreon-admin connect` in her own server, passes Discord's sign-in as herself and keeps the Patreon URL it
leads to. She has the creator's browser open her start link (which set the attempt's cookie there), then her
Patreon URL, where the creator approves what looks like the creator's own app. Before the browser proof, the cookie
named only the attempt's nonce, which Eve's start link carries, so the creator's campaign was bound to Eve's server
and Eve could read its patrons and map its tiers.
"""

from __future__ import annotations

from fakes.browser import Browser
from tests.e2e.connect_world import EVE, OTHER, browser, connect_button, no_env_world


async def test_a_connect_attempt_planted_in_the_creators_browser_binds_nothing(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        _, url = await connect_button(world, EVE, OTHER)
        patreon_url = await browser(world, "eve").url_before(url, world.patreon.base_url)
        creator = Browser(world.discord.base_url, "creator")
        world.browsers[-1] = creator  # closed with the world
        await creator.url_before(url, world.discord.base_url)  # Eve's start link, opened in the creator's browser
        world.patreon.approve_next_as(world.patreon.owner_id)
        status, _ = await creator.open(patreon_url)

        assert status == 403
        assert await world.bot.services.store.guild_binding(OTHER) is None
    finally:
        await world.close()
