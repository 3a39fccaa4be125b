"""Who else could connect a campaign to a server (issue 10, item 1), each answer a test: a forwarded button, a
member or a Manage-Roles moderator, another server's admin replaying a state, a redirect replayed in another
browser, a server that follows another campaign, and a campaign already followed elsewhere."""

from fakes.world import SEED, page_text
from tests.e2e.connect_world import (
    CAMPAIGN_B,
    EVE,
    MANAGE_GUILD,
    MANAGE_ROLES,
    OTHER,
    browser,
    connect,
    connect_button,
    hooks_at,
    no_env_world,
)
from tests.e2e.test_admin import admin

STAFF = 730000000000000090


async def test_a_forwarded_connect_button_connects_nothing_and_is_burnt(tmp_path):
    """The owner's button opened by Eve (signed in to Discord as herself) fails at Discord's step; opened by the
    owner afterwards it is used up, so a link that went round can't be finished later either."""
    world = await no_env_world(tmp_path)
    try:
        _, url = await connect_button(world, SEED.owner_id)
        world.patreon.approve_next_as("p-eve")
        status, html = await browser(world, "eve").open(url)
        assert status == 403 and "made for another Discord account" in page_text(html)
        world.patreon.approve_next_as(world.patreon.owner_id)
        status, html = await browser(world, "creator").open(url)
        assert status == 400 and "already used" in page_text(html)
        assert await world.bot.services.store.guild_binding(SEED.guild_id) is None
        assert hooks_at(world, CAMPAIGN_B) == [] and hooks_at(world, world.patreon.campaign.id) == []
    finally:
        await world.close()


async def test_a_patreon_redirect_replayed_in_another_browser_connects_nothing(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        _, url = await connect_button(world, SEED.owner_id)
        world.patreon.approve_next_as(world.patreon.owner_id)
        callback = await browser(world, "creator").url_before(url, f"{world.bot_url}/patreon/callback")
        status, html = await browser(world, "eve").open(callback)
        assert status == 403 and "another browser" in page_text(html)
        assert await world.bot.services.store.guild_binding(SEED.guild_id) is None
    finally:
        await world.close()


async def test_server_bs_admin_replaying_server_as_state_connects_nothing(tmp_path):
    """Eve admins her own server; the state of a button made in the owner's server names that server and that
    admin, so in her browser it fails, and nothing of hers gets bound anywhere."""
    world = await no_env_world(tmp_path)
    try:
        _, url_a = await connect_button(world, SEED.owner_id)
        world.patreon.approve_next_as("p-eve")
        status, html = await browser(world, "eve").open(url_a)
        assert status == 403 and "made for another Discord account" in page_text(html)
        assert await world.bot.services.store.guild_binding(SEED.guild_id) is None
        assert await world.bot.services.store.guild_binding(OTHER) is None
    finally:
        await world.close()


async def test_a_member_or_a_manage_roles_moderator_can_not_connect(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        interaction, url = await connect_button(world, SEED.bob, bypass=True)
        assert url == "" and "Manage Server" in (interaction.content or "")
        world.guild.add_role(STAFF, "Staff", position=20, permissions=MANAGE_ROLES)
        world.guild.add_member(750000000000000091, username="mod", roles=[STAFF])
        interaction, url = await connect_button(world, 750000000000000091)
        assert url == "" and "Manage Server" in (interaction.content or "")
        # Manage Server is enough (Discord hides the group from those without Manage Roles, so bypass).
        world.guild.add_role(STAFF + 1, "Managers", position=21, permissions=MANAGE_GUILD)
        world.guild.add_member(750000000000000092, username="manager", roles=[STAFF + 1])
        _, url = await connect_button(world, 750000000000000092, bypass=True)
        assert url.startswith(f"{world.bot_url}/connect/start?state=")
    finally:
        await world.close()


async def test_a_server_that_follows_another_campaign_is_told_to_disconnect_first(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        status, _ = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
        assert status == 200
        interaction, _ = await connect_button(world, SEED.owner_id)
        assert "disconnect" in (interaction.content or "")
        status, html = await connect(world, SEED.owner_id, "creator", "p-eve")
        assert status == 409 and "disconnect" in page_text(html)
        binding = await world.bot.services.store.guild_binding(SEED.guild_id)
        assert binding.campaign_id == world.patreon.campaign.id
        assert hooks_at(world, CAMPAIGN_B) == [], "nothing was registered for the refused campaign"
    finally:
        await world.close()


async def test_only_the_creators_approval_binds_a_campaign_already_followed_elsewhere(tmp_path):
    """Two servers on one campaign are legitimate (a creator's two servers), but only the creator's own approval
    binds it: Eve approving on Patreon can only ever offer her own campaign, not the owner's."""
    world = await no_env_world(tmp_path)
    try:
        campaign_a = world.patreon.campaign.id
        await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
        status, html = await connect(world, EVE, "eve", "p-eve", OTHER)
        assert status == 200 and f"campaign {CAMPAIGN_B}" in page_text(html)
        assert (await world.bot.services.store.guild_binding(OTHER)).campaign_id == CAMPAIGN_B

        # The creator of A approves for Eve's server after she disconnects: now it follows A too, one webhook.
        assert "no longer follows" in await admin(world, ["disconnect"], {}, EVE, OTHER)
        status, html = await connect(world, EVE, "eve", world.patreon.owner_id, OTHER)
        assert status == 200, page_text(html)
        assert (await world.bot.services.store.guild_binding(OTHER)).campaign_id == campaign_a
        assert len(hooks_at(world, campaign_a)) == 1
    finally:
        await world.close()
