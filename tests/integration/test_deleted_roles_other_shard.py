"""Which mapped roles a server no longer has, asked by a process that doesn't hold the server (review 6, R6-3).

The rank rule leaves out a role Discord deleted; the connect callback asks it on any process, and one of another
shard has no such server cached. The real discord.py bot of shard 0, logged in over HTTP to the fake Discord
(nothing cached: the fixtures of test_log_channel_other_shard.py), and the Discord adapter's `deleted_roles`: the
server's own role list over REST decides, and Discord failing deletes nothing.
"""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.discord_io.roles import DiscordRoleGateway
from fakes.discord import FakeDiscord
from tests.integration import test_log_channel_other_shard as shard_one
from tests.integration.test_log_channel_other_shard import GUILD, logged_in

#: The fake Discord with shard 1's server, discord.py aimed at it (fixtures of test_log_channel_other_shard.py).
fake, pointed = shard_one.fake, shard_one.pointed

KEPT, DELETED = 730000000000000781, 730000000000000782


async def test_another_shards_server_says_which_roles_are_gone_from_discords_own_list(fake: FakeDiscord):
    guild = fake.guild(GUILD)
    guild.add_role(KEPT, "Gold Patron", position=10)
    guild.add_role(DELETED, "Old Supporter", position=9)
    guild.delete_role(DELETED)
    bot = await logged_in(commands.AutoShardedBot(
        command_prefix="!", intents=discord.Intents.default(), shard_count=2, shard_ids=[0]
    ))
    try:
        assert bot.get_guild(GUILD) is None, "not cached: another shard's server"
        gateway = DiscordRoleGateway(bot)
        assert await gateway.deleted_roles(GUILD, frozenset({KEPT, DELETED})) == {DELETED}
        assert fake.calls_matching("GET", rf"/guilds/{GUILD}$"), "Discord itself was asked"
        fake.fail_next("GET", rf"/guilds/{GUILD}$", status=503, count=2)
        assert await gateway.deleted_roles(GUILD, frozenset({KEPT, DELETED})) == frozenset(), "fail closed"
        fake.clear_faults()
        assert await gateway.deleted_roles(GUILD, frozenset({KEPT})) == frozenset()
    finally:
        await bot.close()
