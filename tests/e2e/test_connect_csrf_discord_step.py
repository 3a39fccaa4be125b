"""Login CSRF on the connect flow through Discord's step: Eve plants her own Discord callback in the creator's browser.

Eve runs `/patreon-admin connect` in her own server, lets Discord sign her in and keeps the bot's
`/discord/callback?code=…&state=…` URL unopened. A page she controls makes the creator's browser open her start
link, then that callback. Before the start page's proof rode in Discord's state, the bot found its cookie there,
asked Discord whose code it was (Eve's, as the button says) and sent the creator on to Patreon with the proof minted
into the creator's cookie: the creator approved and their campaign was bound to Eve's server (its patrons report,
its tiers to map, its creator tokens stored for her). Now a Discord callback made in another browser is refused
before its code is exchanged.

Also here: a Patreon callback refused as "started in another browser" is used up (review F5), so the creator who
pastes the failing URL back to Eve doesn't connect her server after all.
"""

from __future__ import annotations

from bot.accounts.oauth_state import COOKIE_NAME
from fakes.browser import Browser
from fakes.world import FakeWorld, page_text
from tests.e2e.connect_world import EVE, OTHER, browser, connect_button, hooks_at, no_env_world


def _creators_browser(world: FakeWorld) -> Browser:
    creator = Browser(world.discord.base_url, "creator")
    world.browsers[-1] = creator  # closed with the world
    return creator


async def test_a_discord_callback_planted_with_eves_code_binds_nothing(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        _, url = await connect_button(world, EVE, OTHER)
        callback = await browser(world, "eve").url_before(url, world.bot_url + "/discord/callback")
        creator = _creators_browser(world)
        await creator.url_before(url, world.discord.base_url)  # Eve's start link in the creator's browser
        assert creator.cookie(COOKIE_NAME)
        world.patreon.approve_next_as(world.patreon.owner_id)
        authorizes = world.patreon.count("/oauth2/authorize")

        status, html = await creator.open(callback)  # then Eve's own Discord callback

        assert status == 403 and "started in another browser" in page_text(html)
        assert world.patreon.count("/oauth2/authorize") == authorizes, "the creator was never sent to Patreon"
        store = world.bot.services.store
        assert await store.guild_binding(OTHER) is None
        assert hooks_at(world, world.patreon.campaign.id) == []
    finally:
        await world.close()


async def test_eve_still_connects_her_own_campaign_in_her_own_browser(tmp_path):
    """The same kept callback, opened where it started: the start page's proof matches."""
    world = await no_env_world(tmp_path)
    try:
        _, url = await connect_button(world, EVE, OTHER)
        eves = browser(world, "eve")
        callback = await eves.url_before(url, world.bot_url + "/discord/callback")
        world.patreon.approve_next_as("p-eve")
        status, html = await eves.open(callback)
        assert status == 200 and "is connected to" in page_text(html), page_text(html)
        binding = await world.bot.services.store.guild_binding(OTHER)
        assert binding is not None and binding.campaign_id != world.patreon.campaign.id
    finally:
        await world.close()


async def test_a_patreon_callback_refused_in_another_browser_is_used_up(tmp_path):
    """Eve sends her Patreon step to the creator, who approves and lands on "started in another browser"; the URL
    pasted back into Eve's browser (which holds the proof) binds nothing: the attempt was burnt by the refusal."""
    world = await no_env_world(tmp_path)
    try:
        _, url = await connect_button(world, EVE, OTHER)
        eves = browser(world, "eve")
        patreon_url = await eves.url_before(url, world.patreon.base_url)
        creator = _creators_browser(world)
        world.patreon.approve_next_as(world.patreon.owner_id)
        callback = await creator.url_before(patreon_url, world.bot_url + "/patreon/callback")
        status, html = await creator.open(callback)
        assert status == 403 and "started in another browser" in page_text(html)
        tokens_asked = world.patreon.count("/api/oauth2/token")

        status, html = await eves.open(callback)

        assert status == 400 and "already used" in page_text(html)
        assert world.patreon.count("/api/oauth2/token") == tokens_asked, "the creator's code was not exchanged"
        assert await world.bot.services.store.guild_binding(OTHER) is None
        assert hooks_at(world, world.patreon.campaign.id) == []
    finally:
        await world.close()
