"""Contract: the daily count's reader (`memberships_to_count`) gives every stored membership of a campaign once, in
order, a chunk at a time, and reads only that campaign's rows (SQLite: counted in its virtual machine's steps).

Why the last: the count walks each server's campaign after start-up; a reader whose keyset wasn't the primary key
scanned the whole table for every chunk, and 50 servers held the one connection for half a minute while the
webhooks and the refresh waited (bench/campaigns_bench.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.domain.models import MembershipSnapshot, PatronStatus

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def member(user: str, campaign: str) -> MembershipSnapshot:
    return MembershipSnapshot(
        f"m-{user}", campaign, user, patron_status=PatronStatus.ACTIVE, entitled_tier_ids=("t1",), observed_at=T0
    )


async def test_every_membership_of_the_campaign_once_in_key_order_whatever_the_chunk(store):
    # Two campaigns share user ids, so a chunk can end between c1's p2 and c2's p2 (the keyset takes both).
    await store.save_memberships([member(f"p{i}", "c1") for i in range(5)], campaign_id="c1")
    await store.save_memberships([member(f"p{i}", "c2") for i in (1, 2, 7)], campaign_id="c2")
    for chunk in (1, 2, 3, 1000):
        of_c2 = [(s.campaign_id, s.patreon_user_id) async for s in store.memberships_to_count("c2", chunk=chunk)]
        assert of_c2 == [("c2", "p1"), ("c2", "p2"), ("c2", "p7")], chunk
        every = [(s.campaign_id, s.patreon_user_id) async for s in store.memberships_to_count(None, chunk=chunk)]
        assert every == [("c1", f"p{i}") for i in range(5)] + of_c2, chunk
    assert [s async for s in store.memberships_to_count("none", chunk=2)] == []
    first, *_rest = [s async for s in store.memberships_to_count("c1", chunk=2)]
    assert first.entitled_tier_ids == ("t1",) and first.observed_at == T0, "decoded whole, with its observed time"


async def test_a_campaign_is_read_without_scanning_the_others(store, backend):
    if backend != "sqlite":
        return  # the step count is SQLite's; PostgreSQL plans the same primary-key range
    await store.save_memberships([member(f"a{i:03}", "small") for i in range(20)], campaign_id="small")
    await store.save_memberships([member(f"b{i:05}", "big") for i in range(5000)], campaign_id="big")
    steps = [0]

    def counted() -> int:
        steps[0] += 1
        return 0  # go on

    await store._db.set_progress_handler(counted, 100)
    try:
        read = [s.patreon_user_id async for s in store.memberships_to_count("small", chunk=8)]
    finally:
        await store._db.set_progress_handler(None, 100)
    assert len(read) == 20
    # 3 chunks of a 20-row campaign: a few hundred steps; scanning the 5,020 rows once per chunk is ~1,000 calls
    assert steps[0] < 50, f"{steps[0] * 100} virtual-machine steps to read 20 memberships beside 5,000 others"
