"""The sync engine on each backend: the real services, web app and fake Patreon over one store, SQLite or
PostgreSQL. A refresh gives a linked patron their tier's role, a signed webhook moves it to the new tier, and a
replayed delivery changes nothing (fakes/sync_harness.py's set-up, with the store handed in)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

from bot.config import load_config
from bot.domain.guild_settings import GuildSettings
from bot.services import build_services
from bot.web.app import create_web_app
from bot.web.webhook_receiver import sign
from fakes.memory_gateway import MemoryGateway
from fakes.patreon import FakePatreon
from fakes.world import Clock

SECRET = "contract-webhook-secret"
GUILD, ANN = 610_000_000_000_000_001, 650_000_000_000_000_001
GOLD, BRONZE = 630_000_000_000_000_001, 630_000_000_000_000_002


async def test_refresh_and_webhooks_move_a_patrons_roles_on_this_backend(store):
    patreon = FakePatreon(campaign_id="7654321")
    await patreon.start()
    gateway = MemoryGateway()
    guild = gateway.add_guild(GUILD)
    session = aiohttp.ClientSession()
    runner: web.AppRunner | None = None
    worker: asyncio.Task[None] | None = None
    services = None
    try:
        patreon.add_tier("2001", "Gold", 1000)
        patreon.add_tier("2002", "Bronze", 500)
        patreon.add_user("p-ann", "Ann")
        patreon.set_membership("p-ann", "active_patron", tier_ids=["2002"])
        await store.save_settings(GuildSettings(guild_id=GUILD, enabled=True))
        await store.map_tier_role(GUILD, "2001", GOLD)
        await store.map_tier_role(GUILD, "2002", BRONZE)
        guild.members[ANN] = set()
        await store.save_link(ANN, "p-ann", GUILD, "oauth")
        env = {
            "DISCORD_TOKEN": "unused",
            "PATREON_CLIENT_ID": patreon.client_id,
            "PATREON_CLIENT_SECRET": patreon.client_secret,
            "PATREON_REDIRECT_URI": "http://127.0.0.1:1/patreon/callback",
            "PATREON_CREATOR_ACCESS_TOKEN": patreon.creator_access_token,
            "PATREON_CREATOR_REFRESH_TOKEN": patreon.creator_refresh_token,
            "PATREON_WEBHOOK_SECRET": SECRET,
            "PATREON_BASE_URL": patreon.base_url,
        }
        services = build_services(load_config(env, env_file=None), store, session, gateway, Clock())
        await services.campaigns.load()
        services.jobs.retry_base = 0.01
        services.channel_log.linger = 0.0
        runner = web.AppRunner(create_web_app(services.linking, services.webhooks), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/patreon/webhook"
        worker = asyncio.create_task(services.jobs.run())

        await services.refresh.run("first")
        await services.jobs.wait_idle(5)
        assert guild.members[ANN] == {BRONZE}

        patreon.set_membership("p-ann", "active_patron", tier_ids=["2001"])
        body = patreon.render_member_webhook_body("members:pledge:update", "p-ann")
        headers = {"X-Patreon-Event": "members:pledge:update", "X-Patreon-Signature": sign(body, SECRET)}
        for _ in range(2):  # the second is a replay
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status == 202  # recorded, applied afterwards
        while await services.webhook_applier.apply_due():
            pass
        await services.jobs.wait_idle(5)
        assert guild.members[ANN] == {GOLD}
        assert await store.granted_roles(GUILD, ANN) == {GOLD}
        assert await store.pending_role_jobs() == []
    finally:
        if services is not None:
            await services.jobs.stop(timeout=1)
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if services is not None:
            await services.channel_log.close()
        if runner is not None:
            await runner.cleanup()
        await session.close()
        await patreon.close()
