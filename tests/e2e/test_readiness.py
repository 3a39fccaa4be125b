"""/healthz and /readyz over real HTTP, each failing check brought about through the world: a closed database, a
gateway outage at the fake Discord, a refresh older than twice its interval (the injected clock), a start-up
refresh that hasn't finished past the grace."""

from __future__ import annotations

import json

import aiohttp
import pytest

from fakes.world import FakeWorld
from tests.e2e.polling import wait_for


async def get(world: FakeWorld, path: str) -> tuple[int, dict]:
    assert world.browser is not None
    async with world.browser.get(f"{world.bot_url}{path}") as response:
        return response.status, json.loads(await response.text())


async def test_a_started_bot_is_alive_and_ready(world):
    assert await get(world, "/healthz") == (200, {"status": "ok"})
    status, body = await get(world, "/readyz")
    assert status == 200
    assert body == {"status": "ready", "failing": [], "checks": {"store": "ok", "gateway": "ok", "refresh": "ok"}}


async def test_a_closed_database_makes_it_not_ready_but_still_alive(world):
    await world.store.close()
    status, body = await get(world, "/readyz")
    assert status == 503
    assert body["status"] == "not ready" and body["failing"] == ["store"]
    assert body["checks"]["store"].startswith("the database did not answer")
    assert str(world.db_path) not in json.dumps(body), "no path (nor any error text) in the answer"
    assert (await get(world, "/healthz"))[0] == 200


async def test_a_gateway_outage_makes_it_not_ready_until_the_session_resumes(world):
    try:
        await world.discord.begin_gateway_outage()

        async def failing() -> list[str]:
            return (await get(world, "/readyz"))[1]["failing"]

        await wait_for(lambda: _is(failing, ["gateway"]), timeout=10)
        status, body = await get(world, "/readyz")
        assert status == 503 and body["checks"]["gateway"] == "not connected to Discord's gateway"
        assert (await get(world, "/healthz"))[0] == 200
    finally:
        world.discord.end_gateway_outage()
    await wait_for(lambda: _is(lambda: _status(world), 200), timeout=10)


async def test_a_refresh_older_than_twice_the_interval_makes_it_not_ready_until_the_next(world):
    interval = world.config.refresh_interval_minutes
    world.clock.advance(minutes=2 * interval - 1)
    assert (await get(world, "/readyz"))[0] == 200, "within twice the interval"
    world.clock.advance(minutes=2)
    status, body = await get(world, "/readyz")
    assert status == 503 and body["failing"] == ["refresh"]
    assert "more than twice the interval (30.0 min)" in body["checks"]["refresh"]
    await world.refresh()
    assert (await get(world, "/readyz"))[0] == 200


@pytest.fixture
async def slow_start(tmp_path):
    """A bot whose start-up refresh is stuck on Patreon's member listing."""
    world = FakeWorld(tmp_path / "bot.sqlite3")
    world.wait_for_startup_refresh = False
    await world.start(start_bot=False)
    world.patreon.hang_next(r"/members")
    await world.seed_store()
    await world.start_bot()
    try:
        yield world
    finally:
        await world.close()


async def test_before_the_first_refresh_it_is_ready_for_one_interval_then_not(slow_start):
    world = slow_start
    assert world.bot is not None and world.bot.services.refresh.last_report is None
    status, body = await get(world, "/readyz")
    assert status == 200, body
    world.clock.advance(minutes=world.config.refresh_interval_minutes + 1)
    status, body = await get(world, "/readyz")
    assert status == 503 and body["failing"] == ["refresh"]
    assert body["checks"]["refresh"].startswith("no refresh has finished in the 16.0 min since start-up")


async def _is(value, expected) -> bool:
    return (await value()) == expected


async def _status(world: FakeWorld) -> int:
    try:
        return (await get(world, "/readyz"))[0]
    except aiohttp.ClientError:
        return 0
