"""`unlink-user` past a role the bot gave that was then deleted in Discord (review 6, R6-3), against the real bot.

The grant ledger still remembers a deleted role (nothing forgets it until the member is reconciled), and the rank
rule (bot/guild_admin/rank.py) knows only roles that exist, so the dead grant counted as above every admin but the
owner. Discord confirming the role gone makes it count for nobody; a role only the bot's cache misses, a role Discord
doesn't confirm gone (it doesn't answer) and a real role above her beside the dead one still refuse, changing nothing.
The same holds for a patron's own link with roles in another server (review 2, R3): a grant there of a role Discord
confirms deleted takes nothing back, so it doesn't make the link only the patron's to remove.
"""

import pytest

from fakes.world import SEED
from tests.e2e.connect_world import link_in
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_rank import MALLORY, SENIOR, add_mallory
from tests.e2e.test_trust_rank_deleted_role import OLD, drop_from_the_cache_only
from tests.e2e.test_trust_servers import EVE, OTHER, OTHER_GOLD, roles_in, two_servers  # noqa: F401  (fixture)

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
    await drop_from_the_cache_only(world, SENIOR)
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


async def alice_signs_in_from_eves_server_given_old_here(world, only_old: bool = True) -> None:
    """The creator's server gives Gold @Old Supporter (`only_old`: and not @Gold Patron); Alice signs in from Eve's
    server (her own link, which counts in both) and holds @Eve Gold there and @Old Supporter here, which the creator
    then deletes."""
    if only_old:
        assert "Removed 1" in await admin(world, ["unmap"], {"tier": SEED.gold_tier, "role": SEED.gold_role})
    world.guild.add_role(OLD, "Old Supporter", position=12)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(OLD) is not None)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": OLD})
    world.discord.guild(OTHER).add_member(SEED.alice, username="alice")
    status, _ = await link_in(world, OTHER, SEED.alice, "alice", "p-alice")
    assert status == 200
    await wait_for(lambda: OLD in roles_in(world, SEED.guild_id, SEED.alice), timeout=10)
    await wait_for(lambda: OTHER_GOLD in roles_in(world, OTHER, SEED.alice), timeout=10)
    await delete_in_discord(world, OLD)


async def test_an_own_link_whose_only_roles_elsewhere_were_deleted_is_the_admins_to_remove(two_servers):  # noqa: F811
    """The bot gives Alice nothing that exists in the creator's server any more: Eve's unlink-user takes nothing
    there, so the remembered grant of the deleted role doesn't make the link only Alice's to remove."""
    world = two_servers
    await alice_signs_in_from_eves_server_given_old_here(world)
    text = await admin(world, ["unlink-user"], {"member": SEED.alice}, EVE, OTHER)
    assert "Unlinked" in text and "@Eve Gold" in text, text
    assert await world.store.get_link_by_discord(SEED.alice) is None
    assert OTHER_GOLD not in roles_in(world, OTHER, SEED.alice)


async def test_an_own_link_with_a_deleted_role_elsewhere_stays_while_discord_cannot_confirm_it(
    two_servers,  # noqa: F811
):
    """Fail closed: while Discord doesn't answer the creator's server's list of roles, the grant there still counts
    and the link stays Alice's to remove; once Discord answers, Eve may."""
    world = two_servers
    await alice_signs_in_from_eves_server_given_old_here(world)
    world.discord.fail_next("GET", ROLES, status=503, count=2)
    assert "only they can unlink" in await admin(world, ["unlink-user"], {"member": SEED.alice}, EVE, OTHER)
    assert await world.store.get_link_by_discord(SEED.alice) is not None, "the link stays"
    assert OTHER_GOLD in roles_in(world, OTHER, SEED.alice)
    world.discord.clear_faults()
    assert "Unlinked" in await admin(world, ["unlink-user"], {"member": SEED.alice}, EVE, OTHER)


async def test_an_own_link_with_a_real_role_elsewhere_beside_a_deleted_one_stays_alices(two_servers):  # noqa: F811
    world = two_servers
    await alice_signs_in_from_eves_server_given_old_here(world, only_old=False)
    assert SEED.gold_role in roles_in(world, SEED.guild_id, SEED.alice)
    assert "only they can unlink" in await admin(world, ["unlink-user"], {"member": SEED.alice}, EVE, OTHER)
    assert await world.store.get_link_by_discord(SEED.alice) is not None, "the link stays"
    assert SEED.gold_role in roles_in(world, SEED.guild_id, SEED.alice), "Alice still pays for Gold"
