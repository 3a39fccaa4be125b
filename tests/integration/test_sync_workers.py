"""The two real background workers on the shared base: started, stopped, and never failing without a log line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import TokenPair
from bot.patreon.client import PatreonClient
from bot.store import Store
from bot.sync.campaign import CampaignService
from bot.sync.reconcile import ReconcileService
from bot.sync.role_jobs import RoleJobs
from bot.sync.webhook_apply import WebhookApplier
from fakes.memory_gateway import MemoryGateway

GUILD = 610000000000000001
ROLE = 630000000000000001


def now() -> datetime:
    return datetime.now(UTC)


class ErrorSignal(logging.Handler):
    """Set when `bot.sync.worker` logs at ERROR: the test waits for that line, never for a fixed time."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.set()


@pytest.fixture
async def error_signal() -> AsyncIterator[ErrorSignal]:
    signal = ErrorSignal()
    logger = logging.getLogger("bot.sync.worker")
    logger.addHandler(signal)
    try:
        yield signal
    finally:
        logger.removeHandler(signal)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "bot.sqlite3")
    try:
        yield opened
    finally:
        await opened.close()


def role_jobs(store: Store, gateway: MemoryGateway) -> RoleJobs:
    reconcile = ReconcileService(store, gateway, now, limiter=None, channel_log=None)
    return RoleJobs(store, reconcile, gateway, now, retry_base=0.01)


async def test_role_jobs_started_apply_a_job_then_stop_without_cancelling(store: Store) -> None:
    gateway = MemoryGateway()
    gateway.add_guild(GUILD).members[1] = {ROLE}
    await store.record_grants(GUILD, 1, [ROLE], "earlier")  # not linked: the role must go
    await store.save_settings(GuildSettings(guild_id=GUILD))
    jobs = role_jobs(store, gateway)
    task = jobs.start()
    await jobs.enqueue(GUILD, 1, "test")
    await jobs.wait_idle(5)
    await jobs.stop(timeout=5)
    assert gateway.guilds[GUILD].members[1] == set() and jobs.applied == 1
    assert task.done() and not task.cancelled() and task.exception() is None


async def test_role_jobs_crashing_before_the_loop_is_logged_at_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error_signal: ErrorSignal
) -> None:
    closed = await Store.open(tmp_path / "closed.sqlite3")
    await closed.close()  # resuming the queue at start-up reads the store, outside the loop's retrying try
    jobs = role_jobs(closed, MemoryGateway())
    task = jobs.start()
    await asyncio.wait_for(error_signal.seen.wait(), timeout=5)
    assert task.done() and task.exception() is not None
    (record,) = [r for r in caplog.records if r.name == "bot.sync.worker" and r.levelno == logging.ERROR]
    assert record.getMessage().startswith("role queue crashed") and record.exc_info is not None
    await jobs.stop(timeout=1)  # shutdown after a crash raises nothing again: the crash is logged


async def test_the_webhook_applier_logs_a_failing_pass_and_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error_signal: ErrorSignal
) -> None:
    closed = await Store.open(tmp_path / "closed.sqlite3")
    await closed.close()  # every pass fails to read the due events
    gateway = MemoryGateway()
    async with aiohttp.ClientSession() as session:
        client = PatreonClient(
            session, base_url="http://127.0.0.1:1", client_id="c", client_secret="s",
            redirect_uri="http://127.0.0.1:1/patreon/callback", user_agent="test",
        )  # fmt: skip
        campaign = CampaignService(client, closed, TokenPair("a", "r", now()), now, "1", on_token_rejected=None)
        reconcile = ReconcileService(closed, gateway, now, limiter=None, channel_log=None)
        jobs = RoleJobs(closed, reconcile, gateway, now)
        applier = WebhookApplier(closed, client, campaign, reconcile, jobs, gateway, now)
        applier.error_pause = 0.01
        task = applier.start()
        await asyncio.wait_for(error_signal.seen.wait(), timeout=5)
        assert not task.done(), "a failing pass is retried, not the end of the worker"
        await applier.stop(timeout=5)
    assert task.done() and not task.cancelled()
    failures = [r for r in caplog.records if r.name == "bot.sync.worker" and r.levelno == logging.ERROR]
    assert failures and all(r.getMessage().startswith("webhook applier: a pass failed") for r in failures)
