"""The bot's own role writes count before Discord's gateway echoes them into discord.py's cache.

discord.py learns of a role PUT/DELETE only from the GUILD_MEMBER_UPDATE that follows it, which can lag. The fake
Discord holds those events back (`hold_member_updates`), so a second job runs while the cache still shows the
member as before the first one's write: it must still take back a role just given, and give back one just taken.
"""

import asyncio

from bot.discord_io.roles import DiscordRoleGateway
from fakes.world import SEED
from tests.e2e.polling import wait_for

DAVE = SEED.dave  # a free member: no roles at the start


def cached_roles(world, user_id: int) -> set[int]:
    """What discord.py's own member cache shows, without the bot's overlay."""
    member = world.bot.get_guild(SEED.guild_id).get_member(user_id)
    return {role.id for role in member.roles if not role.is_default()}


def role_writes(world, user_id: int) -> list[tuple[str, int]]:
    """The role calls made for this member, in order: ("PUT" | "DELETE", role id)."""
    return [(call.method, int(call.path.rsplit("/", 1)[1])) for call in world.role_calls(user_id)]


async def release_and_wait_for_echoes(world, user_id: int) -> None:
    """Send the held member updates and wait until discord.py has applied each one."""
    seen = {"count": 0}

    def check(_before, after) -> bool:
        seen["count"] += after.id == user_id
        return seen["count"] >= expected

    waiter = asyncio.ensure_future(world.bot.wait_for("member_update", check=check, timeout=10))
    await asyncio.sleep(0)  # the waiter is registered before the first echo can arrive
    expected = world.release_member_updates()
    assert expected, "a role change happened while the member's updates were held"
    await waiter


async def link_dave(world) -> None:
    await world.store.save_link(DAVE, "p-dave", SEED.guild_id, "admin")


async def give_gold(world, trigger: str = "members:pledge:create") -> None:
    world.patreon.set_membership("p-dave", "active_patron", tier_ids=[SEED.gold_tier])
    status, _ = await world.send_webhook(trigger, "p-dave")
    assert 200 <= status < 300
    await world.settle()


async def make_free(world) -> None:
    world.patreon.set_membership("p-dave", None, tier_ids=[])
    status, _ = await world.send_webhook("members:update", "p-dave")
    assert 200 <= status < 300
    await world.settle()


async def test_a_role_given_moments_ago_is_taken_back_before_the_cache_shows_it(world):
    await link_dave(world)
    world.discord.clear_calls()
    world.hold_member_updates(DAVE)
    await give_gold(world)
    assert world.roles_of(DAVE) == {SEED.gold_role}
    assert cached_roles(world, DAVE) == set(), "the echo of the PUT is held: the cache still shows no role"

    await make_free(world)  # Dave cancels at once; the job sees a cache without Gold
    assert world.roles_of(DAVE) == set(), "the role just given was taken back"

    await release_and_wait_for_echoes(world, DAVE)
    await world.settle()
    assert world.roles_of(DAVE) == set() and cached_roles(world, DAVE) == set()
    assert role_writes(world, DAVE) == [("PUT", SEED.gold_role), ("DELETE", SEED.gold_role)]
    assert await world.store.granted_roles(SEED.guild_id, DAVE) == set()


async def test_a_role_taken_moments_ago_is_given_back_before_the_cache_shows_it(world):
    await link_dave(world)
    await give_gold(world)
    await wait_for(lambda: cached_roles(world, DAVE) == {SEED.gold_role})
    world.discord.clear_calls()
    world.hold_member_updates(DAVE)

    await make_free(world)
    assert world.roles_of(DAVE) == set()
    assert cached_roles(world, DAVE) == {SEED.gold_role}, "the echo of the DELETE is held"
    await give_gold(world, "members:pledge:update")  # Dave pledges again at once; the cache still shows Gold
    assert world.roles_of(DAVE) == {SEED.gold_role}, "the role just taken was given back"

    await release_and_wait_for_echoes(world, DAVE)
    await world.settle()
    assert world.roles_of(DAVE) == {SEED.gold_role} and cached_roles(world, DAVE) == {SEED.gold_role}
    assert role_writes(world, DAVE) == [("DELETE", SEED.gold_role), ("PUT", SEED.gold_role)]
    assert await world.store.granted_roles(SEED.guild_id, DAVE) == {SEED.gold_role}


async def test_a_refresh_right_after_a_grant_takes_it_back_from_the_cached_view(world):
    """The refresh plans from `cached_member_roles` (no request per member): it must see our fresh grant too."""
    await link_dave(world)
    world.discord.clear_calls()
    world.hold_member_updates(DAVE)
    await give_gold(world)
    world.patreon.set_membership("p-dave", None, tier_ids=[])  # no webhook this time: the refresh finds it
    report = await world.refresh("stale cache")
    assert report.ok, report.detail
    assert world.roles_of(DAVE) == set()

    await release_and_wait_for_echoes(world, DAVE)
    await world.settle()
    assert role_writes(world, DAVE) == [("PUT", SEED.gold_role), ("DELETE", SEED.gold_role)]


async def test_once_the_cache_shows_our_write_a_moderators_later_change_counts_at_once(world):
    """Our write gives way when its echo reaches the cache, even if nobody reads the member before a moderator's
    edit arrives."""
    gateway = DiscordRoleGateway(world.bot)
    world.hold_member_updates(DAVE)
    await gateway.set_member_roles(SEED.guild_id, DAVE, frozenset({SEED.gold_role}), frozenset(), "test")
    assert await gateway.member_roles(SEED.guild_id, DAVE) == {SEED.gold_role}
    await release_and_wait_for_echoes(world, DAVE)  # the echo of our PUT; no read of the member follows
    world.guild.member(DAVE).role_ids.discard(SEED.gold_role)  # a moderator takes it off by hand
    await wait_for(lambda: cached_roles(world, DAVE) == set())
    await wait_for(lambda: gateway.cached_member_roles(SEED.guild_id, DAVE) == set())  # well before the bound
    assert await gateway.member_roles(SEED.guild_id, DAVE) == set()


async def test_after_the_settle_time_the_cache_is_believed_over_our_write(world):
    """A write whose echo can't be told apart (it reversed one of ours still in flight) lasts only the bound."""
    now = {"t": 1000.0}
    gateway = DiscordRoleGateway(world.bot, monotonic=lambda: now["t"])
    world.hold_member_updates(DAVE)
    gold = frozenset({SEED.gold_role})
    await gateway.set_member_roles(SEED.guild_id, DAVE, gold, frozenset(), "test")
    await gateway.set_member_roles(SEED.guild_id, DAVE, frozenset(), gold, "test")
    world.guild.member(DAVE).role_ids.add(SEED.gold_role)  # a moderator gives it by hand before the echoes
    await release_and_wait_for_echoes(world, DAVE)
    assert cached_roles(world, DAVE) == {SEED.gold_role}

    now["t"] += gateway.pending_writes.settle_seconds - 1
    assert gateway.cached_member_roles(SEED.guild_id, DAVE) == set(), "within the bound: our DELETE counts"
    now["t"] += 2
    assert gateway.cached_member_roles(SEED.guild_id, DAVE) == {SEED.gold_role}
    assert await gateway.member_roles(SEED.guild_id, DAVE) == {SEED.gold_role}
