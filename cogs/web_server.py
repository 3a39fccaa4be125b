"""Serves the bot's web app (OAuth callback, health, webhooks) on the bot's own event loop."""

from __future__ import annotations

import logging

from discord.ext import commands

from bot.discord_io.client import PatronBot
from bot.web.app import create_web_app
from bot.web.connect_routes import add_connect_routes
from bot.web.health_routes import add_health_routes
from bot.web.limits import WebLimits
from bot.web.link_routes import add_link_routes
from bot.web.linked_role_routes import add_linked_role_routes
from bot.web.server import LimitedWebServer

log = logging.getLogger(__name__)


class WebServer(commands.Cog):
    def __init__(self, bot: PatronBot) -> None:
        self.bot = bot
        self.server: LimitedWebServer | None = None

    async def cog_load(self) -> None:
        config = self.bot.config
        app = create_web_app(self.bot.services.linking, self.bot.services.webhooks)
        add_link_routes(app, self.bot.services.link_flow)
        add_connect_routes(app, self.bot.services.connect_flow)
        add_linked_role_routes(
            app, self.bot.services.linked_role_flow, cookie_secure=self.bot.services.link_flow.cookie_secure
        )
        add_health_routes(app, self.bot.services.observability)
        limits = WebLimits(
            max_connections=config.web_max_connections or None, max_per_address=config.web_max_connections_per_ip
        )
        self.server = await LimitedWebServer(app, config.web_host, config.port, limits).start()
        self.bot.web_port = self.server.port

    async def cog_unload(self) -> None:
        await self.bot.services.connect_flow.close()
        if self.server is not None:
            await self.server.close()


async def setup(bot: PatronBot) -> None:
    await bot.add_cog(WebServer(bot))
