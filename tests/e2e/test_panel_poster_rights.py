"""`panel` posts only where the admin asking could post by hand (review 1, F8), against the real bot and fakes.

The panel carries the admin's own title and text beside a real Link account button, so a moderator who can't write
in #announcements must not get the bot to post "Re-link at https://evil.example" there, nor delete the owner's panel
in a channel she can't see by moving it. Her rights are Discord's: the channel's overwrites included.
"""

from __future__ import annotations

import pytest

from fakes.discord.permissions import SEND_MESSAGES, VIEW_CHANNEL
from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_panel import GET_ROLES, add_channel, bot_sees_channel, post_panel
from tests.e2e.test_trust_rank import MALLORY, add_mallory

ANNOUNCEMENTS = 740000000000000016
PHISH = {"title": "Patreon moved", "text": "Re-link at https://evil.example"}


async def deny_mallory(world: FakeWorld, channel_id: int, denied: int) -> None:
    world.guild.set_channel_overwrite(channel_id, MALLORY, deny=denied)
    assert world.bot is not None
    cached = world.bot.get_channel(channel_id)
    await wait_for(  # the bot's cache knows the overwrite (keyed by an Object: Mallory isn't a cached member)
        lambda: any(t.id == MALLORY and o.pair()[1].value == denied for t, o in cached.overwrites.items())
    )


@pytest.mark.parametrize("denied", [SEND_MESSAGES, VIEW_CHANNEL], ids=["send", "view"])
async def test_a_moderator_cannot_post_the_panel_where_she_cannot_post(world, denied):
    add_mallory(world)
    add_channel(world, ANNOUNCEMENTS)
    await bot_sees_channel(world, ANNOUNCEMENTS)
    await deny_mallory(world, ANNOUNCEMENTS, denied)
    text = await admin(world, ["panel"], {"channel": ANNOUNCEMENTS, **PHISH}, MALLORY)
    assert text.strip() == (
        f"❌ You can't post in <#{ANNOUNCEMENTS}> yourself, so the bot won't post the panel there for you; nothing "
        "was changed."
    )
    assert world.discord.calls_matching("POST", rf"/channels/{ANNOUNCEMENTS}/messages$") == []
    assert await world.store.get_panel(SEED.guild_id) is None
    # Where she may post, she may post the panel.
    add_channel(world)
    await bot_sees_channel(world, GET_ROLES)
    assert "Posted the panel" in await admin(world, ["panel"], {"channel": GET_ROLES}, MALLORY)


async def test_a_moderator_cannot_move_the_panel_out_of_a_channel_she_cannot_see(world):
    add_mallory(world)
    add_channel(world, ANNOUNCEMENTS)
    assert "Posted the panel" in await post_panel(world, ANNOUNCEMENTS)  # the owner's
    (owners,) = world.discord.messages(ANNOUNCEMENTS)
    await deny_mallory(world, ANNOUNCEMENTS, VIEW_CHANNEL)
    add_channel(world)
    await bot_sees_channel(world, GET_ROLES)
    text = await admin(world, ["panel"], {"channel": GET_ROLES, **PHISH}, MALLORY)
    assert "You can't post in the panel's current channel" in text and "nothing was changed" in text
    assert world.discord.messages(GET_ROLES) == []
    assert [m["id"] for m in world.discord.messages(ANNOUNCEMENTS)] == [owners["id"]], "the owner's panel stays"
    assert (await world.store.get_panel(SEED.guild_id)).channel_id == ANNOUNCEMENTS
