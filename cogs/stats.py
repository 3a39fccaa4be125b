"""The Discord face of `/patreon-admin stats` (a method of cogs.admin's group, which runs the Manage Roles check)
and the daily count behind it, taken after start-up and looked for every hour.
"""

from __future__ import annotations

import asyncio
import io
import logging

import discord
from discord.ext import commands

from bot.discord_io.client import PatronBot
from bot.guild_admin.stats import DailyCounts
from bot.sync.worker import log_crash

log = logging.getLogger(__name__)

#: How often the count looks whether a server's day is due (real seconds; the day is the bot's clock's).
CHECK_EVERY_SECONDS = 3600.0
CHART_NAME = "patrons-90-days.png"


def daily_counts(bot: PatronBot) -> DailyCounts:
    services = bot.services
    return DailyCounts(services.store, services.admin.participation, services.reconcile.campaign_key, services.clock)


async def answer_stats(bot: PatronBot, interaction: discord.Interaction) -> None:
    """The latest counts in words and the 90-day chart as a PNG, ephemeral; the chart is drawn in a thread."""
    assert interaction.guild_id is not None  # the admin group is guild-only
    refusal = await bot.services.admin.participation_refusal(interaction.guild_id)
    if refusal is not None:
        await interaction.followup.send(refusal, ephemeral=True)
        return
    view = await daily_counts(bot).view(interaction.guild_id)
    name = interaction.guild.name if interaction.guild is not None else "this server"
    from bot.guild_admin import stats_chart  # matplotlib is imported by this command only

    png = await asyncio.to_thread(stats_chart.render_png, view.days, f"Patrons of the campaign, {name}")
    await interaction.followup.send(
        view.summary(name),
        file=discord.File(io.BytesIO(png), filename=CHART_NAME),
        ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )


class DailyCountCog(commands.Cog):
    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        self.counts = daily_counts(bot)
        #: Set after each look (tests wait for it instead of sleeping).
        self.looked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self._task = asyncio.create_task(self._run(), name="daily patron count")
        self._task.add_done_callback(log_crash)

    async def cog_unload(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        await self.bot.wait_until_ready()
        await self.bot.services.scheduler.first_run_done.wait()  # count what the start-up refresh stored
        while True:
            try:
                await self.counts.take_due()
            except Exception:  # a store hiccup must not end the count for good
                log.exception("the daily patron count failed; trying again in an hour")
            self.looked.set()
            await asyncio.sleep(CHECK_EVERY_SECONDS)
