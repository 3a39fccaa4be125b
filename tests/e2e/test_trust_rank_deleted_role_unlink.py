"""`unlink-user` past a role the bot gave that was then deleted in Discord (review 6, R6-3), against the real bot.

The grant ledger still remembers a deleted role (nothing forgets it until the member is reconciled), and the rank
rule (bot/guild_admin/rank.py) knows only roles that exist, so the dead grant counted as above every admin but the
owner. Discord confirming the role gone makes it count for nobody; a role only the bot's cache misses, a role Discord
doesn't confirm gone (it doesn't answer) and a real role above her beside the dead one still refuse, changing nothing.
"""

import pytest

from fakes.world import SEED
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_rank import MALLORY, SENIOR, add_mallory
from tests.e2e.test_trust_rank_deleted_role import OLD

ROLES = rf"/guilds/{SEED.guild_id}/roles$"


async def alice_given(world, *roles: int) -> None:
    """Gold gives Alice `roles` too (beside @Gold Patron), by the bot, so the ledger holds each."""
    for role in roles:
        if role == OLD:
            world.guild.add_role(OLD, "Old Supporter", position=12)
        await wait_for(lambda role=role: world.bot.get_guild(SEED.guild_id).get_role(role) is not None)
        assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": role})
    status, _ = await world.link(SEED.alice)
    assert status == 200
    await wait_for(lambda: set(roles) <= world.roles_of(SEED.alice))
    assert set(roles) <= await world.store.granted_roles(SEED.guild_id, SEED.alice)


async def delete_in_discord(world, role: int) -> None:
    world.guild.delete_role(role)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(role) is None)
    assert role in await world.store.granted_roles(SEED.guild_id, SEED.alice), "the ledger still has it"


@pytest.mark.parametrize("dead", [OLD, SENIOR], ids=["below-her", "above-her"])
async def test_a_moderator_may_unlink_a_patron_past_a_deleted_given_role(world, dead):
    """Whether the dead role sat below or above Mallory, nobody can hold it now: it doesn't lock her out, and the
    roles that exist (@Gold Patron, below her) are taken back."""
    add_mallory(world)
    await alice_given(world, dead)
    await delete_in_discord(world, dead)
    text = await admin(world, ["unlink-user"], {"member": SEED.alice}, MALLORY)
    assert "can't" not in text and "Gold Patron" in text, text
    assert await world.store.get_link_by_discord(SEED.alice) is None
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
    assert world.discord.calls_matching("GET", ROLES), "Discord itself said the role is gone"


async def test_unlink_still_refuses_a_real_role_above_her_beside_a_deleted_one(world):
    add_mallory(world)
    await alice_given(world, OLD, SENIOR)
    await delete_in_discord(world, OLD)
    text = await admin(world, ["unlink-user"], {"member": SEED.alice}, MALLORY)
    assert text.strip() == (
        "❌ You can't take back @Senior Staff: Discord only lets you take away roles below your highest role "
        "(@Staff)."
    ), "only the real role is named"
    assert await world.store.get_link_by_discord(SEED.alice) is not None, "the link stays"
    assert SENIOR in world.roles_of(SEED.alice)


async def test_unlink_counts_a_role_missing_only_from_the_bots_cache(world):
    """The cache alone never makes a role gone: it is told @Senior Staff went (a GUILD_ROLE_DELETE for it, as a
    cache lagging behind a just-created role would look) while Discord still lists it, so Mallory is refused."""
    add_mallory(world)
    await alice_given(world, SENIOR)
    world.discord.dispatch("GUILD_ROLE_DELETE", {"guild_id": str(SEED.guild_id), "role_id": str(SENIOR)})
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(SENIOR) is None)
    text = await admin(world, ["unlink-user"], {"member": SEED.alice}, MALLORY)
    assert "You can't take back @" in text, text
    assert await world.store.get_link_by_discord(SEED.alice) is not None, "the link stays"
    assert SENIOR in world.roles_of(SEED.alice)
    assert world.discord.calls_matching("GET", ROLES), "Discord itself was asked"


async def test_unlink_counts_a_deleted_role_while_discord_cannot_confirm_it(world):
    """Fail closed: while Discord doesn't answer the list of roles, the dead grant still counts and nothing
    changes; once Discord answers, the unlink is hers."""
    add_mallory(world)
    await alice_given(world, OLD)
    await delete_in_discord(world, OLD)
    world.discord.fail_next("GET", ROLES, status=503, count=2)
    text = await admin(world, ["unlink-user"], {"member": SEED.alice}, MALLORY)
    assert f"You can't take back @deleted-role-{OLD}" in text, text
    assert await world.store.get_link_by_discord(SEED.alice) is not None, "the link stays"
    world.discord.clear_faults()
    assert "can't" not in await admin(world, ["unlink-user"], {"member": SEED.alice}, MALLORY)
    assert await world.store.get_link_by_discord(SEED.alice) is None
