"""Auto-match happens, and is told, only in servers that follow the campaign of the membership that matched.

Two campaigns in one bot: the creator's server follows A, Eve's server follows B and turned auto-match on. Bob is a
patron of A who connected Discord on Patreon, and also a member of Eve's server. Before, A's refresh took every
acting server with auto-match on as the place of the match: Bob was linked through Eve's server (A's own server
never turned auto-match on) and Eve's log channel read "Linked @Bob to Patreon p-bob automatically", a foreign
server learning who pledges to another creator. Eve's own patron still matches there.
"""

from __future__ import annotations

import pytest

from bot.guild_admin.rank import InvokerRank
from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_campaign_two_servers import B_TIER, CAMPAIGN_B, OTHER, two_campaigns  # noqa: F401 (fixture)

OTHER_LOG = 740000000000000078
CAT = 750000000000000079  # Eve's patron, Discord connected on Patreon, not linked


def eves_log(world: FakeWorld) -> list[str]:
    return [message["content"] for message in world.discord.messages(OTHER_LOG)]


@pytest.fixture
async def eve_auto_matches(two_campaigns):  # noqa: F811
    world = two_campaigns
    other = world.discord.guild(OTHER)
    other.add_text_channel(OTHER_LOG, name="eve-log")
    other.add_member(SEED.bob, username="bob")
    other.add_member(CAT, username="cat")
    await wait_for(lambda: world.bot.get_channel(OTHER_LOG) is not None)
    eve = InvokerRank(user_id=0, owner=True, roles_below=frozenset())  # Eve owns her server (the log channel is hers)
    await world.bot.services.admin.update_settings(OTHER, eve, auto_match_discord=True, log_channel_id=OTHER_LOG)
    assert not (await world.store.get_settings(SEED.guild_id)).auto_match_discord  # A's server: off
    world.patreon.add_user("p-bob", "Bob", discord_id=SEED.bob)  # A's patron connected Discord on Patreon
    return world


async def assert_bob_unmatched_and_unnamed(world: FakeWorld) -> None:
    assert await world.store.get_link_by_discord(SEED.bob) is None, "A's patron was matched through Eve's server"
    assert not any("p-bob" in line or f"<@{SEED.bob}>" in line for line in eves_log(world)), eves_log(world)


async def test_a_webhook_of_another_campaign_is_not_matched_or_named_in_eves_server(eve_auto_matches):
    world = eve_auto_matches
    status, _ = await world.send_webhook("members:update", "p-bob")  # campaign A's delivery
    assert status == 202
    await world.settle()
    await wait_for(lambda: world.store.get_membership("p-bob", world.patreon.campaign.id))
    await world.settle()
    await assert_bob_unmatched_and_unnamed(world)


async def test_a_refresh_of_another_campaign_is_not_matched_or_named_in_eves_server(eve_auto_matches):
    world = eve_auto_matches
    await world.bot.services.admin.update_settings(SEED.guild_id, auto_match_discord=True)  # A's server too
    world.guild.remove_member(SEED.bob)  # but Bob is only in Eve's server
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_member(SEED.bob) is None)
    report = await world.refresh()
    assert report.ok and report.auto_linked == 0
    await assert_bob_unmatched_and_unnamed(world)


async def test_eves_own_patron_is_matched_and_told_in_her_server(eve_auto_matches):
    world = eve_auto_matches
    campaign = world.patreon.state.directory.campaigns[CAMPAIGN_B]
    campaign.add_user("p-cat", "Cat", CAT)
    campaign.set_membership("p-cat", patron_status="active_patron", tier_ids=[B_TIER])
    report = await world.refresh()
    assert report.ok
    link = await world.store.get_link_by_discord(CAT)
    assert link is not None and link.patreon_user_id == "p-cat" and link.source == "auto"
    await wait_for(lambda: any(f"Linked <@{CAT}> to Patreon p-cat automatically" in line for line in eves_log(world)))
    assert await world.store.get_link_by_discord(SEED.bob) is None
