"""`uncomp` of a comp whose role was deleted in Discord (review 6, R6-3), against the real bot.

Discord's role picker offers only roles that exist, so these call the comp service as the command does, with the
rank the cog reads from the asker's member (cogs/admin.py `invoker_rank`), as a role option Discord resolved just
before the delete would reach it. Ending a comp of a role Discord confirms gone takes nothing from anyone, so neither
the rank rule nor the bot's own reach over the role stands in the way; giving one is still refused. A role only the
bot's cache misses, and a deleted one while Discord doesn't answer, still refuse and change nothing.
"""

import pytest

from bot.guild_admin.rank import InvokerRank
from bot.guild_admin.service import AdminError
from fakes.world import SEED
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_rank import MALLORY, SENIOR, add_mallory
from tests.e2e.test_trust_rank_deleted_role import OLD, drop_from_the_cache_only

ROLES = rf"/guilds/{SEED.guild_id}/roles$"


async def rank_of(world, user_id: int) -> InvokerRank:
    """The asker as the cog reads them: the roles strictly below their top role in the bot's view of the server."""
    guild = world.bot.get_guild(SEED.guild_id)
    member = guild.get_member(user_id) or await guild.fetch_member(user_id)
    top = member.top_role
    below = frozenset(role.id for role in guild.roles if role < top)
    return InvokerRank(user_id=user_id, owner=guild.owner_id == user_id, roles_below=below, top_role_name=top.name)


async def dave_comped(world, role: int) -> None:
    """The owner maps `role` to Gold and comps it to Dave (no pledge), who then holds it from the bot."""
    if role == OLD:
        world.guild.add_role(OLD, "Old Supporter", position=12)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(role) is not None)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": role})
    assert "Comped" in await admin(world, ["comp"], {"member": SEED.dave, "role": role, "days": 30})
    await wait_for(lambda: role in world.roles_of(SEED.dave))


async def comped_roles(world) -> set[int]:
    return {comp.role_id for comp in await world.store.active_comps(SEED.guild_id, SEED.dave, world.clock())}


async def uncomp(world, role: int) -> str:
    return await world.bot.services.comps.uncomp(SEED.guild_id, SEED.dave, role, await rank_of(world, MALLORY))


@pytest.mark.parametrize("dead", [OLD, SENIOR], ids=["below-her", "above-her"])
async def test_a_moderator_may_take_back_a_comp_of_a_role_deleted_in_discord(world, dead):
    add_mallory(world)
    await dave_comped(world, dead)
    world.guild.delete_role(dead)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(dead) is None)
    assert "Took back the comp" in await uncomp(world, dead)
    assert await comped_roles(world) == set(), "the comp ended"
    assert world.discord.calls_matching("GET", ROLES), "Discord itself said the role is gone"
    # Giving a deleted role is still refused, to the owner too.
    owner = await rank_of(world, SEED.owner_id)
    with pytest.raises(AdminError, match="the role no longer exists"):
        await world.bot.services.comps.comp(SEED.guild_id, SEED.dave, dead, 5, None, owner)
    assert await comped_roles(world) == set()


async def test_uncomp_counts_a_role_missing_only_from_the_bots_cache(world):
    """The cache alone never makes a role gone: told @Senior Staff went (a GUILD_ROLE_DELETE for it) while Discord
    still lists it, Mallory's uncomp, through the command, is refused and Dave keeps his comp and the role."""
    add_mallory(world)
    await dave_comped(world, SENIOR)
    await drop_from_the_cache_only(world, SENIOR)
    text = await admin(world, ["uncomp"], {"member": SEED.dave, "role": SENIOR}, MALLORY)
    assert "❌" in text and "Took back" not in text, text
    assert await comped_roles(world) == {SENIOR}, "the comp stays"
    assert SENIOR in world.roles_of(SEED.dave)
    assert world.discord.calls_matching("GET", ROLES), "Discord itself was asked"


async def test_uncomp_counts_a_deleted_role_while_discord_cannot_confirm_it(world):
    """Fail closed: while Discord doesn't answer the list of roles, the deleted role still counts and the comp
    stays; once Discord answers, the uncomp is hers."""
    add_mallory(world)
    await dave_comped(world, SENIOR)
    world.guild.delete_role(SENIOR)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(SENIOR) is None)
    world.discord.fail_next("GET", ROLES, status=503, count=2)
    with pytest.raises(AdminError):
        await uncomp(world, SENIOR)
    assert await comped_roles(world) == {SENIOR}, "the comp stays"
    world.discord.clear_faults()
    assert "Took back the comp" in await uncomp(world, SENIOR)
    assert await comped_roles(world) == set()
