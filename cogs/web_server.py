"""Serves the bot's web app (OAuth callback, health, webhooks) on the bot's own event loop."""

from __future__ import annotations

import logging

from aiohttp import web
from discord.ext import commands

from bot.discord_io.client import PatronBot
from bot.web.app import create_web_app
from bot.web.link_routes import add_link_routes

log = logging.getLogger(__name__)


class WebServer(commands.Cog):
    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        self.runner: web.AppRunner | None = None

    async def cog_load(self) -> None:
        config = self.bot.config
        app = create_web_app(self.bot.services.linking, self.bot.services.webhooks)
        add_link_routes(app, self.bot.services.link_flow)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, config.web_host, config.port)
        await site.start()
        port = self.runner.addresses[0][1] if self.runner.addresses else config.port
        self.bot.web_port = port
        log.info("web server listening on http://%s:%s", config.web_host, port)

    async def cog_unload(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def setup(bot: PatronBot) -> None:
    await bot.add_cog(WebServer(bot))
