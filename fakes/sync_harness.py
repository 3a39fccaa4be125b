"""The sync machinery without Discord: real store, services and web app, fake Patreon, in-memory gateway.

Integration tests of the webhook endpoint, the queue and the refresh use it; events are applied when the test
says (`apply()`), so replays and reorderings can be arranged first. The role-job worker runs in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.config import load_config
from bot.domain.guild_settings import GuildSettings
from bot.services import Services, build_services
from bot.store import Store
from bot.web.app import create_web_app
from bot.web.webhook_receiver import sign
from fakes.memory_gateway import MemoryGateway
from fakes.patreon import FakePatreon
from fakes.world import Clock

SECRET = "harness-webhook-secret"
GUILD = 610000000000000001
LOG_CHANNEL = 640000000000000001


class SyncHarness:
    def __init__(self, db_path: Path, campaign_id: str = "7654321") -> None:
        self.db_path = db_path
        self.patreon = FakePatreon(campaign_id=campaign_id)
        self.gateway = MemoryGateway()
        self.guild = self.gateway.add_guild(GUILD)
        self.clock = Clock()
        self.store: Store | None = None
        self.services: Services | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._worker: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> SyncHarness:
        await self.patreon.start()
        self.store = await Store.open(self.db_path)
        # The harness's one guild acts for the campaign, as an admin's `settings enabled:True` would make it.
        await self.store.save_settings(GuildSettings(guild_id=GUILD, enabled=True))
        self._session = aiohttp.ClientSession()
        env = {
            "DISCORD_TOKEN": "unused",
            "PATREON_CLIENT_ID": self.patreon.client_id,
            "PATREON_CLIENT_SECRET": self.patreon.client_secret,
            "PATREON_REDIRECT_URI": "http://127.0.0.1:1/patreon/callback",
            "PATREON_CREATOR_ACCESS_TOKEN": self.patreon.creator_access_token,
            "PATREON_CREATOR_REFRESH_TOKEN": self.patreon.creator_refresh_token,
            "PATREON_WEBHOOK_SECRET": SECRET,
            "PATREON_BASE_URL": self.patreon.base_url,
            "DATABASE_PATH": str(self.db_path),
        }
        services = self.services = build_services(
            load_config(env, env_file=None), self.store, self._session, self.gateway, self.clock
        )
        await services.campaigns.load()
        services.patreon.retry_base_delay = 0.01
        services.jobs.retry_base = 0.01
        services.webhook_applier.retry_base = 0.01
        services.channel_log.linger = 0.0
        self._runner = web.AppRunner(create_web_app(services.linking, services.webhooks), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/patreon/webhook"
        self._worker = asyncio.create_task(services.jobs.run())
        return self

    async def close(self) -> None:
        if self.services is not None:
            await self.services.jobs.stop(timeout=1)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self.services is not None:
            await self.services.channel_log.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self.store is not None:
            await self.store.close()
        await self.patreon.close()

    async def post(
        self,
        body: bytes,
        *,
        trigger: str | None = "members:update",
        signature: str | None = None,
        sign_it: bool = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """POST a delivery as Patreon would; signed with the right secret unless told otherwise."""
        assert self._session is not None
        sent = {"Content-Type": "application/json", **(headers or {})}
        if trigger is not None:
            sent["X-Patreon-Event"] = trigger
        if signature is not None:
            sent["X-Patreon-Signature"] = signature
        elif sign_it:
            sent["X-Patreon-Signature"] = sign(body, SECRET)
        async with self._session.post(self.url, data=body, headers=sent) as response:
            return response.status, await response.text()

    async def deliver(self, trigger: str, patreon_user_id: str) -> tuple[int, str]:
        """What fake Patreon would send right now for this user's membership."""
        return await self.post(self.patreon.render_member_webhook_body(trigger, patreon_user_id), trigger=trigger)

    async def apply(self) -> int:
        """Apply every due webhook event, then wait for the role jobs they queued."""
        assert self.services is not None
        handled = 0
        while batch := await self.services.webhook_applier.apply_due():
            handled += batch
        await self.services.jobs.wait_idle(5)
        return handled

    def link_member(self, discord_id: int, roles: set[int] | None = None) -> None:
        self.guild.members[discord_id] = set(roles or ())
