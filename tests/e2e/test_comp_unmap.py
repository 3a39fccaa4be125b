"""A comp ends with the last mapping of its role (review 1, F7), against the real bot and the fakes.

The bot manages only roles a tier gives, so unmapping the last tier of a comped role ends its comps (logged), and
the next sync takes the role back; a comp left from before that (or any active comp) stays takeable with `uncomp`.
"""

from __future__ import annotations

from fakes.world import SEED
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_comps import log_lines


async def comp_dave(world) -> None:
    assert "Comped" in await admin(world, ["comp"], {"member": SEED.dave, "role": SEED.gold_role, "days": 3650})
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.dave))


async def test_unmapping_a_comped_roles_last_tier_ends_the_comp_and_sync_takes_the_role_back(world):
    await comp_dave(world)
    assert "Removed" in await admin(world, ["unmap"], {"tier": SEED.gold_tier})
    assert await world.store.active_comps(SEED.guild_id, SEED.dave, world.clock()) == []
    await wait_for(lambda: any("comp of @Gold Patron" in line and "ended" in line for line in log_lines(world)))
    assert "1 changed" in await admin(world, ["sync"], {"dry_run": False})
    assert SEED.gold_role not in world.roles_of(SEED.dave)
    await world.refresh()
    await world.settle()
    assert SEED.gold_role not in world.roles_of(SEED.dave), "a refresh gives nothing back"


async def test_a_comp_stays_while_another_tier_still_gives_its_role(world):
    assert "now get" in await admin(world, ["map"], {"tier": SEED.bronze_tier, "role": SEED.gold_role})
    await comp_dave(world)
    assert "Removed" in await admin(world, ["unmap"], {"tier": SEED.gold_tier})
    assert [comp.role_id for comp in await world.store.active_comps(SEED.guild_id, SEED.dave, world.clock())] == [
        SEED.gold_role
    ]
    await admin(world, ["sync"], {"dry_run": False})
    assert SEED.gold_role in world.roles_of(SEED.dave)


async def test_uncomp_takes_back_a_comp_whose_role_no_tier_gives(world):
    await comp_dave(world)
    # A mapping removed without the command (as one removed before unmap ended comps) leaves the comp active.
    assert await world.store.unmap_tier_role(SEED.guild_id, SEED.gold_tier) == 1
    text = await admin(world, ["uncomp"], {"member": SEED.dave, "role": SEED.gold_role})
    assert "Took back the comp of @Gold Patron" in text
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.dave))
    # With no comp left, a role no tier gives is still not the bot's to touch.
    text = await admin(world, ["uncomp"], {"member": SEED.dave, "role": SEED.gold_role})
    assert "Only a role one of this server's tiers gives" in text
