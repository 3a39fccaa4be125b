"""A big server isn't cached whole: the bot asks for its linked members by id and keeps only them (issue 9, item 6).

Real bot, real discord.py, the fake gateway recording every op 8 REQUEST_GUILD_MEMBERS it gets.
"""

import pytest

from bot.store import Store
from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for

CROWD = 400  # unlinked members: over discord.py's large_threshold of 250, so GUILD_CREATE leaves them out
CROWD_BASE = 760000000000000000


@pytest.fixture
async def big_world(tmp_path):
    """Alice (Gold) and Bob (Bronze) linked before start-up, in a server with 400 members who aren't."""
    world = await FakeWorld(tmp_path / "bot.sqlite3").start(start_bot=False)
    for n in range(CROWD):
        world.guild.add_member(CROWD_BASE + n, username=f"fan{n}")
    await world.seed_store()
    store = await Store.open(world.db_path)
    try:
        await store.save_link(SEED.alice, "p-alice", SEED.guild_id, "oauth")
        await store.save_link(SEED.bob, "p-bob", SEED.guild_id, "oauth")
    finally:
        await store.close()
    await world.start_bot()
    try:
        yield world
    finally:
        await world.close()


def cached_ids(world: FakeWorld) -> set[int]:
    guild = world.bot.get_guild(SEED.guild_id)
    assert guild is not None
    return {member.id for member in guild.members}


def asked_ids(world: FakeWorld) -> list[int]:
    return [u for request in world.discord.member_requests for u in request.user_ids or ()]


async def test_start_up_asks_for_the_linked_members_by_id_and_never_for_the_whole_server(big_world):
    world = big_world
    gateway = world.bot.services.reconcile.gateway
    await wait_for(lambda: gateway.knows_all_members(SEED.guild_id))
    requests = world.discord.member_requests
    assert requests, "the linked members were asked for"
    assert not any(r.user_ids is None for r in requests), "no request by name or for the whole member list"
    assert sorted(asked_ids(world)) == sorted({SEED.alice, SEED.bob})
    assert all(len(r.user_ids or ()) <= 100 for r in requests)
    assert cached_ids(world) == {world.discord.bot_user_id, SEED.alice, SEED.bob}, "nobody unlinked is kept"
    # The start-up refresh gave the linked members their roles from what was asked for.
    await wait_for(lambda: world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role})
    await wait_for(lambda: world.roles_of(SEED.bob) == {SEED.bronze_role})


async def test_a_new_link_asks_for_that_member_and_gives_the_roles(big_world):
    world = big_world
    await wait_for(lambda: world.bot.services.reconcile.gateway.knows_all_members(SEED.guild_id))
    before = len(world.discord.member_requests)
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    status, _ = await world.link(SEED.dave)
    assert status == 200
    new = world.discord.member_requests[before:]
    assert [r.user_ids for r in new] == [(SEED.dave,)], "one request, for the new link only"
    assert world.roles_of(SEED.dave) == {SEED.gold_role}
    assert SEED.dave in cached_ids(world)


async def test_member_events_keep_the_linked_members_current_and_unlinked_ones_out(big_world):
    world = big_world
    gateway = world.bot.services.reconcile.gateway
    await wait_for(lambda: gateway.knows_all_members(SEED.guild_id))
    await wait_for(lambda: world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role})
    guild = world.bot.get_guild(SEED.guild_id)
    assert guild is not None

    # A moderator's edit reaches the cache by GUILD_MEMBER_UPDATE.
    world.guild.member(SEED.alice).role_ids.add(SEED.bronze_role)
    await wait_for(lambda: gateway.cached_member_roles(SEED.guild_id, SEED.alice) is not None
                   and SEED.bronze_role in (gateway.cached_member_roles(SEED.guild_id, SEED.alice) or ()))
    # An unlinked member's update doesn't add them to the cache.
    world.guild.member(CROWD_BASE + 1).role_ids.add(SEED.vip_role)
    world.guild.member(SEED.alice).role_ids.discard(SEED.bronze_role)  # a later event: the one before was seen
    await wait_for(lambda: SEED.bronze_role not in (gateway.cached_member_roles(SEED.guild_id, SEED.alice) or {0}))
    assert guild.get_member(CROWD_BASE + 1) is None

    # Alice leaves: GUILD_MEMBER_REMOVE drops her, and "not cached" now means "not a member".
    world.guild.remove_member(SEED.alice)
    await wait_for(lambda: guild.get_member(SEED.alice) is None)
    assert gateway.knows_all_members(SEED.guild_id)
    assert await world.bot.services.reconcile.member_guilds(SEED.alice) == []

    # She comes back: she is linked, so the bot asks for her and gives her roles again.
    before = len(world.discord.member_requests)
    world.guild.add_member(SEED.alice, username="alice")
    await wait_for(lambda: world.roles_of(SEED.alice) == {SEED.gold_role})
    assert [r.user_ids for r in world.discord.member_requests[before:]] == [(SEED.alice,)]
    assert guild.get_member(SEED.alice) is not None
    # An unlinked newcomer is not kept.
    world.guild.add_member(CROWD_BASE + CROWD, username="newcomer")
    world.guild.member(SEED.alice).role_ids.add(SEED.vip_role)  # a later event, to know the join was handled
    await wait_for(lambda: SEED.vip_role in (gateway.cached_member_roles(SEED.guild_id, SEED.alice) or ()))
    assert guild.get_member(CROWD_BASE + CROWD) is None


async def test_a_webhook_moves_alice_to_bronze_in_the_big_server(big_world):
    world = big_world
    await wait_for(lambda: world.roles_of(SEED.alice) == {SEED.vip_role, SEED.gold_role})
    await world.settle()
    world.patreon.set_membership("p-alice", "active_patron", tier_ids=[SEED.bronze_tier])
    status, _ = await world.send_webhook("members:pledge:update", "p-alice")
    assert status == 202
    await wait_for(lambda: world.roles_of(SEED.alice) == {SEED.vip_role, SEED.bronze_role})
    await world.settle()
    assert world.roles_of(SEED.bob) == {SEED.bronze_role}
    assert world.roles_of(CROWD_BASE) == set()
