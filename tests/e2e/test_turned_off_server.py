"""A server that follows the campaign but whose admin turned the bot off spends nothing and sends nothing
(review 5, R5-4: SECURITY.md's rows named only tests of a server that follows no campaign, where the campaign
lookup already answers, so the participation checks they name could be removed unnoticed).
"""

from __future__ import annotations

from fakes.world import SEED
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_patron_dms import dm_calls, states_are, turn_on
from tests.e2e.test_self_refresh import patreon_reads, patron_command


async def test_a_refresh_in_a_server_that_was_turned_off_asks_patreon_nothing(world):
    await world.link(SEED.alice)
    await world.settle()
    assert "Saved" in await admin(world, ["settings"], {"enabled": False})
    reads = patreon_reads(world)
    before = await world.store.get_membership("p-alice")
    _, text = await patron_command(world, SEED.alice, ["refresh"])
    assert "doesn't use the bot" in text and "p-alice" not in text
    assert patreon_reads(world) == reads, "no Patreon call"
    assert await world.store.get_membership("p-alice") == before, "nothing stored"


async def test_a_dm_queued_before_the_server_was_turned_off_is_dropped_at_send_time(world):
    dms = world.bot.services.patron_dms
    dms.retry_base = 3600.0  # an hour on the bot's clock, so the retry waits until the test moves the clock
    await turn_on(world, dm_welcome=True)
    world.discord.fail_next("POST", rf"/channels/(?!{SEED.log_channel}/)\d+/messages$", status=503, count=1)
    await world.link(SEED.alice)
    await wait_for(lambda: [call.status for call in dm_calls(world)] == [503])  # queued, waiting out its back-off
    assert "Saved" in await admin(world, ["settings"], {"enabled": False})
    world.clock.advance(hours=2)
    dms.wake()
    await wait_for(lambda: states_are(world, SEED.alice, [("welcome", "dropped")]))
    assert world.discord.dm_channels.messages_to(SEED.alice) == [], "checked again at send time: not sent"
