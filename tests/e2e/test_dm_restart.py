"""A DM whose send was cut short by a stop, with a restart slower than Discord's nonce window (review C3): the bot
reads the member's DM channel back (`GET /channels/{id}/messages?after=`) and sends only what isn't there, so a
slow restart neither loses the DM nor doubles it."""

from __future__ import annotations

import aiohttp

from fakes.world import SEED
from tests.e2e.polling import wait_for
from tests.e2e.test_patron_dms import dm_calls, states_are, turn_on

DM_SEND = rf"/channels/(?!{SEED.log_channel}/)\d+/messages$"
DM_READ = r"/channels/\d+/messages$"


async def test_a_send_cut_short_before_it_reached_discord_is_sent_after_a_slow_restart(world):
    await turn_on(world, dm_welcome=True)
    held = world.discord.hold_next("POST", r"/users/@me/channels$", seconds=10)  # the row is stamped; no message
    await world.link(SEED.alice)
    await wait_for(lambda: held.held >= 1)
    await world.stop_bot()
    held.release()
    world.clock.advance(minutes=3)  # longer than the nonce can be trusted
    await world.start_bot()
    await wait_for(lambda: states_are(world, SEED.alice, [("welcome", "sent")]), timeout=15)
    assert len(world.discord.dm_channels.messages_to(SEED.alice)) == 1, "the DM is not lost"
    assert world.discord.calls_matching("GET", DM_READ), "the channel was read back first"


async def test_a_send_that_reached_discord_is_found_and_not_sent_again_after_a_slow_restart(world):
    await turn_on(world, dm_welcome=True)
    held = world.discord.hold_next("POST", DM_SEND, seconds=10)
    await world.link(SEED.alice)
    await wait_for(lambda: held.held >= 1)
    await world.stop_bot()  # the bot is gone before Discord has answered
    held.release()
    await wait_for(lambda: len(world.discord.dm_channels.messages_to(SEED.alice)) == 1)
    world.clock.advance(minutes=3)
    await world.start_bot()
    await wait_for(lambda: states_are(world, SEED.alice, [("welcome", "sent")]), timeout=15)
    assert len(world.discord.dm_channels.messages_to(SEED.alice)) == 1, "found in the channel: not doubled"
    assert len(dm_calls(world)) == 1, "no second send"


async def test_the_fake_lists_a_dm_channel_like_discord(world):
    """Newest first; `after` gives the messages right after that id; a bad `limit` is 50035; no nonce shown."""
    await turn_on(world, dm_welcome=True)
    await world.link(SEED.alice)
    await wait_for(lambda: len(world.discord.dm_channels.messages_to(SEED.alice)) == 1)
    (channel_id,) = world.discord.dm_channels.channels
    base = f"{world.discord.base_url}/api/v10/channels/{channel_id}/messages"
    headers = {"Authorization": f"Bot {world.discord.bot_token}"}
    (first,) = world.discord.dm_channels.messages_to(SEED.alice)
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(base, params={"after": "0", "limit": "5"}) as response:
            assert response.status == 200
            listed = await response.json()
        assert [m["id"] for m in listed] == [first["id"]] and "nonce" not in listed[0]
        async with http.get(base, params={"after": first["id"]}) as response:
            assert await response.json() == []
        async with http.get(base, params={"limit": "101"}) as response:
            assert response.status == 400 and (await response.json())["code"] == 50035
