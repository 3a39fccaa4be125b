"""`link-user` with a role deleted in Discord still mapped or given (review 6, R6-3), against the real bot.

A link by hand needs an admin who could give by hand every role the server's policy hands out, and, replacing their
link by hand, take back every role the old one gave (bot/guild_admin/rank.py). Nothing forgets a deleted role's
mapping or grant, and the rank rule knows only roles that exist, so the dead role counted as above every admin but
the owner. Discord confirming the role gone makes it count for nobody in both checks; a role only the bot's cache
misses, a deleted one while Discord doesn't answer, and a real role above her beside the dead one still refuse,
changing nothing.
"""

import pytest

from fakes.world import SEED
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_rank import MALLORY, SENIOR, add_mallory
from tests.e2e.test_trust_rank_deleted_role import OLD, drop_from_the_cache_only

ROLES = rf"/guilds/{SEED.guild_id}/roles$"


async def gold_gives(world, role: int) -> None:
    """The owner maps Gold (Alice's tier) to `role` too, beside @Gold Patron."""
    if role == OLD:
        world.guild.add_role(OLD, "Old Supporter", position=12)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(role) is not None)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": role})


async def delete_in_discord(world, role: int) -> None:
    world.guild.delete_role(role)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(role) is None)


async def link_alice(world, user: int = MALLORY) -> str:
    return await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-alice"}, user)


async def alice_linked_by_hand_with(world, *roles: int) -> None:
    """The owner links Alice to her Patreon by hand (Gold): the ledger holds each of `roles` she was given."""
    for role in roles:
        await gold_gives(world, role)
    assert "Linked" in await link_alice(world, SEED.owner_id)
    await wait_for(lambda: set(roles) <= world.roles_of(SEED.alice))
    assert set(roles) <= await world.store.granted_roles(SEED.guild_id, SEED.alice)


async def unmap_gold_but_its_own_role(world) -> None:
    """The owner unmaps Gold (all its roles: the picker no longer offers a deleted one) and maps @Gold Patron again,
    with no sync: Alice's grants stay in the ledger, so only the replacing link's "take back" check sees them."""
    assert "Removed" in await admin(world, ["unmap"], {"tier": SEED.gold_tier})
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SEED.gold_role})


async def relink_alice_to_bob(world) -> str:
    """Mallory replaces Alice's link by hand with one to Bob's Patreon (Bronze)."""
    return await admin(world, ["link-user"], {"member": SEED.alice, "patreon_user_id": "p-bob"}, MALLORY)


@pytest.mark.parametrize("dead", [OLD, SENIOR], ids=["below-her", "above-her"])
async def test_a_moderator_may_link_by_hand_past_a_deleted_mapped_role(world, dead):
    """Whether the dead role sat below or above Mallory, nobody can be given it now: it doesn't lock her out, the
    link gives the roles that exist, and Discord (which refuses a deleted role) hands the dead one to nobody."""
    add_mallory(world)
    await gold_gives(world, dead)
    await delete_in_discord(world, dead)
    text = await link_alice(world)
    assert "can't make the bot give" not in text and "Linked" in text, text
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-alice" and link.by_hand
    await wait_for(lambda: SEED.gold_role in world.roles_of(SEED.alice))
    assert dead not in world.roles_of(SEED.alice) and dead not in world.guild.roles
    assert world.discord.calls_matching("GET", ROLES), "Discord itself said the role is gone"


async def test_link_by_hand_still_refuses_a_real_role_above_her_beside_a_deleted_one(world):
    add_mallory(world)
    await gold_gives(world, OLD)
    await delete_in_discord(world, OLD)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.bronze_tier, "role": SENIOR})
    text = await link_alice(world)
    assert text.strip() == (
        "❌ You can't make the bot give @Senior Staff: Discord only lets you hand out roles below your highest role "
        "(@Staff)."
    ), "only the real role is named"
    assert await world.store.get_link_by_discord(SEED.alice) is None, "nothing linked"
    assert SEED.gold_role not in world.roles_of(SEED.alice)


async def test_link_by_hand_counts_a_role_missing_only_from_the_bots_cache(world):
    """The cache alone never makes a role gone: it is told @Senior Staff went (a GUILD_ROLE_DELETE for it, as a
    cache lagging behind a just-created role would look) while Discord still lists it, so Mallory is refused."""
    add_mallory(world)
    await gold_gives(world, SENIOR)
    await drop_from_the_cache_only(world, SENIOR)
    text = await link_alice(world)
    assert "You can't make the bot give @" in text, text
    assert await world.store.get_link_by_discord(SEED.alice) is None, "nothing linked"
    assert SENIOR not in world.roles_of(SEED.alice)
    assert world.discord.calls_matching("GET", ROLES), "Discord itself was asked"


async def test_link_by_hand_counts_a_deleted_role_while_discord_cannot_confirm_it(world):
    """Fail closed: while Discord doesn't answer the list of roles, the dead mapping still counts and nothing is
    linked; once Discord answers, the link is hers."""
    add_mallory(world)
    await gold_gives(world, OLD)
    await delete_in_discord(world, OLD)
    world.discord.fail_next("GET", ROLES, status=503, count=2)
    text = await link_alice(world)
    assert f"You can't make the bot give @deleted-role-{OLD}" in text, text
    assert await world.store.get_link_by_discord(SEED.alice) is None, "nothing linked"
    world.discord.clear_faults()
    assert "Linked" in await link_alice(world)
    assert await world.store.get_link_by_discord(SEED.alice) is not None


@pytest.mark.parametrize("dead", [OLD, SENIOR], ids=["below-her", "above-her"])
async def test_a_moderator_may_replace_a_link_by_hand_past_a_deleted_given_role(world, dead):
    """Alice's link by hand gave her the dead role before its delete; still mapped and still in the ledger, it
    locks Mallory out of neither check, and the new link (Bob's Bronze) replaces the old one."""
    add_mallory(world)
    await alice_linked_by_hand_with(world, dead)
    await delete_in_discord(world, dead)
    assert dead in await world.store.granted_roles(SEED.guild_id, SEED.alice), "the ledger still has it"
    text = await relink_alice_to_bob(world)
    assert "can't" not in text and "Linked" in text, text
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-bob"
    await wait_for(lambda: SEED.bronze_role in world.roles_of(SEED.alice))
    await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))


async def test_replacing_a_link_past_a_dead_grant_alone_is_hers(world):
    """The "take back" check on its own: the dead role is no longer mapped (so the policy check passes on the code
    before), only the old link's grant of it remains, and it too counts for nobody."""
    add_mallory(world)
    await alice_linked_by_hand_with(world, OLD)
    await delete_in_discord(world, OLD)
    await unmap_gold_but_its_own_role(world)
    assert OLD in await world.store.granted_roles(SEED.guild_id, SEED.alice), "the ledger still has it"
    text = await relink_alice_to_bob(world)
    assert "can't" not in text and "Linked" in text, text
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-bob"


async def test_replacing_a_link_still_refuses_a_real_given_role_above_her_beside_a_deleted_one(world):
    """The old link gave Alice @Senior Staff and @Old Supporter; after the delete and an unmap without sync the
    ledger holds both: only the real one is named, and Alice keeps her link and her role."""
    add_mallory(world)
    await alice_linked_by_hand_with(world, OLD, SENIOR)
    await delete_in_discord(world, OLD)
    await unmap_gold_but_its_own_role(world)
    text = await relink_alice_to_bob(world)
    assert text.strip() == (
        "❌ You can't take back @Senior Staff: Discord only lets you take away roles below your highest role "
        "(@Staff)."
    ), "only the real role is named"
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-alice", "the old link stays"
    assert SENIOR in world.roles_of(SEED.alice)


async def test_replacing_a_link_counts_a_dead_grant_while_discord_cannot_confirm_it(world):
    """Fail closed in the "take back" check too: while Discord doesn't answer, the dead grant counts and Alice keeps
    her link; once Discord answers, the replacement is Mallory's."""
    add_mallory(world)
    await alice_linked_by_hand_with(world, OLD)
    await delete_in_discord(world, OLD)
    await unmap_gold_but_its_own_role(world)
    world.discord.fail_next("GET", ROLES, status=503, count=2)
    text = await relink_alice_to_bob(world)
    assert f"You can't take back @deleted-role-{OLD}" in text, text
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-alice", "the old link stays"
    world.discord.clear_faults()
    assert "Linked" in await relink_alice_to_bob(world)
    link = await world.store.get_link_by_discord(SEED.alice)
    assert link is not None and link.patreon_user_id == "p-bob"
