"""The opt-in DMs' sender: runs the outbox of bot/sync/patron_dms.py with the Discord adapter's DM sender.

Loaded by cogs.admin's setup, beside the admin group whose `dm-preview` shows the same templates.
"""

from __future__ import annotations

import asyncio

from discord.ext import commands

from bot.discord_io.client import PatronBot
from bot.discord_io.direct_messages import DiscordDmSender
from bot.sync.worker import log_crash


class PatronDmsCog(commands.Cog):
    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        self._task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self._task = asyncio.create_task(self._run(), name="patron DMs")
        self._task.add_done_callback(log_crash)

    async def cog_unload(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        await self.bot.wait_until_ready()
        await self.bot.services.patron_dms.run(DiscordDmSender(self.bot))
