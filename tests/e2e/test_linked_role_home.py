"""Where the Linked Roles verification makes its link (review 5, R5-6): in the server of the campaign the patron
belongs to, chosen from Patreon's answer, never the first server by id that merely has him. Two campaigns on one
install: the creator's server follows A, Eve's follows her campaign B; the link's server is told his Patreon name
in its log and its admins may remove the link, so another creator's server must get neither."""

from __future__ import annotations

from dataclasses import replace

from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.backend import postgres_server
from tests.e2e.connect_world import B_TIER, BEN, CAMPAIGN_B, EVE, OTHER, OTHER_LOG, connect, connect_both, no_env_world
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_linked_roles import VERIFY, set_up

LOW = 700000000000000077  # Eve's server created before the creator's: its id is the lower one
LOW_LOG = 700000000000000078
LOW_ROLE = 700000000000000079


async def eve_below(tmp_path) -> FakeWorld:
    """The creator's server (campaign A) and Eve's with the lower id (campaign B); Bob pays A, is in both."""
    world = FakeWorld(tmp_path / "bot.sqlite3", postgres_server=postgres_server())
    world.env_campaign = False
    await world.start(start_bot=False)
    del world.patreon.webhooks.hooks[world.webhook.id]
    other = world.discord.add_guild(LOW, name="Eve's Server", owner_id=EVE)
    other.add_role(LOW_ROLE, "Eve Patron", position=10)
    other.add_member(EVE, username="eve")
    other.add_member(SEED.bob, username="bob")
    other.add_text_channel(LOW_LOG, name="patreon-log")
    world.patreon.add_creator("p-eve", "Eve", CAMPAIGN_B).add_tier(B_TIER, "Eve's tier", 700)
    await world.seed_store()
    store = await world.open_store()
    try:
        await store.save_settings(replace(await store.get_settings(LOW), enabled=True, log_channel_id=LOW_LOG))
    finally:
        await store.close()
    await world.start_bot()
    for user, name, creator, guild in (
        (SEED.owner_id, "creator", world.patreon.owner_id, SEED.guild_id),
        (EVE, "eve", "p-eve", LOW),
    ):
        status, html = await connect(world, user, name, creator, guild)
        assert status == 200, page_text(html)
    return world


def log_of(world: FakeWorld, channel: int) -> list[str]:
    return [message.get("content", "") for message in world.discord.messages(channel)]


async def test_a_patron_of_a_is_linked_in_a_s_server_not_in_eves_lower_one(tmp_path):
    world = await eve_below(tmp_path)
    try:
        await world.refresh()
        await set_up(world)
        world.patreon.next_authorizing_user = "p-bob"
        status, page = await world.browser_of(SEED.bob).open(world.bot_url + VERIFY)
        assert status == 200 and "Bronze" in page_text(page), page_text(page)
        link = await world.store.get_link_by_discord(SEED.bob)
        assert link is not None and link.linked_in_guild_id == SEED.guild_id
        await wait_for(lambda: any(f"<@{SEED.bob}> linked Patreon" in line for line in log_of(world, SEED.log_channel)))
        await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.bob))
        await world.settle()
        assert not [line for line in log_of(world, LOW_LOG) if str(SEED.bob) in line or "Bob" in line]
    finally:
        await world.close()


async def test_eves_admin_cant_unlink_a_patron_of_a_who_verified_for_a_s_linked_role(tmp_path):
    """A's server uses Linked Roles only (no tier mapped), so no grant of the bot protects the link: only its
    server decides who may remove it, and that is A's, not Eve's."""
    world = await eve_below(tmp_path)
    try:
        for tier in (SEED.gold_tier, SEED.bronze_tier):
            await world.store.unmap_tier_role(SEED.guild_id, tier, None)
        await world.refresh()
        await set_up(world)
        world.patreon.next_authorizing_user = "p-bob"
        status, page = await world.browser_of(SEED.bob).open(world.bot_url + VERIFY)
        assert status == 200, page_text(page)
        text = await admin(world, ["unlink-user"], {"member": SEED.bob}, EVE, LOW)
        assert "another server" in text, text
        assert (await world.store.get_link_by_discord(SEED.bob)) is not None
        assert (SEED.bob, "p-bob") not in await world.store.auto_match_optouts()
    finally:
        await world.close()


async def test_a_patron_of_eves_campaign_only_is_linked_in_her_server_though_a_s_has_the_lower_id(tmp_path):
    """Ben pays B and is in both servers; the creator's server (A) has the lower id and learns nothing of him."""
    world = await no_env_world(tmp_path)
    try:
        await connect_both(world)
        await world.refresh()
        await set_up(world)
        world.patreon.next_authorizing_user = "p-ben"
        status, page = await world.browser_of(BEN).open(world.bot_url + VERIFY)
        assert status == 200, page_text(page)
        link = await world.store.get_link_by_discord(BEN)
        assert link is not None and link.linked_in_guild_id == OTHER
        await wait_for(lambda: any(f"<@{BEN}> linked Patreon account Ben" in line for line in log_of(world, OTHER_LOG)))
        await world.settle()
        assert not [line for line in log_of(world, SEED.log_channel) if str(BEN) in line or "Ben" in line]
    finally:
        await world.close()


async def test_a_verification_by_someone_in_no_campaign_of_his_servers_links_nothing_and_tells_no_log(tmp_path):
    """Bob left A's Patreon: neither server's campaign holds him, so no server has a claim on the link."""
    world = await eve_below(tmp_path)
    try:
        world.patreon.remove_membership("p-bob")
        await world.refresh()
        await set_up(world)
        world.patreon.next_authorizing_user = "p-bob"
        status, page = await world.browser_of(SEED.bob).open(world.bot_url + VERIFY)
        assert status == 200 and "Nothing was linked" in page_text(page), page_text(page)
        assert await world.store.get_link_by_discord(SEED.bob) is None
        assert await world.store.role_connection(SEED.bob) is not None  # the Discord side stays connected
        await world.settle()
        for channel in (SEED.log_channel, LOW_LOG):
            assert not [line for line in log_of(world, channel) if str(SEED.bob) in line], channel
    finally:
        await world.close()


async def test_with_one_campaign_someone_in_none_is_still_linked_in_its_server(world):
    """Every server of a single-campaign install is the creator's: Dave, who left the Patreon, is linked there as
    `/patreon link` would (his roles follow once he pledges), and that server's log is told (a control: as before)."""
    world.patreon.remove_membership("p-dave")
    await world.refresh()
    await set_up(world)
    world.patreon.next_authorizing_user = "p-dave"
    status, page = await world.browser_of(SEED.dave).open(world.bot_url + VERIFY)
    assert status == 200 and "aren't a member" in page_text(page), page_text(page)
    link = await world.store.get_link_by_discord(SEED.dave)
    assert link is not None and link.linked_in_guild_id == SEED.guild_id
    await wait_for(lambda: any(f"<@{SEED.dave}> linked Patreon" in line for line in log_of(world, SEED.log_channel)))
