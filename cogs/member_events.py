"""Linked users get their roles the moment they join a server; others may be invited to link, once. Joining or
leaving forgets a lapse (kick on lapse: a rejoin starts afresh)."""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.discord_io.client import PatronBot
from cogs.panel import invite_new_member


class MemberEvents(commands.Cog):
    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        lapse_kicks = self.bot.services.lapse_kicks
        if await self.bot.services.store.get_link_by_discord(member.id) is None:
            await invite_new_member(self.bot, member)  # only when the server turned `welcome_link` on (read first)
            await lapse_kicks.start_afresh(member.guild.id, member.id)  # a rejoin starts afresh
            return
        await lapse_kicks.start_afresh(member.guild.id, member.id)  # before the reconcile, which may lapse anew
        await self.bot.services.reconcile.reconcile_member(member.guild.id, member.id, "joined the server")

    @commands.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        """They left (or were kicked or banned): kick on lapse forgets their lapse here."""
        await self.bot.services.lapse_kicks.start_afresh(payload.guild_id, payload.user.id)

    @commands.Cog.listener()
    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        """Roles changed on Discord (by hand, another bot, or our own write): the next refresh plans this member
        again, since it only plans what changed (bot/sync/plan_scope.py)."""
        if before.roles != after.roles:
            self.bot.services.dirty_members.mark(after.guild.id, after.id)


async def setup(bot: PatronBot) -> None:
    await bot.add_cog(MemberEvents(bot))
