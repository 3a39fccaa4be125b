"""Kick on lapse counts only a paid entitlement's end (review S4, C4): the end of a comp (its expiry or an `uncomp`,
which a Manage-Roles moderator may run) that takes an ex-patron's last tier role is no lapse, and a lapse recorded
before an unlink is forgotten, so a relink doesn't inherit the old date."""

from __future__ import annotations

from datetime import timedelta

from fakes.world import SEED
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_lapse_kicks import give_bot_kick_members, kicks, lapse, sweep


async def lapses(world) -> dict[int, object]:
    return await world.store.lapses_before(SEED.guild_id, world.clock() + timedelta(days=1))


async def test_an_uncomp_or_a_comps_end_taking_an_ex_patrons_last_tier_role_is_no_lapse(world):
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 1})
    await world.link(SEED.carol)  # a former patron: she pledged once, holds no tier role now
    assert not world.roles_of(SEED.carol) & {SEED.gold_role, SEED.bronze_role}
    await admin(world, ["comp"], {"member": SEED.carol, "role": SEED.gold_role, "days": 30})
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.carol))
    await admin(world, ["uncomp"], {"member": SEED.carol, "role": SEED.gold_role})
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.carol))
    assert await lapses(world) == {}, "an uncomp is no lapse"

    await admin(world, ["comp"], {"member": SEED.carol, "role": SEED.gold_role, "days": 1})
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.carol))
    world.clock.advance(days=1, minutes=1)
    assert world.bot is not None
    world.bot.services.comp_expiry.wake()
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.carol))
    assert await lapses(world) == {}, "a comp's end is no lapse"
    world.clock.advance(days=5)
    await world.refresh()
    assert await sweep(world) == [] and kicks(world) == [] and SEED.carol in world.guild.members
async def test_a_lapse_before_an_unlink_is_forgotten_so_a_relink_is_not_kicked_for_it(world):
    give_bot_kick_members(world)
    assert "Saved" in await admin(world, ["settings"], {"kick_after_days": 30})
    await lapse(world, SEED.bob, "p-bob")
    assert SEED.bob in await lapses(world)
    interaction = await world.discord.invoke_slash(SEED.guild_id, SEED.bob, "patreon", ["unlink"])
    await interaction.wait_response(timeout=10)
    await wait_for(lambda: "Unlinked" in (interaction.content or ""))
    assert SEED.bob not in await lapses(world), "unlinking forgets the lapse"
    world.clock.advance(days=40)
    await world.link(SEED.bob)  # relinked to his former-patron account: no tier role, a fresh start
    await world.refresh()
    assert await sweep(world) == [] and kicks(world) == [] and SEED.bob in world.guild.members
