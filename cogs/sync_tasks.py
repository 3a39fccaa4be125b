"""Starts and stops the background work: the role-job worker, the webhook applier and the periodic refresh.

They start only once discord.py is ready: before that the bot sees no guilds, and a job run then would look
like "member not in the server" and be dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        self._linked_roles: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self._starter = asyncio.create_task(self._start_when_ready())

    async def _start_when_ready(self) -> None:
        await self.bot.wait_until_ready()
        services = self.bot.services
        services.jobs.start()
        services.webhook_applier.start()
        self._scheduler = asyncio.create_task(services.scheduler.run(), name="refresh scheduler")
        self._scheduler.add_done_callback(log_crash)
        self._linked_roles = asyncio.create_task(self._start_linked_roles(), name="linked roles start")
        self._linked_roles.add_done_callback(log_crash)
        log.info("background sync started (refresh every %g min)", services.scheduler.interval_minutes)

    async def _start_linked_roles(self) -> None:
        """Register the Linked Roles records, then keep the metadata true. After the start-up refresh's burst of
        role calls (at most 2 minutes): that burst may fill Discord's global 50 a second on its own."""
        services = self.bot.services
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(services.scheduler.first_run_done.wait(), timeout=120)
            await services.jobs.wait_idle(timeout=120)
        await register_metadata_schema(self.bot, services.pacer.global_bucket.acquire)
        services.role_connections.start()

    async def cog_unload(self) -> None:
        """Stop taking work, let running role jobs finish briefly; whatever is left stays queued in SQLite."""
        services = self.bot.services
        if self._starter is not None and not self._starter.done():
            self._starter.cancel()
        if self._linked_roles is not None and not self._linked_roles.done():
            self._linked_roles.cancel()
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
