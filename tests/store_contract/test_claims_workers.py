"""Contract: the role-job worker (bot/sync/role_jobs.py) over claims, on both engines. Two workers draining one
queue side by side (two processes on PostgreSQL: two stores; on SQLite two workers on one store) reconcile each
member once; a worker of some shards runs only its shards' servers' jobs and leaves the others' for their process;
a job whose claim is held elsewhere waits for that lease, not in a busy loop."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.shards import ShardSpec
from bot.store.leases import Claimer
from bot.sync.member_plan import ReconcileOutcome
from bot.sync.reconcile import ReconcileService
from bot.sync.role_jobs import RoleJobs
from fakes.memory_gateway import MemoryGateway
from tests.e2e.polling import wait_for

ROLE = 11
#: Two servers of shard 0 and two of shard 1, of two: Discord's `(guild_id >> 22) % 2`.
SHARD_0 = [(700_000 + n) << 23 for n in range(2)]
SHARD_1 = [((700_000 + n) << 23) | (1 << 22) for n in range(2)]
USERS = range(1, 26)


def now() -> datetime:
    return datetime.now(UTC)


async def _seed(store, gateway: MemoryGateway, guilds: list[int]) -> list[tuple[int, int]]:
    """Members holding a role the bot gave and nothing that still gives it: each job takes it back."""
    keys = []
    for guild_id in guilds:
        guild = gateway.guilds.get(guild_id) or gateway.add_guild(guild_id)
        await store.save_settings(GuildSettings(guild_id=guild_id))
        for user in USERS:
            guild.members[user] = {ROLE}
            await store.record_grants(guild_id, user, [ROLE], "earlier")
            keys.append((guild_id, user))
    return keys


def _worker(store, gateway: MemoryGateway, reconciled: Counter, claimer: Claimer) -> RoleJobs:
    async def heard(outcome: ReconcileOutcome, cause: str) -> None:
        reconciled[(outcome.guild_id, outcome.user_id)] += 1

    reconcile = ReconcileService(store, gateway, now, limiter=None, channel_log=None, on_outcome=heard)
    return RoleJobs(store, reconcile, gateway, now, retry_base=0.01, per_guild=4, claimer=claimer)


@pytest.fixture
async def two(backend, open_store):
    first = await open_store()
    return first, (await open_store() if backend == "postgres" else first)


async def test_two_workers_on_one_queue_reconcile_each_member_once(two):
    first, second = two
    gateway = MemoryGateway()  # Discord, as both processes see it
    keys = await _seed(first, gateway, SHARD_0 + SHARD_1)
    reconciled: Counter[tuple[int, int]] = Counter()
    workers = [_worker(store, gateway, reconciled, Claimer()) for store in (first, second)]
    await first.enqueue_role_jobs(keys, "refresh", now())
    tasks = [worker.start() for worker in workers]
    try:
        await wait_for(lambda: sum(reconciled.values()) >= len(keys), timeout=30)
        for worker in workers:
            await worker.wait_idle(10)
    finally:
        for worker in workers:
            await worker.stop(2)
    assert all(task.done() for task in tasks)
    assert set(reconciled) == set(keys) and max(reconciled.values()) == 1, "a member was reconciled twice"
    assert sum(worker.applied for worker in workers) == len(keys)
    assert await first.pending_role_jobs() == []
    assert all(gateway.guilds[g].members[u] == set() for g, u in keys)


async def test_a_worker_of_shard_0_leaves_shard_1s_jobs_for_their_process(two):
    first, second = two
    gateway = MemoryGateway()
    keys = await _seed(first, gateway, SHARD_0 + SHARD_1)
    reconciled: Counter[tuple[int, int]] = Counter()
    shard_0 = _worker(first, gateway, reconciled, Claimer(shards=ShardSpec(2, (0,))))
    await first.enqueue_role_jobs(keys, "refresh", now())
    shard_0.start()
    try:
        await wait_for(lambda: sum(reconciled.values()) >= len(SHARD_0) * len(USERS), timeout=30)
        await shard_0.wait_idle(10)
    finally:
        await shard_0.stop(2)
    assert {guild for guild, _user in reconciled} == set(SHARD_0), "only its own shard's servers"
    left = await first.pending_role_jobs()
    assert {job.guild_id for job in left} == set(SHARD_1) and all(job.claimed_by is None for job in left)
    assert all(gateway.guilds[g].members[u] == {ROLE} for g in SHARD_1 for u in USERS), "nothing changed there"
    shard_1 = _worker(second, gateway, reconciled, Claimer(shards=ShardSpec(2, (1,))))
    shard_1.start()
    try:
        await wait_for(lambda: sum(reconciled.values()) >= len(keys), timeout=30)
        await shard_1.wait_idle(10)
    finally:
        await shard_1.stop(2)
    assert max(reconciled.values()) == 1 and await second.pending_role_jobs() == []


async def test_a_job_another_process_holds_waits_for_its_lease(two):
    first, second = two
    gateway = MemoryGateway()
    [key] = (await _seed(first, gateway, SHARD_0[:1]))[:1]
    await first.enqueue_role_jobs([key], "webhook", now())
    assert await first.claim_role_jobs([key], owner="dead-process", now=now(), lease=timedelta(seconds=1))
    reconciled: Counter[tuple[int, int]] = Counter()
    worker = _worker(second, gateway, reconciled, Claimer())
    assert not await worker.work(), "held elsewhere: not started"
    due = await worker.next_due()
    assert due is not None and due > now() + timedelta(milliseconds=500), "it sleeps until the lease ends"
    worker.start()
    try:
        await wait_for(lambda: reconciled[key] == 1, timeout=10)
    finally:
        await worker.stop(2)
    assert gateway.guilds[key[0]].members[key[1]] == set()
