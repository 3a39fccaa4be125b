"""Starts and stops the background work: the role-job worker, the webhook applier and the periodic refresh.

They start only once discord.py is ready: before that the bot sees no guilds, and a job run then would look
like "member not in the server" and be dropped.
"""

from __future__ import annotations

import asyncio
import logging

from discord.ext import commands

from bot.discord_io.client import PatronBot
from bot.discord_io.role_connection_metadata import register_metadata_schema
from bot.sync.worker import log_crash

log = logging.getLogger(__name__)


class SyncTasks(commands.Cog):
    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        self._starter: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self._starter = asyncio.create_task(self._start_when_ready())

    async def _start_when_ready(self) -> None:
        await self.bot.wait_until_ready()
        services = self.bot.services
        services.jobs.start()
        services.webhook_applier.start()
        services.role_connections.start()
        self._scheduler = asyncio.create_task(services.scheduler.run(), name="refresh scheduler")
        self._scheduler.add_done_callback(log_crash)
        log.info("background sync started (refresh every %g min)", services.scheduler.interval_minutes)
        await register_metadata_schema(self.bot)  # last: a slow Discord here holds up nothing else

    async def cog_unload(self) -> None:
        """Stop taking work, let running role jobs finish briefly; whatever is left stays queued in SQLite."""
        services = self.bot.services
        if self._starter is not None and not self._starter.done():
            self._starter.cancel()
        services.scheduler.stop()
        # Side by side, so shutdown still takes at most about five seconds.
        await asyncio.gather(
            services.webhook_applier.stop(timeout=5.0),
            services.jobs.stop(timeout=5.0),
            services.role_connections.stop(timeout=5.0),
        )
        if self._scheduler is not None:
            self._scheduler.cancel()  # a refresh in progress stops here; it changed nothing it had not finished
            await asyncio.wait([self._scheduler])  # a crash was logged by its done-callback
        await services.channel_log.close()


async def setup(bot: PatronBot) -> None:
    await bot.add_cog(SyncTasks(bot))
