"""The connect callback asks again who may connect (review 5, R5-12): the button works for 15 minutes, which
outlive a kick or a demotion of the admin who made it, and a tier role the owner maps above him meanwhile.

Eve has Manage Server in a third server that follows no campaign yet (her `Admins` role) and makes a button there;
then the owner throws her out, or takes her role, before she finishes in her own browser.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fakes.discord.guild import FakeGuild
from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.connect_world import (
    CAMPAIGN_B,
    EVE,
    MANAGE_GUILD,
    MANAGE_ROLES,
    browser,
    connect,
    connect_button,
    no_env_world,
    picker,
)

THIRD = 710000000000000055
OWNER3 = 720000000000000055
ADMINS = 730000000000000055
HEAD = 730000000000000056  # a Manage Server role above the seeded server's Gold and Bronze
ELITE = 730000000000000057  # above HEAD: the role the owner maps meanwhile


async def with_third_server(tmp_path) -> tuple[FakeWorld, FakeGuild]:
    world = await no_env_world(tmp_path, start=False)
    third = world.discord.add_guild(THIRD, name="Third Server", owner_id=OWNER3)
    third.add_role(ADMINS, "Admins", position=20, permissions=MANAGE_GUILD | MANAGE_ROLES)
    third.add_member(OWNER3, username="owner3")
    third.add_member(EVE, username="eve", roles=[ADMINS])
    await world.start_bot()
    return world, third


async def finish(world: FakeWorld, url: str) -> tuple[int, str]:
    world.patreon.approve_next_as("p-eve")
    return await browser(world, "eve").open(url)


async def test_an_admin_removed_from_the_server_after_making_the_button_binds_nothing(tmp_path):
    world, third = await with_third_server(tmp_path)
    try:
        _, url = await connect_button(world, EVE, THIRD)
        assert url, "Eve, with Manage Server, gets the button"
        third.remove_member(EVE)
        status, html = await finish(world, url)
        assert status == 403 and "no longer a member" in page_text(html), page_text(html)
        assert await world.store.guild_binding(THIRD) is None
        assert await world.store.get_campaign(CAMPAIGN_B) is None, "the creator's tokens were never taken"
    finally:
        await world.close()


async def test_an_admin_whose_manage_server_role_was_taken_binds_nothing(tmp_path):
    world, third = await with_third_server(tmp_path)
    try:
        _, url = await connect_button(world, EVE, THIRD)
        third.set_member_roles(EVE, [])
        status, html = await finish(world, url)
        assert status == 403 and "Manage Server" in page_text(html), page_text(html)
        assert await world.store.guild_binding(THIRD) is None
    finally:
        await world.close()


async def test_an_admin_who_still_manages_the_server_connects_it(tmp_path):
    world, _ = await with_third_server(tmp_path)
    try:
        _, url = await connect_button(world, EVE, THIRD)
        status, html = await finish(world, url)
        assert status == 200, page_text(html)
        binding = await world.store.guild_binding(THIRD)
        assert binding is not None and (binding.campaign_id, binding.bound_by) == (CAMPAIGN_B, EVE)
    finally:
        await world.close()


async def test_a_role_mapped_above_the_admin_after_the_button_stops_her_reconnect(tmp_path):
    """The creator's server follows A; Eve (Manage Server, above Gold and Bronze) may reconnect it and makes the
    button; the owner then maps a tier to a role above her: re-binding decides who gets it, so she may not."""
    world = await no_env_world(tmp_path)
    try:
        status, _ = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
        assert status == 200
        world.guild.add_role(HEAD, "Head", position=12, permissions=MANAGE_GUILD | MANAGE_ROLES)
        world.guild.add_role(ELITE, "Elite", position=13)
        world.guild.add_member(EVE, username="eve", roles=[HEAD])
        _, url = await connect_button(world, EVE)
        assert url, "above every mapped role: hers to reconnect"
        await world.store.map_tier_role(SEED.guild_id, SEED.gold_tier, ELITE)
        world.patreon.approve_next_as(world.patreon.owner_id)
        status, html = await browser(world, "eve").open(url)
        assert status == 403 and "@Elite" in page_text(html), page_text(html)
        binding = await world.store.guild_binding(SEED.guild_id)
        assert binding is not None and binding.bound_by == SEED.owner_id
    finally:
        await world.close()


async def test_an_admin_removed_while_the_picker_is_open_binds_nothing_and_the_creators_pair_goes(tmp_path):
    world, third = await with_third_server(tmp_path)
    try:
        world.patreon.add_campaign("9100002", "p-eve")
        _, url = await connect_button(world, EVE, THIRD)
        status, html = await finish(world, url)
        assert status == 200, page_text(html)
        action, fields, _ = picker(html)
        third.remove_member(EVE)
        status, html = await browser(world, "eve").post_form(world.bot_url + action, {**fields, "campaign": "9100002"})
        assert status == 403 and "no longer a member" in page_text(html), page_text(html)
        assert await world.store.guild_binding(THIRD) is None
        assert await world.store.forget_pending_connects(datetime.now(UTC) + timedelta(days=1)) == 0
    finally:
        await world.close()


async def test_discord_not_answering_at_the_pick_forgets_nothing_and_the_same_pick_then_connects(tmp_path):
    """Review 6, R6-2: a 5xx decides nothing about Eve, so neither her choice nor the creator's pending pair goes."""
    world, _ = await with_third_server(tmp_path)
    try:
        world.patreon.add_campaign("9100002", "p-eve")
        _, url = await connect_button(world, EVE, THIRD)
        status, html = await finish(world, url)
        assert status == 200, page_text(html)
        action, fields, _ = picker(html)
        world.discord.fail_next("GET", rf"/guilds/{THIRD}/members/{EVE}$", 503)
        form = {**fields, "campaign": "9100002"}
        status, html = await browser(world, "eve").post_form(world.bot_url + action, form)
        assert status == 503 and "Try again" in page_text(html), page_text(html)
        assert await world.store.guild_binding(THIRD) is None
        status, html = await browser(world, "eve").post_form(world.bot_url + action, form)
        assert status == 200, page_text(html)
        binding = await world.store.guild_binding(THIRD)
        assert binding is not None and (binding.campaign_id, binding.bound_by) == ("9100002", EVE)
    finally:
        await world.close()
