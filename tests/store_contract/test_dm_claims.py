"""Contract: a queued DM is claimed by one process at a time, so processes sharing one database never both send it
(bot/store/dm_outbox.py, issue 11 item 6).

As in test_claims.py, on PostgreSQL the two claimers are two connections, as two processes would be; on SQLite one
store twice. Two claimers going for the same DMs at once never both get one, a claimer cut off after its lease can
neither stamp nor finish the row its successor holds, the successor sees the stamp (so it goes by the nonce or the
DM channel), and a process reads only its own shards' servers' DMs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.shards import ShardSpec
from bot.store.dm_outbox import DM_PENDING, DM_SENT

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
LEASE = timedelta(minutes=1)
A, B = "host-a:1:aaaa", "host-b:2:bbbb"
#: Servers whose shard (of two) is 0 and 1: Discord's `(guild_id >> 22) % 2`.
EVEN = [(900_000 + n) << 23 for n in range(4)]
ODD = [((900_000 + n) << 23) | (1 << 22) for n in range(4)]


@pytest.fixture
async def two(backend, open_store):
    first = await open_store()
    return first, (await open_store() if backend == "postgres" else first)


async def _queue(store, guilds: list[int], users: int = 5) -> list[int]:
    for guild in guilds:
        for user in range(1, users + 1):
            assert await store.queue_dm(guild, user, "welcome", f"link:{guild}:{user}", {"roles": []}, T0)
    return [dm.id for dm in await store.due_dms(T0, limit=1000)]


async def test_two_claimers_claiming_the_same_dms_at_once_never_both_get_one(two):
    first, second = two
    ids = await _queue(first, EVEN + ODD)
    assert len(ids) == 40
    results = await asyncio.gather(
        *(store.claim_dm(dm_id, owner=owner, now=T0, lease=LEASE)
          for dm_id in ids for store, owner in ((first, A), (second, B)))
    )
    mine = {dm.id for dm in results[0::2] if dm is not None}
    theirs = {dm.id for dm in results[1::2] if dm is not None}
    assert not mine & theirs, "a DM was claimed by both"
    assert mine | theirs == set(ids), "every free DM was claimed by one of them"
    assert await second.due_dms(T0 + timedelta(seconds=30), owner=B) == [
        dm for dm in await second.due_dms(T0 + timedelta(seconds=30)) if dm.id in theirs
    ], "A's claims hide its DMs from B while their lease lasts"


async def test_claimers_draining_side_by_side_send_each_dm_once(two):
    first, second = two
    ids = await _queue(first, EVEN, users=10)
    sent: list[tuple[str, int]] = []

    async def drain(store, owner: str) -> None:
        while due := await store.due_dms(T0, limit=3, owner=owner):
            for row in due:
                dm = await store.claim_dm(row.id, owner=owner, now=T0, lease=LEASE)
                await asyncio.sleep(0)
                if dm is not None and await store.mark_dm_sending(dm.id, T0, owner=owner):
                    sent.append((owner, dm.id))  # the call to Discord
                    assert await store.finish_dm(dm.id, DM_SENT, T0, owner=owner)

    await asyncio.gather(drain(first, A), drain(second, B))
    assert sorted(dm_id for _owner, dm_id in sent) == sorted(ids), "each DM sent exactly once"
    assert {state for *_rest, state in await first.dm_states()} == {DM_SENT}


async def test_a_claimer_cut_off_past_its_lease_can_neither_send_nor_finish_and_its_successor_sees_the_stamp(two):
    first, second = two
    [dm_id] = await _queue(first, [EVEN[0]], users=1)
    held = await first.claim_dm(dm_id, owner=A, now=T0, lease=LEASE)
    assert held is not None and held.sending_at is None
    assert await first.mark_dm_sending(dm_id, T0, owner=A), "stamped while the claim holds"
    # A is killed (or stalls) mid-send: B can't have it while A's lease runs, then takes it.
    assert await second.claim_dm(dm_id, owner=B, now=T0 + timedelta(seconds=59), lease=LEASE) is None
    assert await second.next_dm_due(owner=B) == T0 + LEASE, "B sleeps until A's lease ends"
    later = T0 + LEASE + timedelta(seconds=1)
    taken = await second.claim_dm(dm_id, owner=B, now=later, lease=LEASE)
    assert taken is not None and taken.sending_at == T0 and taken.attempts == 1, "B knows a send may have gone"
    # A comes back: it may not stamp (send) again nor write its outcome over B's.
    assert not await first.mark_dm_sending(dm_id, later, owner=A)
    assert not await first.finish_dm(dm_id, DM_SENT, later, owner=A)
    assert not await first.retry_dm_at(dm_id, later + timedelta(minutes=1), "503", owner=A)
    assert not await first.postpone_dm(dm_id, later + timedelta(minutes=1), "unreadable", owner=A)
    assert await first.dm_states() == [(EVEN[0], 1, "welcome", DM_PENDING)]
    assert await second.renew_dm_claim(dm_id, owner=B, until=later + LEASE)
    assert not await first.renew_dm_claim(dm_id, owner=A, until=later + LEASE)
    assert await second.finish_dm(dm_id, DM_SENT, later, owner=B)
    assert await first.dm_states() == [(EVEN[0], 1, "welcome", DM_SENT)]
    assert await first.claim_dm(dm_id, owner=A, now=later + 2 * LEASE, lease=LEASE) is None, "done stays done"


async def test_a_retried_dm_is_let_go_and_waits_out_its_back_off(two):
    first, second = two
    [dm_id] = await _queue(first, [EVEN[1]], users=1)
    assert await first.claim_dm(dm_id, owner=A, now=T0, lease=LEASE) is not None
    assert await first.mark_dm_sending(dm_id, T0, owner=A)
    assert await first.retry_dm_at(dm_id, T0 + timedelta(seconds=30), "Discord 503", owner=A)
    assert await second.claim_dm(dm_id, owner=B, now=T0 + timedelta(seconds=29), lease=LEASE) is None
    assert await second.next_dm_due(owner=B) == T0 + timedelta(seconds=30)
    again = await second.claim_dm(dm_id, owner=B, now=T0 + timedelta(seconds=30), lease=LEASE)
    assert again is not None and again.sending_at is None and again.attempts == 1


async def test_only_this_processes_shards_dms_are_read_and_it_sleeps_until_its_own_next(store):
    await _queue(store, EVEN + ODD, users=1)
    assert await store.queue_dm(ODD[0], 9, "declined", "charge:x", {}, T0 - timedelta(hours=1))
    shard_0, shard_1 = ShardSpec(2, (0,)), ShardSpec(2, (1,))
    evens = await store.due_dms(T0, owner=A, shards=shard_0)
    odds = await store.due_dms(T0, owner=B, shards=shard_1)
    assert {dm.guild_id for dm in evens} == set(EVEN) and {dm.guild_id for dm in odds} == set(ODD)
    assert len(await store.due_dms(T0, owner=A, shards=ShardSpec(2, (0, 1)))) == len(EVEN) + len(ODD) + 1
    assert await store.next_dm_due(owner=A, shards=shard_0) == T0
    assert await store.next_dm_due(owner=B, shards=shard_1) == T0 - timedelta(hours=1)


async def test_on_sqlite_a_dead_runs_dm_claims_are_free_at_start_up(backend, store):
    [dm_id] = await _queue(store, [EVEN[2]], users=1)
    assert await store.claim_dm(dm_id, owner=A, now=T0, lease=LEASE) is not None
    released = await store.release_claims_of_earlier_runs(B)
    free = await store.claim_dm(dm_id, owner=B, now=T0, lease=LEASE)
    if backend == "sqlite":
        assert released == 1 and free is not None, "the file is this process's alone: A's run is over"
    else:
        assert released == 0 and free is None, "on PostgreSQL A may be another process, still running"
