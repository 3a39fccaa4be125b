"""The Discord face of the patrons report: `/patreon-admin patrons` (a method of cogs.admin's group, which runs
the group's Manage Roles check) answers with this module's helper, and the weekly post runs here.
"""

from __future__ import annotations

import asyncio
import io
import logging

import discord
from discord.ext import commands

from bot.discord_io.client import PatronBot
from bot.guild_admin.patrons_report import attachment, patrons_report
from bot.guild_admin.weekly_patrons import WeeklyPatronsPost
from bot.sync.worker import log_crash

log = logging.getLogger(__name__)

#: How often the weekly post looks whether a server is due (real seconds; the week itself is on the bot's clock).
CHECK_EVERY_SECONDS = 3600.0
NO_MENTIONS = discord.AllowedMentions.none()


def everyone_can_view(channel: discord.abc.GuildChannel) -> bool:
    """Whether @everyone may view the channel, as Discord computes it: the @everyone role's server permissions with
    the channel's @everyone overwrite applied (Discord's developer documentation, Topics → Permissions → Permission
    Overwrites; discord.py's `permissions_for(role)` does exactly that for the default role)."""
    return channel.permissions_for(channel.guild.default_role).view_channel


async def answer_patrons_report(bot: PatronBot, interaction: discord.Interaction) -> None:
    """The summary (split under Discord's 2,000 characters) and then the CSV of every patron, all ephemeral."""
    assert interaction.guild_id is not None  # the admin group is guild-only
    services = bot.services
    report = await patrons_report(
        services.store, services.gateway, services.admin.participation, interaction.guild_id, services.clock()
    )
    chunks: list[str] = []
    for line in report.summary().splitlines():
        if chunks and len(chunks[-1]) + len(line) + 1 <= 1900:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line[:1900])
    for chunk in chunks:
        await interaction.followup.send(chunk, ephemeral=True, allowed_mentions=NO_MENTIONS)
    name, data = attachment(report.csv_bytes())
    await interaction.followup.send(
        "Every patron as CSV (Patreon name, tier, status, linked Discord account, roles here; no e-mail addresses).",
        file=discord.File(io.BytesIO(data), filename=name),
        ephemeral=True,
        allowed_mentions=NO_MENTIONS,
    )


class WeeklyPatronsCog(commands.Cog):
    """Looks once an hour (and once after start-up) whether a server's weekly report is due."""

    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        services = bot.services
        self.weekly = WeeklyPatronsPost(
            services.store, services.gateway, services.admin.participation, services.clock, self._post, self._public
        )
        #: Set after each look (tests wait for it instead of sleeping).
        self.looked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self._task = asyncio.create_task(self._run(), name="weekly patrons report")
        self._task.add_done_callback(log_crash)

    async def cog_unload(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        await self.bot.wait_until_ready()
        while True:
            try:
                await self.weekly.post_due()
            except Exception:  # a store hiccup must not end the weekly post for good
                log.exception("the weekly patrons report failed; trying again in an hour")
            self.looked.set()
            await asyncio.sleep(CHECK_EVERY_SECONDS)

    def _public(self, channel_id: int) -> bool:
        channel = self.bot.get_channel(channel_id)
        return isinstance(channel, discord.abc.GuildChannel) and everyone_can_view(channel)

    async def _post(self, channel_id: int, text: str, name: str, data: bytes) -> None:
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise LookupError(f"channel {channel_id} is not one the bot can post in")
        await channel.send(text, file=discord.File(io.BytesIO(data), filename=name), allowed_mentions=NO_MENTIONS)
