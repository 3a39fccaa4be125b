"""A log-channel line for a server this process doesn't hold (issue 11 item 6): with shards, a link's OAuth callback
or a webhook may land on the process of another shard, whose discord.py caches none of that server's channels.

The real discord.py bot, logged in over HTTP to the fake Discord (no gateway session, so nothing is cached, as for
another shard's server), and the Discord adapter's `post_log`. The two-process test shows the same through a link
(tests/shards/test_two_processes.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import discord
import pytest
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.discord_io.roles import UNPOSTABLE_SECONDS, DiscordRoleGateway
from fakes.discord import FakeDiscord
from fakes.discord.permissions import SEND_MESSAGES

TOKEN = "fake-bot-token"
GUILD = 710000000004194305  # shard 1 of 2
LOG, HIDDEN, GONE = 731000000000000203, 731000000000000204, 731000000000000999


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pointed() -> Iterator[Callable[[str], None]]:
    """discord.py aimed at the fake, as bot/discord_endpoint.py does; put back afterwards."""
    old_base, old_gateway = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY

    def point(base_url: str) -> None:
        Route.BASE = f"{base_url}/api/v10"
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base_url.replace("http://", "ws://", 1) + "/gateway")

    yield point
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


@pytest.fixture
async def fake(pointed: Callable[[str], None]) -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(bot_token=TOKEN)
    await fake.start()
    pointed(fake.base_url)
    guild = fake.add_guild(GUILD, name="Shard one's server")
    guild.add_text_channel(LOG, name="patreon-log")
    guild.add_text_channel(HIDDEN, name="staff")
    guild.set_channel_overwrite(HIDDEN, guild.bot_role_id, deny=SEND_MESSAGES)
    try:
        yield fake
    finally:
        await fake.close()


async def logged_in(bot: commands.Bot) -> commands.Bot:
    await bot.login(TOKEN)  # HTTP only: no gateway session, so discord.py caches no server at all
    return bot


def posts(fake: FakeDiscord, channel_id: int) -> list:
    return fake.calls_matching("POST", rf"^/channels/{channel_id}/messages$")


async def test_a_process_of_shard_zero_posts_a_line_to_shard_ones_log_channel(fake: FakeDiscord) -> None:
    bot = await logged_in(commands.AutoShardedBot(
        command_prefix="!", intents=discord.Intents.default(), shard_count=2, shard_ids=[0]
    ))
    try:
        ticks = Ticks()
        gateway = DiscordRoleGateway(bot, monotonic=ticks)
        assert bot.get_channel(LOG) is None, "not cached: another shard's server"
        await gateway.post_log(LOG, "<@750000000000000005> linked Patreon account Erin")
        assert [m["content"] for m in fake.messages(LOG)] == ["<@750000000000000005> linked Patreon account Erin"]
        [call] = posts(fake, LOG)
        assert call.json["allowed_mentions"] == {"parse": []}, "pings nobody"

        # Discord's own checks decide: a channel the bot may not post in, or one deleted, is refused once, and not
        # tried again for a while (each refusal counts toward Discord's invalid-request limit).
        for channel_id in (HIDDEN, GONE):
            for _ in range(3):
                await gateway.post_log(channel_id, "a line")
            assert [call.status for call in posts(fake, channel_id)] == [403 if channel_id == HIDDEN else 404]
        assert fake.messages(HIDDEN) == []
        ticks.now += UNPOSTABLE_SECONDS + 1
        await gateway.post_log(GONE, "a line")
        assert len(posts(fake, GONE)) == 2, "tried again after the pause"
    finally:
        await bot.close()


async def test_a_process_holding_every_server_posts_only_to_channels_it_has_cached(fake: FakeDiscord) -> None:
    """Unsharded, an uncached channel is one the bot can't see: no call, as before shards."""
    bot = await logged_in(commands.Bot(command_prefix="!", intents=discord.Intents.default()))
    try:
        await DiscordRoleGateway(bot).post_log(LOG, "a line")
        assert posts(fake, LOG) == []
    finally:
        await bot.close()
