"""At start-up each server is asked only for the linked members whose link can matter there (the patrons of the
campaign it follows, hand links made there, holders of the bot's grants), not for every link of the install: with
50 servers of 200 links each, asking every server for all 10,000 took about 90 minutes of gateway frames.

Real bot, real discord.py, the fake gateway recording every op 8 REQUEST_GUILD_MEMBERS (server and ids)."""

from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_campaign_two_servers import B_ROLE, BEN, OTHER, roles_in, two_campaigns  # noqa: F401

HAND_LINKED = 750000000000000079  # linked by hand in Eve's server to a Patreon user of neither campaign


def asked_in(world: FakeWorld, guild_id: int, since: int = 0) -> set[int]:
    requests = world.discord.member_requests[since:]
    return {u for r in requests if r.guild_id == guild_id for u in r.user_ids or ()}


async def test_a_server_of_campaign_b_is_not_asked_for_campaign_a_patrons(two_campaigns):  # noqa: F811
    world = two_campaigns
    # The first start: no membership is stored yet, so every link counting in a server could be its patron.
    await wait_for(lambda: B_ROLE in roles_in(world, OTHER, BEN))
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    world.discord.guild(OTHER).add_member(HAND_LINKED, username="hand")
    await world.bot.services.store.save_link(HAND_LINKED, "p-nobody", OTHER, "admin")
    await world.stop_bot()
    before = len(world.discord.member_requests)
    await world.start_bot()
    gateway = world.bot.services.reconcile.gateway
    await wait_for(lambda: gateway.knows_all_members(OTHER) and gateway.knows_all_members(SEED.guild_id))
    in_b = asked_in(world, OTHER, before)
    assert BEN in in_b, "Eve's patron is asked for in her server"
    assert HAND_LINKED in in_b, "a hand link made in her server is asked for there"
    assert SEED.alice not in in_b, "a patron of campaign A is not asked for in campaign B's server"
    in_a = asked_in(world, SEED.guild_id, before)
    assert SEED.alice in in_a and BEN not in in_a and HAND_LINKED not in in_a
    # Nothing lost: the roles stay as the campaigns give them.
    assert roles_in(world, OTHER, SEED.alice) == set() and B_ROLE in roles_in(world, OTHER, BEN)
