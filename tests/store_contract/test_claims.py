"""Contract: claims, so processes sharing one database never do the same work twice (bot/store/claims.py).

On PostgreSQL the two claimers are two stores, i.e. two connections, as two processes would be; on SQLite, whose
file one process owns, they are two claimers on one store. Concurrent claims never hand a job or an event to both,
a lease that ran out makes the work claimable again, a stale owner can't overwrite the new owner's outcome, only a
process's own shards' jobs are read, and the exclusive lock admits one holder, freed when its holder goes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain.shards import ShardSpec
from bot.store.opening import open_postgres
from bot.store.queues import DONE, PENDING
from bot.store.token_cipher import new_key
from tests.e2e.polling import wait_for
from tests.store_contract.conftest import fresh_postgres

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
LEASE = timedelta(minutes=1)
A, B = "host-a:1:aaaa", "host-b:2:bbbb"
#: Servers whose shard (of two) is 0 and 1: Discord's `(guild_id >> 22) % 2`.
EVEN = [(900_000 + n) << 23 for n in range(5)]
ODD = [((900_000 + n) << 23) | (1 << 22) for n in range(5)]


@pytest.fixture
async def two(backend, open_store):
    """Two claimers' stores: two connections on PostgreSQL, one store twice on SQLite."""
    first = await open_store()
    return first, (await open_store() if backend == "postgres" else first)


async def test_two_claimers_claiming_the_same_jobs_at_once_never_both_get_one(two):
    first, second = two
    keys = [(guild, user) for guild in EVEN + ODD for user in range(1, 21)]
    await first.enqueue_role_jobs(keys, "refresh", T0)
    got_a: list[tuple[int, int]] = []
    got_b: list[tuple[int, int]] = []
    for batch in range(0, len(keys), 25):  # both try for the same 25 at the same moment
        wanted = keys[batch : batch + 25]
        mine, theirs = await asyncio.gather(
            first.claim_role_jobs(wanted, owner=A, now=T0, lease=LEASE),
            second.claim_role_jobs(wanted, owner=B, now=T0, lease=LEASE),
        )
        got_a += [job.key for job in mine]
        got_b += [job.key for job in theirs]
        assert all(job.claimed_by == A for job in mine) and all(job.claimed_by == B for job in theirs)
    assert not set(got_a) & set(got_b), "a job was claimed by both"
    assert sorted(got_a + got_b) == sorted(keys), "every free job was claimed by one of them"
    again = await second.claim_role_jobs(keys, owner=B, now=T0 + timedelta(seconds=30), lease=LEASE)
    assert {job.key for job in again} == set(got_b), "A's claims hold against B while their lease lasts"


async def test_claimers_draining_side_by_side_run_each_job_once(two):
    first, second = two
    keys = [(guild, user) for guild in EVEN for user in range(1, 41)]
    await first.enqueue_role_jobs(keys, "refresh", T0)
    ran: list[tuple[str, tuple[int, int]]] = []

    async def drain(store, owner: str) -> None:
        while due := await store.due_role_jobs_per_guild(T0, 4, owner=owner):
            for job in await store.claim_role_jobs([j.key for j in due], owner=owner, now=T0, lease=LEASE):
                await asyncio.sleep(0)
                if await store.finish_role_job(job):
                    ran.append((owner, job.key))

    await asyncio.gather(drain(first, A), drain(second, B))
    assert sorted(key for _owner, key in ran) == sorted(keys), "each job ran exactly once"
    assert await first.pending_role_jobs() == []


async def test_a_killed_claimers_job_is_claimable_after_its_lease_and_its_late_outcome_is_refused(two):
    first, second = two
    job_key = (EVEN[0], 7)
    await first.enqueue_role_jobs([job_key], "webhook", T0)
    [held] = await first.claim_role_jobs([job_key], owner=A, now=T0, lease=LEASE)
    assert await second.due_role_jobs_per_guild(T0 + timedelta(seconds=59), 5, owner=B) == []
    assert await second.claim_role_jobs([job_key], owner=B, now=T0 + timedelta(seconds=59), lease=LEASE) == []
    assert await second.next_claimable_role_job(owner=B) == T0 + LEASE, "B sleeps until A's lease ends"
    later = T0 + LEASE + timedelta(seconds=1)
    [taken] = await second.claim_role_jobs([job_key], owner=B, now=later, lease=LEASE)
    assert taken.claimed_by == B and taken.seq == held.seq
    # A wakes up after its lease ran out: whatever it reports is refused, B's claim stands.
    assert not await first.retry_role_job(held, later + timedelta(minutes=5), "503")
    assert not await first.fail_role_job(held, "Missing Permissions")
    assert not await first.finish_role_job(held)
    [still] = await first.pending_role_jobs()
    assert (still.claimed_by, still.attempts, still.state) == (B, 0, PENDING)
    assert await second.finish_role_job(taken)
    assert await first.pending_role_jobs() == []


async def test_a_job_queued_again_while_claimed_is_let_go_by_the_old_run_and_free_at_once(two):
    first, second = two
    job_key = (EVEN[1], 8)
    await first.enqueue_role_jobs([job_key], "refresh", T0)
    [running] = await first.claim_role_jobs([job_key], owner=A, now=T0, lease=LEASE)
    await second.enqueue_role_jobs([job_key], "webhook", T0, urgent=True)  # arrives while A runs it
    assert not await first.finish_role_job(running), "the newer request survives"
    [again] = await second.claim_role_jobs([job_key], owner=B, now=T0, lease=LEASE)
    assert again.seq == running.seq + 1 and again.cause == "webhook"
    assert await second.retry_role_job(again, T0 + timedelta(seconds=2), "503")
    [waiting] = await first.pending_role_jobs()
    assert waiting.claimed_by is None, "a back-off lets go, so whoever is free when it is due takes it"


async def test_only_this_processes_shards_jobs_are_read_and_it_sleeps_until_its_own_next(store):
    await store.enqueue_role_jobs([(guild, 1) for guild in EVEN + ODD], "refresh", T0)
    await store.enqueue_role_jobs([(ODD[0], 2)], "refresh", T0 - timedelta(hours=1))
    shard_0, shard_1 = ShardSpec(2, (0,)), ShardSpec(2, (1,))
    assert all(shard_0.owns(g) for g in EVEN) and not any(shard_0.owns(g) for g in ODD)
    evens = await store.due_role_jobs_per_guild(T0, 5, owner=A, shards=shard_0)
    odds = await store.due_role_jobs_per_guild(T0, 5, owner=B, shards=shard_1)
    assert {job.guild_id for job in evens} == set(EVEN) and {job.guild_id for job in odds} == set(ODD)
    everything = await store.due_role_jobs_per_guild(T0, 5, owner=A, shards=ShardSpec(2, (0, 1)))
    assert len(everything) == len(EVEN) + len(ODD) + 1
    assert await store.next_claimable_role_job(owner=A, shards=shard_0) == T0
    assert await store.next_claimable_role_job(owner=B, shards=shard_1) == T0 - timedelta(hours=1)


async def _record(store, member: str) -> int:
    return await store.record_webhook_event(
        received_at=T0, trigger="members:pledge:update", resource_type="member", member_id=member,
        patreon_user_id=f"p-{member}", campaign_id="c1", body_sha256=member, applicable=True,
    )


async def test_webhook_events_are_claimed_once_and_a_stale_owner_cannot_finish_them(two):
    first, second = two
    ids = [await _record(first, f"m{n}") for n in range(30)]
    mine, theirs = await asyncio.gather(
        first.claim_due_webhook_events(T0, 20, owner=A, lease=LEASE),
        second.claim_due_webhook_events(T0, 20, owner=B, lease=LEASE),
    )
    a_ids, b_ids = {e.id for e in mine}, {e.id for e in theirs}
    assert not a_ids & b_ids and a_ids | b_ids == set(ids), "each event claimed by one of them"
    assert {e.id for e in await first.claim_due_webhook_events(T0, 50, owner=A, lease=LEASE)} == a_ids
    assert {e.id for e in await second.claim_due_webhook_events(T0, 50, owner=B, lease=LEASE)} == b_ids
    # A is cut off; after its lease B takes A's events, and A's late outcome changes nothing.
    later = T0 + LEASE + timedelta(seconds=1)
    taken = await second.claim_due_webhook_events(later, 50, owner=B, lease=LEASE)
    assert a_ids <= {e.id for e in taken}
    assert await first.finish_webhook_events(sorted(a_ids), DONE, later, owner=A) == 0
    assert await first.retry_webhook_events(sorted(a_ids), later, "Patreon 503", owner=A) == 0
    assert len(await first.due_webhook_events(later)) == 30, "still pending, B's to finish"
    assert await second.finish_webhook_events(sorted(a_ids | b_ids), DONE, later, owner=B) == 30
    assert await first.due_webhook_events(later) == []


async def test_a_retried_webhook_event_is_let_go_and_waits_out_its_back_off(two):
    first, second = two
    event_id = await _record(first, "m1")
    [event] = await first.claim_due_webhook_events(T0, 5, owner=A, lease=LEASE)
    assert await first.retry_webhook_events([event.id], T0 + timedelta(seconds=10), "Patreon 503", owner=A) == 1
    assert await second.claim_due_webhook_events(T0 + timedelta(seconds=9), 5, owner=B, lease=LEASE) == []
    assert await second.next_claimable_webhook_event(owner=B) == T0 + timedelta(seconds=10)
    [again] = await second.claim_due_webhook_events(T0 + timedelta(seconds=10), 5, owner=B, lease=LEASE)
    assert (again.id, again.attempts, again.claimed_by) == (event_id, 1, B)


async def test_the_exclusive_lock_admits_one_holder_and_is_free_after_it(two):
    first, second = two
    async with first.exclusive("refresh campaign:1") as held:
        assert held
        async with second.exclusive("refresh campaign:1") as also:
            assert not also, "a second holder is kept out"
        async with first.exclusive("refresh campaign:1") as twice:
            assert not twice, "the same process can't hold it twice either"
        async with second.exclusive("refresh campaign:2") as other:
            assert other, "another campaign's lock is its own"
    async with second.exclusive("refresh campaign:1") as after:
        assert after, "free once its holder let go"


async def test_waiting_for_the_exclusive_lock_gets_it_once_the_holder_lets_go_or_gives_up(two):
    first, second = two
    let_go, holding = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with first.exclusive("creator token") as held:
            assert held
            holding.set()
            await let_go.wait()

    holder = asyncio.create_task(hold())
    await asyncio.wait_for(holding.wait(), 10)
    async with second.exclusive("creator token", wait=0.2) as gave_up:
        assert not gave_up, "still held after the wait"

    async def waiter() -> bool:
        async with second.exclusive("creator token", wait=30) as held:
            return held

    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    let_go.set()
    await holder
    assert await waiting, "taken as soon as the holder let go"


HOLDER = """
import asyncio, sys
from bot.store.opening import open_postgres
from bot.store.token_cipher import TokenCipher

async def main():
    store = await open_postgres(sys.argv[1], TokenCipher([sys.argv[2].encode()], "test"))
    async with store.exclusive("refresh campaign:9") as held:
        print("held" if held else "refused", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_holders_advisory_lock_is_free_again(postgres_dsn, cipher):
    """Another process holds the lock; SIGKILL it (no unlock runs) and PostgreSQL frees it with its connection.
    (SQLite's lock is in-process: one process owns the file.)"""
    await fresh_postgres(postgres_dsn)
    store = await open_postgres(postgres_dsn, cipher)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, postgres_dsn, new_key(), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"held"
        async with store.exclusive("refresh campaign:9") as held:
            assert not held, "the other process holds it"
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()

    async def free() -> bool:
        async with store.exclusive("refresh campaign:9") as held:
            return held

    try:
        await wait_for(free, timeout=30)
    finally:
        await store.close()
