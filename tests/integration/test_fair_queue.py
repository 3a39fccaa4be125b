"""The fair role queue and the per-server pacer on a real SQLite file: servers in turn, no head-of-line blocking,
urgent calls first, a server's first call alone, and never more than the bucket in a window."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.store import Store
from bot.sync.reconcile import ReconcileService
from bot.sync.role_jobs import RoleJobs
from bot.sync.role_pacing import RoleCallPacer, TokenBucket
from fakes.memory_gateway import MemoryGateway

BUSY, QUIET, ROLE = 1, 2, 11


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "bot.sqlite3")
    yield opened
    await opened.close()


def now() -> datetime:
    return datetime.now(UTC)


async def members_losing_a_role(store: Store, gateway: MemoryGateway, guild_id: int, users: range) -> None:
    """Members holding a role the bot granted and the policy no longer wants: one DELETE each."""
    guild = gateway.guilds.get(guild_id) or gateway.add_guild(guild_id)
    for user in users:
        guild.members[user] = {ROLE}
        await store.record_grants(guild_id, user, [ROLE], "earlier")
    await store.save_settings(GuildSettings(guild_id=guild_id))


class TimedGateway(MemoryGateway):
    """Each role call takes a little while and is noted with the time it ended."""

    def __init__(self, call_seconds: float = 0.005) -> None:
        super().__init__()
        self.call_seconds = call_seconds
        self.ended: list[tuple[int, int, float]] = []
        self.running = self.peak = 0

    async def set_member_roles(self, guild_id, user_id, add, remove, reason) -> None:  # type: ignore[no-untyped-def]
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.call_seconds)
            await super().set_member_roles(guild_id, user_id, add, remove, reason)
        finally:
            self.running -= 1
        self.ended.append((guild_id, user_id, time.monotonic()))


async def drain(jobs: RoleJobs, timeout: float = 30.0) -> None:
    worker = asyncio.create_task(jobs.run())
    try:
        await asyncio.sleep(0.05)
        await jobs.wait_idle(timeout)
    finally:
        await jobs.stop(1)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


def paced(store: Store, gateway: MemoryGateway, pacer: RoleCallPacer | None, **options) -> RoleJobs:
    reconcile = ReconcileService(store, gateway, now, limiter=pacer, channel_log=None)
    return RoleJobs(store, reconcile, gateway, now, retry_base=0.01, pacer=pacer, **options)


async def test_a_quiet_server_is_not_stuck_behind_a_busy_ones_jobs(store):
    """100 jobs of one server were queued first, then 5 of another: with every in-flight slot the busy server's
    (head-of-line blocking), the quiet server would wait for most of the drain."""
    gateway = TimedGateway(call_seconds=0.01)
    await members_losing_a_role(store, gateway, BUSY, range(1, 101))
    await members_losing_a_role(store, gateway, QUIET, range(1, 6))
    await store.enqueue_role_jobs([(BUSY, user) for user in range(1, 101)], "refresh", now())
    await store.enqueue_role_jobs([(QUIET, user) for user in range(1, 6)], "refresh", now())
    jobs = paced(store, gateway, None, per_guild=2, max_in_flight=4)
    await drain(jobs)
    order = [guild for guild, _user, _at in gateway.ended]
    assert order.count(BUSY) == 100 and order.count(QUIET) == 5
    assert order.index(QUIET) < 4, "the quiet server's first job started in the first pass"
    assert max(n for n, guild in enumerate(order) if guild == QUIET) < 15, "servers were served in turn"


async def test_the_pacer_keeps_a_server_under_its_bucket_whatever_the_window_phase():
    """Any `limit + 1` calls: the last starts more than a window after the first ended (Discord counted it
    somewhere in between), so no fixed or sliding window of that length ever sees more than `limit`."""
    pacer = RoleCallPacer(per_guild=5, window_seconds=0.2, global_bucket=TokenBucket(rate=1000, capacity=1000))
    spans: list[tuple[float, float]] = []

    async def one_call() -> None:
        async with pacer.call(BUSY):
            started = time.monotonic()
            await asyncio.sleep(0.003)
            spans.append((started, time.monotonic()))

    await asyncio.gather(*(one_call() for _ in range(17)))
    spans.sort()
    for first, later in zip(spans, spans[5:], strict=False):
        assert later[0] - first[1] >= 0.2
    assert spans[1][0] >= spans[0][1], "the first call after a quiet spell went alone"
    assert pacer.waiting(BUSY) == 0


async def test_urgent_calls_go_first_and_servers_do_not_share_a_bucket():
    pacer = RoleCallPacer(per_guild=2, window_seconds=0.2, global_bucket=TokenBucket(rate=1000, capacity=1000))
    order: list[str] = []

    async def one_call(guild_id: int, name: str, priority: float) -> None:
        async with pacer.call(guild_id, priority):
            order.append(name)

    refresh = [asyncio.create_task(one_call(BUSY, f"refresh{n}", 1_000.0 + n)) for n in range(6)]
    await asyncio.sleep(0.01)  # the refresh calls wait for the bucket
    webhook = asyncio.create_task(one_call(BUSY, "webhook", 500.0))
    other = asyncio.create_task(one_call(QUIET, "other server", 2_000.0))
    await asyncio.sleep(0.01)
    assert "other server" in order, "another server's bucket is its own"
    await asyncio.gather(*refresh, webhook, other)
    busy = [name for name in order if name != "other server"]
    assert busy.index("webhook") <= 2, busy
    assert busy[:2] == ["refresh0", "refresh1"]


async def test_a_cancelled_waiter_gives_its_turn_away():
    pacer = RoleCallPacer(per_guild=1, window_seconds=0.05, global_bucket=TokenBucket(rate=1000, capacity=1000))
    done: list[int] = []

    async def one_call(n: int) -> None:
        async with pacer.call(BUSY, float(n)):
            done.append(n)

    tasks = [asyncio.create_task(one_call(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert done == [0, 2]


def test_estimates_quote_the_steady_rate():
    pacer = RoleCallPacer(per_guild=10, window_seconds=10.0)
    assert pacer.calls_per_second == pytest.approx(10 / 10.1)
    assert pacer.estimate_seconds(10) == 0.0
    assert pacer.estimate_seconds(1_010) == pytest.approx(1_000 * 10.1 / 10)
