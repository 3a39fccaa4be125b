"""Contract: one process at a time refreshes a campaign (bot/sync/refresh_schedule.py `OneProcessAtATime`), on both
engines. Two bot processes' services share one database (two stores on PostgreSQL, one on SQLite) and one fake
Patreon: while one refreshes the campaign the other skips it, asks Patreon nothing, reports no failure and says so
once; two refreshes started together list the campaign once; the skipper refreshes it next time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.config import load_config
from bot.domain.guild_settings import GuildSettings
from bot.services import Services, build_services
from bot.store import LAST_REFRESH
from bot.sync.refresh_schedule import SKIPPED
from fakes.memory_gateway import MemoryGateway
from fakes.patreon import FakePatreon
from fakes.world import Clock

CAMPAIGN = "7654321"
LISTING = f"/api/oauth2/v2/campaigns/{CAMPAIGN}/members"
GUILD, ANN, BRONZE = 610_000_000_000_000_001, 650_000_000_000_000_001, 630_000_000_000_000_002


@pytest.fixture
async def world(backend, open_store) -> AsyncIterator[tuple[FakePatreon, MemoryGateway, list[Services]]]:
    """Two processes' services over one database, one fake Patreon and one Discord (a MemoryGateway)."""
    first = await open_store()
    second = await open_store() if backend == "postgres" else first
    patreon = FakePatreon(campaign_id=CAMPAIGN)
    await patreon.start()
    patreon.add_tier("2002", "Bronze", 500)
    patreon.add_user("p-ann", "Ann")
    patreon.set_membership("p-ann", "active_patron", tier_ids=["2002"])
    await first.save_settings(GuildSettings(guild_id=GUILD, enabled=True))
    await first.map_tier_role(GUILD, "2002", BRONZE)
    await first.save_link(ANN, "p-ann", GUILD, "oauth")
    gateway = MemoryGateway()
    gateway.add_guild(GUILD).members[ANN] = set()
    env = {
        "DISCORD_TOKEN": "unused",
        "PATREON_CLIENT_ID": patreon.client_id,
        "PATREON_CLIENT_SECRET": patreon.client_secret,
        "PATREON_REDIRECT_URI": "http://127.0.0.1:1/patreon/callback",
        "PATREON_CREATOR_ACCESS_TOKEN": patreon.creator_access_token,
        "PATREON_CREATOR_REFRESH_TOKEN": patreon.creator_refresh_token,
        "PATREON_WEBHOOK_SECRET": "contract-webhook-secret",
        "PATREON_BASE_URL": patreon.base_url,
    }
    session = aiohttp.ClientSession()
    processes = [build_services(load_config(env, env_file=None), s, session, gateway, Clock()) for s in (first, second)]
    try:
        for services in processes:
            await services.campaigns.load()
            services.channel_log.linger = 0.0
        yield patreon, gateway, processes
    finally:
        for services in processes:
            await services.jobs.stop(timeout=1)
            with contextlib.suppress(Exception):
                await services.channel_log.close()
        await session.close()
        await patreon.close()


async def test_a_process_skips_a_campaign_another_refreshes_and_says_so_once(world, caplog):
    patreon, _gateway, (one, other) = world
    name = f"refresh {one.campaign.token_subject}"
    caplog.set_level(logging.INFO, logger="bot.sync.refresh_schedule")
    async with other.store.exclusive(name) as held:  # the other process is refreshing the campaign now
        assert held
        first = await one.refresh.run("scheduled")
        second = await one.refresh.run("scheduled")
    for report in (first, second):
        assert report.ok and report.detail == SKIPPED, "skipped, not failed"
    assert patreon.count(LISTING) == 0, "Patreon was asked nothing"
    assert await one.store.get_fact(one.campaign.fact_key(LAST_REFRESH)) is None, "the holder writes the report"
    assert one.refresh.last_report is second, "the refresh loop is alive (readiness)"
    skipped = [r for r in caplog.records if "skipped, another process" in r.getMessage()]
    assert len(skipped) == 1 and name in skipped[0].getMessage(), "one line, however many rounds"
    # Free again: this process refreshes it now.
    report = await one.refresh.run("scheduled")
    assert report.ok and report.detail != SKIPPED and patreon.count(LISTING) >= 1


async def test_two_processes_refreshing_together_list_the_campaign_once(world):
    patreon, gateway, (one, other) = world
    reports = await asyncio.gather(one.refresh.run("scheduled"), other.refresh.run("scheduled"))
    assert all(report.ok for report in reports)
    assert sorted(report.detail == SKIPPED for report in reports) == [False, True], "one ran, one skipped"
    listed = patreon.count(LISTING)
    assert listed >= 1
    ran = next(services for services, report in zip((one, other), reports, strict=True) if report.detail != SKIPPED)
    worker = asyncio.create_task(ran.jobs.run())
    try:
        await ran.jobs.wait_idle(10)
    finally:
        await ran.jobs.stop(1)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert gateway.guilds[GUILD].members[ANN] == {BRONZE}
    assert patreon.count(LISTING) == listed


async def test_two_processes_refreshing_the_creator_token_together_never_revoke_the_campaign(world):
    """Patreon's refresh tokens are single use: both processes seeing a 401 refresh the pair one after the other,
    the second reading the first's new pair, so neither spends a dead refresh token (read as the creator's
    revocation)."""
    patreon, _gateway, (one, other) = world
    token = await one.campaign.creator_access_token()
    fresh = await asyncio.gather(
        one.campaign.creator_access_token(stale=token), other.campaign.creator_access_token(stale=token)
    )
    assert fresh[0] == fresh[1] != token, "one refresh, whose pair both use"
    assert patreon.count("/api/oauth2/token") == 1
    for services in (one, other):
        assert await services.campaign.creator_access_token() == fresh[0], "not refused, not revoked"
