"""Who decides where patron data goes, and that the weekly report never lands where everyone reads (review 5, R5-8).

The log channel names patrons in every line, and the weekly report attaches a CSV of every patron with their payment
status. Choosing that channel, or turning the report on, is a server-wide decision Discord leaves to Manage Server, so
a Manage Roles moderator can't make it; and whoever asks, the report goes only to a channel @everyone can't view, as
Discord computes it from the channel's overwrites (checked when it is chosen and again when it is sent).
"""

from __future__ import annotations

from fakes.discord.permissions import ATTACH_FILES, SEND_MESSAGES, VIEW_CHANNEL
from fakes.world import SEED, FakeWorld
from tests.e2e.connect_world import MANAGE_GUILD, MANAGE_ROLES
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_patrons_report import restart_and_look, weekly_posts
from tests.e2e.test_trust_rank import MALLORY, add_mallory

GENERAL = 740000000000000099
NEEDS_MANAGE_SERVER = (
    "❌ Choosing the log channel, or turning on the weekly patrons report, needs the Manage Server permission: both "
    "show every patron's name and payment status to whoever reads that channel."
)


async def make_private(world: FakeWorld, channel_id: int) -> None:
    """What an admin does for a staff channel: @everyone may not view it, the bot may (and post files)."""
    guild = world.guild
    guild.set_channel_overwrite(channel_id, guild.id, deny=VIEW_CHANNEL)
    guild.set_channel_overwrite(channel_id, guild.bot_user_id, allow=VIEW_CHANNEL | SEND_MESSAGES | ATTACH_FILES)
    everyone = world.bot.get_guild(guild.id).default_role
    await wait_for(
        lambda: (channel := world.bot.get_channel(channel_id)) is not None
        and not channel.permissions_for(everyone).view_channel
    )


async def test_a_moderator_without_manage_server_cannot_route_patron_data(world):
    add_mallory(world)
    world.guild.add_text_channel(GENERAL, name="general")
    await make_private(world, GENERAL)
    await make_private(world, SEED.log_channel)
    before = await world.store.get_settings(SEED.guild_id)
    for change in ({"log_channel": GENERAL}, {"patrons_report_weekly": True}):
        assert (await admin(world, ["settings"], change, MALLORY)).strip() == NEEDS_MANAGE_SERVER
    assert await world.store.get_settings(SEED.guild_id) == before, "nothing changed"
    # Showing less is hers; choosing is a Manage Server admin's.
    assert "Saved" in await admin(world, ["settings"], {"clear": "log_channel"}, MALLORY)
    add_manager = 760000000000000041
    world.guild.add_role(730000000000000042, "Managers", position=5, permissions=MANAGE_ROLES | MANAGE_GUILD)
    world.guild.add_member(add_manager, username="manager", roles=[730000000000000042])
    text = await admin(world, ["settings"], {"log_channel": GENERAL, "patrons_report_weekly": True}, add_manager)
    assert "Saved" in text, text


async def test_the_weekly_report_is_never_routed_to_a_channel_everyone_reads(world):
    world.guild.add_text_channel(GENERAL, name="general")  # @everyone reads it
    await wait_for(lambda: world.bot.get_channel(GENERAL) is not None)
    text = await admin(world, ["settings"], {"log_channel": GENERAL, "patrons_report_weekly": True})
    assert text.strip() == (
        f"❌ Everyone in the server can read <#{GENERAL}>, and the weekly patrons report lists every patron and their "
        "payment status: pick a log channel @everyone can't view, or leave the report off."
    )
    settings = await world.store.get_settings(SEED.guild_id)
    assert (settings.log_channel_id, settings.patrons_report_weekly) == (SEED.log_channel, False), "nothing changed"
    # The seeded log channel is public too: the report can't be turned on for it either, until it is made private.
    assert "Everyone in the server can read" in await admin(world, ["settings"], {"patrons_report_weekly": True})
    await make_private(world, SEED.log_channel)
    assert "Saved" in await admin(world, ["settings"], {"patrons_report_weekly": True})
    assert "Everyone in the server can read" in await admin(world, ["settings"], {"log_channel": GENERAL})


async def test_a_log_channel_opened_to_everyone_later_gets_a_notice_not_the_report(world):
    await make_private(world, SEED.log_channel)
    assert "Saved" in await admin(world, ["settings"], {"patrons_report_weekly": True})
    world.guild.set_channel_overwrite(SEED.log_channel, world.guild.id)  # someone opens the channel to everyone
    everyone = world.bot.get_guild(SEED.guild_id).default_role
    await wait_for(lambda: world.bot.get_channel(SEED.log_channel).permissions_for(everyone).view_channel)
    await restart_and_look(world)
    assert weekly_posts(world) == []
    messages = world.discord.channel_messages.get(SEED.log_channel, [])
    assert not any(message.get("attachments") for message in messages), "no CSV where everyone reads"
    assert any("weekly patrons report wasn't posted" in message["content"] for message in messages)
