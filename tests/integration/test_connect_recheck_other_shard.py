"""The connect re-check on a process that doesn't hold the server (review 6, R6-2): any process takes an OAuth
callback (README, shards), and one of another shard, or one just started, has no such server in discord.py's cache.
It used to answer "You're no longer a member of this server" to the server's own owner, connecting nothing.

The real discord.py bot of shard 0, logged in over HTTP to the fake Discord (no gateway session, so nothing is
cached, as for another shard's server: the fixtures of test_log_channel_other_shard.py), and the Discord adapter's
`DiscordAdminLookup`: the server and its roles are read over REST, and only Discord's own answer refuses.
"""

from __future__ import annotations

import discord
import pytest
from discord.ext import commands

from bot.accounts.connect_refusal import ConnectRefusal
from bot.discord_io.admin_lookup import DiscordAdminLookup
from bot.guild_admin.connect_recheck import UNKNOWN, AdminLookupFailed, BotNotInServer, ConnectRecheck
from fakes.discord import FakeDiscord
from tests.integration import test_log_channel_other_shard as shard_one
from tests.integration.test_log_channel_other_shard import GUILD, logged_in

#: The fake Discord with shard 1's server, discord.py aimed at it (fixtures of test_log_channel_other_shard.py).
fake, pointed = shard_one.fake, shard_one.pointed

OWNER, ADMIN, MODERATOR, MEMBER, STRANGER = (750000000000000770 + n for n in range(5))
HEAD, MODS, FANS = 730000000000000771, 730000000000000772, 730000000000000773
MANAGE_GUILD, MANAGE_ROLES = 1 << 5, 1 << 28
NO_SUCH_GUILD = 710000000008388609  # a server Discord doesn't know


class Mapped:
    """The rank rule's answer as CampaignConnections gives it: nothing mapped, so any manager may connect."""

    async def connect_refusal(self, guild_id: int, invoker: object) -> str | None:
        return None


async def shard_zero() -> commands.Bot:
    return await logged_in(commands.AutoShardedBot(
        command_prefix="!", intents=discord.Intents.default(), shard_count=2, shard_ids=[0]
    ))


async def test_the_owner_and_a_manage_server_admin_of_another_shards_server_are_read_over_rest(fake: FakeDiscord):
    guild = fake.guild(GUILD)
    guild.owner_id = OWNER
    guild.add_role(HEAD, "Head", position=12, permissions=MANAGE_GUILD | MANAGE_ROLES)
    guild.add_role(MODS, "Mods", position=8, permissions=MANAGE_ROLES)
    guild.add_role(FANS, "Fans", position=3)
    for user_id, roles in ((OWNER, []), (ADMIN, [HEAD]), (MODERATOR, [MODS]), (MEMBER, [])):
        guild.add_member(user_id, username=f"user{user_id % 100}", roles=roles)
    bot = await shard_zero()
    try:
        assert bot.get_guild(GUILD) is None, "not cached: another shard's server"
        lookup = DiscordAdminLookup(bot)
        owner = await lookup.standing(GUILD, OWNER)
        assert owner is not None and owner.manages_server and owner.rank.owner
        admin = await lookup.standing(GUILD, ADMIN)
        assert admin is not None and admin.manages_server and not admin.rank.owner
        assert {MODS, FANS} <= admin.rank.roles_below and HEAD not in admin.rank.roles_below
        assert admin.rank.top_role_name == "@Head"
        moderator = await lookup.standing(GUILD, MODERATOR)
        assert moderator is not None and not moderator.manages_server and moderator.rank.roles_below >= {FANS}
        plain = await lookup.standing(GUILD, MEMBER)
        assert plain is not None and not plain.manages_server
        assert await lookup.standing(GUILD, STRANGER) is None, "Discord's Unknown Member: not a member"
        recheck = ConnectRecheck(lookup, Mapped())  # type: ignore[arg-type]
        assert await recheck.refusal(GUILD, OWNER) is None, "the owner connects from any process"
        assert await recheck.refusal(GUILD, ADMIN) is None
    finally:
        await bot.close()


async def test_only_discords_own_answer_refuses_for_good_and_an_outage_says_try_again(fake: FakeDiscord):
    guild = fake.guild(GUILD)
    guild.owner_id = OWNER
    guild.add_member(OWNER, username="owner")
    bot = await shard_zero()
    try:
        lookup = DiscordAdminLookup(bot)
        with pytest.raises(BotNotInServer):
            await lookup.standing(NO_SUCH_GUILD, OWNER)  # 404 Unknown Guild
        fake.fail_next("GET", rf"/guilds/{GUILD}$", 503)
        with pytest.raises(AdminLookupFailed):
            await lookup.standing(GUILD, OWNER)
        fake.fail_next("GET", rf"/guilds/{GUILD}/members/{OWNER}$", 503)
        refusal = await ConnectRecheck(lookup, Mapped()).refusal(GUILD, OWNER)  # type: ignore[arg-type]
        assert refusal == ConnectRefusal(UNKNOWN, retry=True), "decides nothing: the attempt is kept"
        assert await ConnectRecheck(lookup, Mapped()).refusal(GUILD, OWNER) is None  # type: ignore[arg-type]
    finally:
        await bot.close()
