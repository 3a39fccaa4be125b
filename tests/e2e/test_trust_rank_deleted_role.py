"""A mapped role deleted in Discord counts for nobody in the rank rule (review 6, R6-3), against the real bot.

Gold also gives @Old Supporter, which sits below Mallory's Staff; an admin then deletes it in Discord's role settings,
which the bot hears as GUILD_ROLE_DELETE. Nobody can be given or hold a deleted role, so it must not lock Mallory
out of the emergency stop, `disconnect` or the `unmap` that clears it; a real role above her still refuses, and a
role that merely went missing from the bot's cache (Discord still lists it) still counts.
"""

from fakes.world import SEED, page_text
from tests.e2e.connect_world import MANAGE_GUILD, MANAGE_ROLES, connect, no_env_world
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_disconnect import connected_with_alice
from tests.e2e.test_trust_rank import MALLORY, SENIOR, add_mallory

OLD = 730000000000000042


async def drop_from_the_cache_only(world, role_id: int) -> None:
    """The bot's cache is told the role went (a GUILD_ROLE_DELETE) while Discord still has it: a lagging cache."""
    world.discord.dispatch("GUILD_ROLE_DELETE", {"guild_id": str(SEED.guild_id), "role_id": str(role_id)})
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(role_id) is None)


async def map_then_delete_old_supporter(world) -> None:
    world.guild.add_role(OLD, "Old Supporter", position=12)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(OLD) is not None)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": OLD})
    world.guild.delete_role(OLD)
    await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(OLD) is None)


async def test_a_moderator_may_still_switch_the_bot_off_and_on_with_a_deleted_mapped_role(world):
    add_mallory(world)
    await map_then_delete_old_supporter(world)
    assert "Saved" in await admin(world, ["settings"], {"enabled": False}, MALLORY)
    assert (await world.store.get_settings(SEED.guild_id)).enabled is False
    assert "Saved" in await admin(world, ["settings"], {"enabled": True}, MALLORY)
    assert (await world.store.get_settings(SEED.guild_id)).enabled is True
    # Who gets what is hers to change too, and `check` tells the admins the mapped role is gone.
    assert "Saved" in await admin(world, ["settings"], {"grace_days": 3}, MALLORY)
    assert f"Role {OLD} (@deleted-role-{OLD}): the role no longer exists." in await admin(world, ["check"])


async def test_a_moderator_may_unmap_a_deleted_role(world):
    """Discord's role picker no longer offers a deleted role, so it goes with `unmap tier:` (all the tier's roles);
    the tier's real role is then mapped again."""
    add_mallory(world)
    await map_then_delete_old_supporter(world)
    assert "Removed 2" in await admin(world, ["unmap"], {"tier": SEED.gold_tier}, MALLORY)
    assert SEED.gold_tier not in (await world.store.get_tier_roles(SEED.guild_id)).roles_by_tier
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SEED.gold_role}, MALLORY)
    mapped = (await world.store.get_tier_roles(SEED.guild_id)).roles_by_tier[SEED.gold_tier]
    assert mapped == frozenset({SEED.gold_role}), "the dead mapping is gone"


async def test_a_real_role_above_her_still_refuses_beside_a_deleted_one(world):
    add_mallory(world)
    await map_then_delete_old_supporter(world)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.bronze_tier, "role": SENIOR})
    text = await admin(world, ["settings"], {"enabled": False}, MALLORY)
    assert text.strip() == (
        "❌ You can't turn the bot off while it hands out @Senior Staff: Discord only lets you hand out roles below "
        "your highest role (@Staff)."
    ), "only the real role is named"
    assert (await world.store.get_settings(SEED.guild_id)).enabled is True, "nothing changed"


async def test_a_role_missing_only_from_the_bots_cache_still_counts(world):
    """The bot's cache alone never makes a role gone: Discord's own list of the server's roles decides. Here the
    cache is told @Senior Staff went (a GUILD_ROLE_DELETE for it) while Discord still has it, as a cache lagging
    behind a just-created role would: Mallory is still refused, and `unmap` of it too."""
    add_mallory(world)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SENIOR})
    await drop_from_the_cache_only(world, SENIOR)
    text = await admin(world, ["settings"], {"enabled": False}, MALLORY)
    assert "You can't turn the bot off while it hands out @" in text
    assert (await world.store.get_settings(SEED.guild_id)).enabled is True, "nothing changed"
    assert "You can't stop giving @" in await admin(world, ["unmap"], {"tier": SEED.gold_tier, "role": SENIOR}, MALLORY)
    assert SENIOR in (await world.store.get_tier_roles(SEED.guild_id)).roles_by_tier[SEED.gold_tier]
    assert world.discord.calls_matching("GET", rf"/guilds/{SEED.guild_id}/roles$"), "Discord itself was asked"


async def test_a_deleted_role_still_counts_while_discord_cannot_confirm_it(world):
    """Fail closed: when Discord doesn't answer the list of roles, no role counts as deleted, so the refusal
    stands and nothing changes; once Discord answers, the switch is hers."""
    add_mallory(world)
    await map_then_delete_old_supporter(world)
    world.discord.fail_next("GET", rf"/guilds/{SEED.guild_id}/roles$", status=503, count=2)
    text = await admin(world, ["settings"], {"enabled": False}, MALLORY)
    assert f"You can't turn the bot off while it hands out @deleted-role-{OLD}" in text
    assert (await world.store.get_settings(SEED.guild_id)).enabled is True, "nothing changed"
    world.discord.clear_faults()
    assert "Saved" in await admin(world, ["settings"], {"enabled": False}, MALLORY)


async def test_a_manager_may_disconnect_with_a_deleted_mapped_role(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id, SEED.guild_id)
        assert status == 200, page_text(html)
        add_mallory(world, MANAGE_ROLES | MANAGE_GUILD)
        await map_then_delete_old_supporter(world)
        assert "no longer follows" in await admin(world, ["disconnect"], {}, MALLORY)
        assert await world.store.guild_binding(SEED.guild_id) is None
    finally:
        await world.close()


async def test_a_manager_may_take_back_roles_at_disconnect_past_a_deleted_given_role(tmp_path):
    """The bot gave Alice @Old Supporter before it was deleted: the grant it still remembers can't lock Mallory out
    of `disconnect take_back_roles:True`; the roles that exist are taken back."""
    world = await connected_with_alice(tmp_path)
    try:
        add_mallory(world, MANAGE_ROLES | MANAGE_GUILD)
        world.guild.add_role(OLD, "Old Supporter", position=12)
        await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(OLD) is not None)
        assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": OLD})
        await admin(world, ["sync"], {"dry_run": False})
        await wait_for(lambda: OLD in world.roles_of(SEED.alice))
        world.guild.delete_role(OLD)
        await wait_for(lambda: world.bot.get_guild(SEED.guild_id).get_role(OLD) is None)
        assert OLD in (await world.store.grants_in_guild(SEED.guild_id))[SEED.alice], "the ledger still has it"
        text = await admin(world, ["disconnect"], {"take_back_roles": True}, MALLORY)
        assert "no longer follows campaign" in text and "Took back 1 role(s) the bot gave." in text, text
        await wait_for(lambda: SEED.gold_role not in world.roles_of(SEED.alice))
        assert await world.store.grants_in_guild(SEED.guild_id) == {}, "the dead role's grant is forgotten too"
        assert await world.store.guild_binding(SEED.guild_id) is None
    finally:
        await world.close()
