"""Switching the bot on or off, and disconnecting, follow the rank rule too (review 5, R5-3), against the real bot.

Whether the bot acts decides who holds every role the policy hands out: switched back on it gives them again,
switched off (or disconnected) it leaves them on patrons who stopped paying. Mallory (Manage Roles, top role Staff)
sits below Senior Staff, which the owner maps to Gold, so each switch is refused with one sentence and changes
nothing; once nothing the policy hands out is above her it is hers to flip, and the owner is exempt.
"""

from fakes.world import SEED, page_text
from tests.e2e.connect_world import MANAGE_GUILD, MANAGE_ROLES, connect, no_env_world
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_lapse_kicks import cancel
from tests.e2e.test_trust_rank import MALLORY, SENIOR, add_mallory


def refused(verb: str) -> str:
    return (
        f"❌ You can't {verb} @Senior Staff: Discord only lets you hand out roles below your highest role (@Staff)."
    )


async def test_a_moderator_below_a_mapped_role_cannot_turn_the_bot_back_on(world):
    add_mallory(world)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SENIOR})
    assert "Saved" in await admin(world, ["settings"], {"enabled": False})  # the owner stops it
    text = await admin(world, ["settings"], {"enabled": True}, MALLORY)
    assert text.strip() == refused("turn the bot on while it hands out")
    assert (await world.store.get_settings(SEED.guild_id)).enabled is False, "nothing changed"
    # The owner may; once Senior Staff is no longer handed out, switching is Mallory's too.
    assert "Saved" in await admin(world, ["settings"], {"enabled": True})
    assert "Removed 1" in await admin(world, ["unmap"], {"tier": SEED.gold_tier, "role": SENIOR})
    assert "Saved" in await admin(world, ["settings"], {"enabled": False}, MALLORY)
    assert "Saved" in await admin(world, ["settings"], {"enabled": True}, MALLORY)


async def test_a_moderator_below_a_given_role_cannot_turn_the_bot_off(world):
    add_mallory(world)
    assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SENIOR})
    await world.link(SEED.alice)
    await wait_for(lambda: SENIOR in world.roles_of(SEED.alice))
    text = await admin(world, ["settings"], {"enabled": False}, MALLORY)
    assert text.strip() == refused("turn the bot off while it hands out")
    assert (await world.store.get_settings(SEED.guild_id)).enabled is True, "nothing changed"
    cancel(world, "p-alice")  # Alice stops paying, long ago
    await world.refresh()
    await wait_for(lambda: SENIOR not in world.roles_of(SEED.alice))
    # The owner may switch it off, and the log says who did.
    assert "Saved" in await admin(world, ["settings"], {"enabled": False})
    said = f"<@{SEED.owner_id}> changed the settings: the bot stopped managing Patreon roles here"
    await wait_for(lambda: any(said in m["content"] for m in world.discord.messages(SEED.log_channel)))


async def test_a_manager_below_a_mapped_role_cannot_disconnect(tmp_path):
    world = await no_env_world(tmp_path)
    try:
        status, html = await connect(world, SEED.owner_id, "creator", world.patreon.owner_id, SEED.guild_id)
        assert status == 200, page_text(html)
        add_mallory(world, MANAGE_ROLES | MANAGE_GUILD)
        assert "now get" in await admin(world, ["map"], {"tier": SEED.gold_tier, "role": SENIOR})
        campaign = world.patreon.campaign.id
        text = await admin(world, ["disconnect"], {}, MALLORY)
        assert text.strip() == refused("disconnect while the policy hands out").removeprefix("❌ ")
        assert (await world.store.guild_binding(SEED.guild_id)).campaign_id == campaign, "still connected"
        assert await world.store.get_campaign(campaign) is not None, "the creator's tokens are kept"
        # The owner may.
        assert "no longer follows" in await admin(world, ["disconnect"], {})
        assert await world.store.guild_binding(SEED.guild_id) is None
    finally:
        await world.close()
