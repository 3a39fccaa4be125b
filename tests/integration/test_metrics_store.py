"""The queue and link figures /metrics reads from a real store at scrape time, served over real HTTP: depth and
oldest age per server, links by source, and a server whose queue emptied no longer listed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.observability.metrics import BotMetrics
from bot.observability.readiness import Readiness
from bot.store import Store
from bot.web.health_routes import Observability, add_health_routes

TOKEN = "a-token-of-sixteen-or-more"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


async def serve(store: Store) -> tuple[web.AppRunner, str]:
    metrics = BotMetrics(
        store, lambda: NOW, patreon_responses=dict, discord_role_calls=dict, last_refresh=lambda: None
    )
    readiness = Readiness(
        store_ping=store.schema_version, gateway_connected=None, last_refresh_finished=lambda: None,
        refresh_interval=timedelta(minutes=15), clock=lambda: NOW,
    )
    app = web.Application()
    add_health_routes(app, Observability(readiness, metrics, TOKEN))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_queue_depth_and_oldest_age_per_server_and_links_by_source(tmp_path):
    store = await Store.open(tmp_path / "bot.sqlite3")
    runner, url = await serve(store)
    try:
        await store.enqueue_role_jobs([(1, 11), (1, 12), (1, 13)], "refresh", NOW - timedelta(seconds=90))
        await store.enqueue_role_jobs([(1, 14)], "webhook", NOW - timedelta(seconds=5))
        await store.enqueue_role_jobs([(2, 21)], "link", NOW - timedelta(seconds=30))
        await store.save_link(31, "p-31", None, "oauth")
        await store.save_link(32, "p-32", 1, "admin")
        found = await scrape(url)
        assert found[("patreon_role_sync_role_queue_depth", (("guild", "1"),))] == 4
        assert found[("patreon_role_sync_role_queue_depth", (("guild", "2"),))] == 1
        assert found[("patreon_role_sync_role_queue_oldest_seconds", (("guild", "1"),))] == 90
        assert found[("patreon_role_sync_role_queue_oldest_seconds", (("guild", "2"),))] == 30
        assert found[("patreon_role_sync_links", (("source", "oauth"),))] == 1
        assert found[("patreon_role_sync_links", (("source", "admin"),))] == 1

        for job in await store.pending_role_jobs():
            if job.guild_id == 2:
                await store.finish_role_job(job)
        found = await scrape(url)
        assert ("patreon_role_sync_role_queue_depth", (("guild", "2"),)) not in found
        assert found[("patreon_role_sync_role_queue_depth", (("guild", "1"),))] == 4
    finally:
        await runner.cleanup()
        await store.close()
