"""The readiness rules at their edges (the e2e tests show each check failing through real HTTP), and the
METRICS_TOKEN setting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import ConfigError, load_config
from bot.observability.readiness import Readiness

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)
SETTINGS = {
    "DISCORD_TOKEN": "discord-token",
    "PATREON_CLIENT_ID": "client-id",
    "PATREON_CLIENT_SECRET": "client-secret",
    "PATREON_REDIRECT_URI": "https://bot.example.com/patreon/callback",
    "PATREON_CREATOR_ACCESS_TOKEN": "creator-access",
    "PATREON_CREATOR_REFRESH_TOKEN": "creator-refresh",
    "PATREON_WEBHOOK_SECRET": "webhook-secret",
}


class Moment:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


async def answered() -> int:
    return 7


def readiness(clock: Moment, finished: datetime | None, *, connected: bool = True) -> Readiness:
    return Readiness(
        store_ping=answered, gateway_connected=lambda: connected, last_refresh_finished=lambda: finished,
        refresh_interval=INTERVAL, clock=clock,
    )


@pytest.mark.parametrize(("since_start", "ready"), [(timedelta(0), True), (INTERVAL, True), (INTERVAL * 1.01, False)])
async def test_without_a_finished_refresh_the_grace_is_one_interval(since_start, ready):
    clock = Moment()
    checks = readiness(clock, None)
    clock.now = START + since_start
    assert (await checks.check()).ready is ready


@pytest.mark.parametrize(("age", "ready"), [(INTERVAL, True), (2 * INTERVAL, True), (2 * INTERVAL * 1.01, False)])
async def test_a_finished_refresh_counts_for_twice_the_interval(age, ready):
    clock = Moment()
    clock.now = START + timedelta(hours=5)
    report = await readiness(clock, clock.now - age).check()
    assert report.ready is ready
    assert report.body()["failing"] == ([] if ready else ["refresh"])


async def test_a_database_that_hangs_fails_after_the_timeout():
    async def hangs() -> None:
        await asyncio.Event().wait()

    checks = Readiness(
        store_ping=hangs, gateway_connected=None, last_refresh_finished=lambda: START,
        refresh_interval=INTERVAL, clock=lambda: START, store_timeout=0.05,
    )
    report = await checks.check()
    assert report.body() == {
        "status": "not ready",
        "failing": ["store"],
        "checks": {"store": "the database did not answer within 0.05 s", "gateway": "ok", "refresh": "ok"},
    }


async def test_every_failing_check_is_named():
    clock = Moment()

    async def broken() -> None:
        raise RuntimeError("/secret/path/bot.sqlite3 is gone")

    checks = Readiness(
        store_ping=broken, gateway_connected=lambda: False, last_refresh_finished=lambda: None,
        refresh_interval=INTERVAL, clock=clock,
    )
    clock.now = START + 2 * INTERVAL
    body = (await checks.check()).body()
    assert body["failing"] == ["gateway", "refresh", "store"]
    assert "/secret/path" not in str(body)


@pytest.mark.parametrize("token", ["short", "has a space in it, sixteen+", "inner\ttab-in-a-long-token"])
def test_a_weak_metrics_token_stops_start_up(token):
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        load_config({**SETTINGS, "METRICS_TOKEN": token}, env_file=None)


def test_the_metrics_token_is_kept_out_of_repr():
    config = load_config({**SETTINGS, "METRICS_TOKEN": "a-good-long-metrics-token"}, env_file=None)
    assert config.metrics_token == "a-good-long-metrics-token"
    assert "a-good-long-metrics-token" not in repr(config)
