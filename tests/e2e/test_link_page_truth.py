"""The link page says what is true in the server the patron linked from (issue 10 leftovers, item 3).

In the demo Ben, Eve's patron, linked in Eve's server and got @Eve Patron, yet the page said "Not a member of the
campaign". It was no race with the connect's refresh: Ben is in the creator's server too, which follows the other
campaign, and the page's sentence was the first server's verdict of the link's reconcile (every server the bot acts
in, the creator's first), not the verdict of the server the link was made in. Each test links in Eve's server
with both servers connected; the second does it while a refresh is mid-way (the fake Patreon slow on a listing).

The fix is in bot/accounts/linking.py (`LinkingService._grant_after_link`): the sentence comes from the outcome
whose `guild_id` is the link's server.
"""

import asyncio

from fakes.world import SEED, FakeWorld, page_text
from tests.e2e.connect_world import B_ROLE, B_TIER, BEN, EVE, OTHER, connect, link_in, no_env_world
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin

NOT_MEMBER = "Not a member of the campaign"


def roles_in(world: FakeWorld, guild_id: int, user_id: int) -> set[int]:
    return set(world.discord.guild(guild_id).member(user_id).role_ids)


async def two_connected_servers(tmp_path) -> FakeWorld:
    """The owner's server follows campaign A, Eve's her campaign B (tier mapped to @Eve Patron); Ben, her
    patron, is in both servers."""
    world = await no_env_world(tmp_path)
    status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id)
    assert status == 200, page_text(html)
    status, html = await connect(world, EVE, "eve", "p-eve", OTHER)
    assert status == 200, page_text(html)
    assert "now get" in await admin(world, ["map"], {"tier": B_TIER, "role": str(B_ROLE)}, EVE, OTHER)
    await world.settle()
    return world


async def test_the_link_page_gives_the_verdict_of_the_server_the_link_was_made_in(tmp_path):
    world = await two_connected_servers(tmp_path)
    try:
        status, html = await link_in(world, OTHER, BEN, "ben", "p-ben")
        text = page_text(html)
        assert status == 200 and "Eve Patron" in text, text
        assert B_ROLE in roles_in(world, OTHER, BEN)
        assert NOT_MEMBER not in text and "Active patron of Eve's tier" in text, text
    finally:
        await world.close()


async def test_the_link_page_is_right_while_a_refresh_is_mid_way(tmp_path):
    world = await two_connected_servers(tmp_path)
    members = f"/api/oauth2/v2/campaigns/{world.patreon.campaign.id}/members"
    world.patreon.delay_next(members, seconds=3.0)  # campaign A's listing is slow; the refresh waits on it
    seen = world.patreon.count(members)
    refresh = asyncio.create_task(world.refresh("mid-way"))
    try:
        await wait_for(lambda: world.patreon.count(members) > seen)
        status, html = await link_in(world, OTHER, BEN, "ben", "p-ben")
        assert not refresh.done(), "the link was made while the refresh was still listing"
        text = page_text(html)
        assert status == 200 and NOT_MEMBER not in text and "Active patron of Eve's tier" in text, text
        await refresh
        await wait_for(lambda: B_ROLE in roles_in(world, OTHER, BEN))
    finally:
        refresh.cancel()
        await asyncio.gather(refresh, return_exceptions=True)
        await world.close()
