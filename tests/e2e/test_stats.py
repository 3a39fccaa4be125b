"""`/patreon-admin stats` end to end (issue 12, item 7): the daily count and the PNG chart, ephemeral.

The real bot against the fakes: the count is taken from what the refresh stored, once a day per server that takes
part, and the chart (matplotlib, in a thread) is attached to the ephemeral answer.
"""

from __future__ import annotations

import struct
from datetime import timedelta

from bot.store.daily_counts import WHOLE_SERVER
from fakes.discord import InteractionRecord
from fakes.world import SEED, FakeWorld
from tests.e2e.polling import wait_for
from tests.e2e.test_admin import admin
from tests.e2e.test_trust_servers import EVE, OTHER, world_with_other_server

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def run_stats(world: FakeWorld, user: int = SEED.owner_id, guild: int = SEED.guild_id, **kwargs):
    """The text answered, the record, and the files attached to the answer."""
    text = await admin(world, ["stats"], user=user, guild=guild, **kwargs)
    record: InteractionRecord = world.discord.interactions[-1]
    files = [
        (attachment["filename"], world.discord.uploads[int(attachment["id"])])
        for message in record.followups.values()
        for attachment in message.get("attachments") or []
    ]
    return text, record, files


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a PNG must start with."""
    assert data[:8] == PNG_SIGNATURE, "a real PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


async def todays_counts(world: FakeWorld, guild: int = SEED.guild_id) -> dict[str, tuple[int, int]]:
    days = await world.store.day_counts(guild, world.clock().date())
    assert len(days) == 1
    return {count.tier_id: (count.patrons, count.linked) for count in days[0].tiers}


async def counted_at_start(world: FakeWorld) -> None:
    cog = world.bot.get_cog("DailyCountCog")
    await wait_for(lambda: cog.looked.is_set())


async def test_stats_answers_with_a_png_chart_and_the_counts_behind_it(world):
    await counted_at_start(world)
    await world.link(SEED.alice)
    world.clock.advance(days=1)  # the next day, the command takes that day's count first

    text, record, files = await run_stats(world)

    assert record.ephemeral
    (name, data) = files[0]
    assert len(files) == 1 and name.endswith(".png")
    width, height = png_size(data)
    assert (width, height) == (800, 450) and 5_000 < len(data) < 500_000
    assert await todays_counts(world) == {WHOLE_SERVER: (2, 1), SEED.gold_tier: (1, 1), SEED.bronze_tier: (1, 0)}
    assert "2 paying, 1 linked here (50%)" in text
    assert "• Gold: 1 (1 linked)" in text and "• Bronze: 1 (0 linked)" in text


async def test_a_day_is_counted_once_even_across_restarts(world):
    await counted_at_start(world)
    first = await todays_counts(world)
    assert first[WHOLE_SERVER] == (2, 0)
    world.patreon.add_user("p-erin", "Erin")
    world.patreon.set_membership("p-erin", patron_status="active_patron", tier_ids=[SEED.gold_tier])
    await world.stop_bot()
    await world.start_bot()  # its start-up refresh stores Erin, and the count looks again
    await counted_at_start(world)
    await run_stats(world)
    assert await todays_counts(world) == first, "today's count stands"

    world.clock.advance(days=1)
    text, _, files = await run_stats(world)
    assert "3 paying, 0 linked here" in text and len(files) == 1
    days = await world.store.day_counts(SEED.guild_id, world.clock().date() - timedelta(days=89))
    assert [day.total.patrons for day in days if day.total] == [2, 3]


async def test_stats_needs_manage_roles(world):
    text, _, files = await run_stats(world, user=SEED.dave, bypass_default_permissions=True)
    assert "Manage Roles" in text and files == []


async def test_stats_in_a_server_that_does_not_take_part_shows_nothing(tmp_path):
    world = await world_with_other_server(tmp_path, allowed=(SEED.guild_id,))
    try:
        text, _, files = await run_stats(world, user=EVE, guild=OTHER)
        assert files == [] and "paying" not in text
        assert await world.store.day_counts(OTHER, world.clock().date() - timedelta(days=89)) == []
    finally:
        await world.close()
