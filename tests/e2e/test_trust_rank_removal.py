"""Admins can't make the bot take away a role above their own rank either (review 1, F4), against the real bot.

Discord lets a member with Manage Roles remove only roles strictly below their highest role, as it does for giving;
the owner is exempt and Administrator is not. Mallory (top role Staff) sits below Senior Staff, which the owner maps
to Gold: `unmap` + `sync`, `unlink-user`, clearing or replacing a role setting and `disconnect take_back_roles:True`
would each strip Senior Staff from Alice, who pays for it, so each is refused with one sentence and changes nothing.
"""

import pytest

from fakes.world import SEED, page_text
from tests.e2e.connect_world import MANAGE_GUILD, MANAGE_ROLES, connect, no_env_world
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_rank import ADMINISTRATOR, MALLORY, SENIOR, add_mallory, mapped_roles

STOP = "❌ You can't stop giving @Senior Staff: Discord only lets you take away roles below your highest role (@Staff)."
TAKE = "❌ You can't take back @Senior Staff: Discord only lets you take away roles below your highest role (@Staff)."


async def alice_holds_senior_staff(world) -> None:
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SENIOR})
    status, _ = await world.link(SEED.alice)
    assert status == 200
    await wait_for(lambda: SENIOR in world.roles_of(SEED.alice))


@pytest.mark.parametrize("permissions", [MANAGE_ROLES, MANAGE_ROLES | ADMINISTRATOR], ids=["manage-roles", "admin"])
@pytest.mark.parametrize("role", [SENIOR, None], ids=["that-role", "all-of-the-tier"])
async def test_a_moderator_cannot_unmap_a_role_above_her_own(world, permissions, role):
    add_mallory(world, permissions)
    await alice_holds_senior_staff(world)
    before = await mapped_roles(world)
    options = {"tier": SEED.gold_tier} | ({"role": role} if role else {})
    assert (await admin(world, ["unmap"], options, MALLORY)).strip() == STOP
    assert await mapped_roles(world) == before, "the mapping stays"
    assert "0 changed" in await admin(world, ["sync"], {"dry_run": False}, MALLORY)
    assert SENIOR in world.roles_of(SEED.alice), "Alice keeps what she pays for"
    # A role below her is hers to stop giving; the owner may unmap anything.
    assert "Removed 1" in await admin(world, ["unmap"], {"tier": SEED.gold_tier, "role": SEED.gold_role}, MALLORY)
    assert "Removed 1" in await admin(world, ["unmap"], {"tier": SEED.gold_tier, "role": SENIOR})


async def test_a_moderator_cannot_unlink_a_patron_holding_a_role_above_her(world):
    add_mallory(world)
    await alice_holds_senior_staff(world)
    assert (await admin(world, ["unlink-user"], {"member": SEED.alice}, MALLORY)).strip() == TAKE
    assert (await world.store.get_link_by_discord(SEED.alice)) is not None, "the link stays"
    assert SENIOR in world.roles_of(SEED.alice)
    # The owner may.
    assert "Senior Staff" in await admin(world, ["unlink-user"], {"member": SEED.alice})
    await wait_for(lambda: SENIOR not in world.roles_of(SEED.alice))


@pytest.mark.parametrize(
    "change", [{"clear": "lifetime_role"}, {"lifetime_role": SEED.vip_role}], ids=["clear", "replace"]
)
async def test_a_moderator_cannot_clear_or_replace_a_policy_role_above_her(world, change):
    add_mallory(world)
    assert "Saved" in await admin(world, ["settings"], {"lifetime_role": SENIOR, "lifetime_dollars": 100})
    before = await world.store.get_settings(SEED.guild_id)
    assert (await admin(world, ["settings"], change, MALLORY)).strip() == STOP
    assert await world.store.get_settings(SEED.guild_id) == before, "nothing changed"
    # A role setting of hers stays hers to clear.
    assert "Saved" in await admin(world, ["settings"], {"former_role": SEED.vip_role}, MALLORY)
    assert "Saved" in await admin(world, ["settings"], {"clear": "former_role"}, MALLORY)
    assert (await world.store.get_settings(SEED.guild_id)).former_patron_role_id is None


async def test_a_manager_below_a_given_role_cannot_take_back_roles_at_disconnect(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id, SEED.guild_id)
        assert status == 200, page_text(html)
        add_mallory(world, MANAGE_ROLES | MANAGE_GUILD)
        await alice_holds_senior_staff(world)
        text = await admin(world, ["disconnect"], {"take_back_roles": True}, MALLORY)
        assert text.strip() == TAKE.removeprefix("❌ ")
        assert await world.store.guild_binding(SEED.guild_id) is not None, "refused before the disconnect"
        assert SENIOR in world.roles_of(SEED.alice)
        # The owner may.
        assert "Took back" in await admin(world, ["disconnect"], {"take_back_roles": True})
        await wait_for(lambda: SENIOR not in world.roles_of(SEED.alice))
    finally:
        await world.close()
