"""Kick on lapse: a rejoin starts afresh (review 5, R5-10). Leaving or joining the server forgets a lapse through
the gateway's member events, not only when an hourly sweep happens to find the member gone: a member who leaves and
rejoins between two sweeps, or whose departure the bot didn't see (it was down), isn't kicked for the old date; nor is
one who left and rejoined while the bot was down, which the sweep reads from Discord's `joined_at`."""

from __future__ import annotations

from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_lapse_kicks import give_bot_kick_members, kicks, lapse, sweep
from tests.e2e.test_lapse_own_pledge import lapses, nobody_kicked_after


async def test_leaving_forgets_the_lapse_so_a_rejoin_between_two_sweeps_starts_afresh(world):
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 30})
    await lapse(world, SEED.bob, "p-bob")
    assert SEED.bob in await lapses(world)
    world.clock.advance(days=10)
    world.guild.remove_member(SEED.bob)  # Bob leaves ...
    await wait_for(lambda: _not_lapsed(world, SEED.bob))
    world.guild.add_member(SEED.bob, username="bob")  # ... and comes back before the next hourly sweep
    await world.settle()
    await nobody_kicked_after(world, 21, SEED.bob)


async def test_joining_forgets_a_lapse_whose_departure_the_bot_did_not_see(world):
    """Bob leaves while the bot is down (no event reaches it); when he rejoins, the join forgets the old lapse."""
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 30})
    await lapse(world, SEED.bob, "p-bob")
    world.clock.advance(days=10)
    await world.stop_bot()
    world.guild.remove_member(SEED.bob)
    await world.start_bot()
    assert SEED.bob in await lapses(world), "nobody saw him go"
    world.guild.add_member(SEED.bob, username="bob")
    await wait_for(lambda: _not_lapsed(world, SEED.bob))
    await nobody_kicked_after(world, 21, SEED.bob)


async def test_a_leave_and_rejoin_while_the_bot_is_down_starts_afresh(world):
    """Bob leaves and comes back while the bot is down (a deploy: neither event reaches it, and Discord replays
    neither on a new session); the sweep sees from Discord's `joined_at` that he rejoined after the lapse (review 6,
    R6-5). The fake stamps `joined_at` by the real clock; this world's clock has moved on, so it is set to the
    world's time of the rejoin, as Discord would say."""
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 30})
    await lapse(world, SEED.bob, "p-bob")
    world.clock.advance(days=10)
    await world.stop_bot()
    world.guild.remove_member(SEED.bob)
    world.guild.add_member(SEED.bob, username="bob").joined_at = world.clock().isoformat()
    await world.start_bot()
    assert SEED.bob in await lapses(world), "nobody saw him go or come back"
    await nobody_kicked_after(world, 21, SEED.bob)
    assert SEED.bob not in await lapses(world), "the sweep forgets it: a later lapse counts afresh"


async def test_a_lapse_after_the_members_join_still_counts(world):
    """The control: Bob joined when the server was seeded, before his lapse, so the lapse stands and he is kicked."""
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 30})
    await lapse(world, SEED.bob, "p-bob")
    world.clock.advance(days=31)
    await world.refresh()
    assert (SEED.guild_id, SEED.bob) in await sweep(world) and kicks(world, SEED.bob)


async def _not_lapsed(world: FakeWorld, user_id: int) -> bool:
    return user_id not in await lapses(world)
