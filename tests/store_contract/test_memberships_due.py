"""Contract: the members a refresh plans for time alone (`Store.memberships_due_by_time`) are exactly those whose
stored snapshot `batch_plan.may_change_by_time` picks, on both engines, whichever way the snapshot was written (a
listing page, a webhook's look, a remembered listing hash over a row from before migration 14)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from bot.domain import billing
from bot.domain.models import MembershipSnapshot, PatronStatus
from bot.store.codec import snapshot_hash
from bot.sync.batch_plan import may_change_by_time

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _snapshots(count: int) -> list[MembershipSnapshot]:
    rng = random.Random(9)

    def moment() -> datetime | None:
        return None if rng.random() < 0.15 else T0 + timedelta(minutes=rng.randint(-60 * 24 * 70, 60 * 24 * 70))

    return [
        MembershipSnapshot(
            f"m{n}",
            "c1",
            f"p{n}",
            patron_status=rng.choice([None, *PatronStatus]),
            last_charge_status=rng.choice(billing.DOCUMENTED_CHARGE_STATUSES),
            last_charge_date=moment(),
            next_charge_date=moment(),
            pledge_cadence=rng.choice([None, 0, 1, 12]),
            observed_at=T0,
        )
        for n in range(count)
    ]


async def test_the_members_due_by_time_are_the_ones_the_time_rule_picks(store):
    snapshots = _snapshots(300)
    await store.save_membership_page(snapshots[:100], "c1")  # a listing page
    for snapshot in snapshots[100:200]:
        await store.save_membership(snapshot, "c1")  # a webhook's look
    await store.save_membership_page(snapshots[200:], "c1")
    await store._db.execute(  # as a row from before migration 14, then remembered by the next listing
        "UPDATE memberships SET due_next_charge = NULL, due_paid_end = NULL, due_last_charge = NULL"
        " WHERE patreon_user_id IN ('p200', 'p201', 'p202', 'p203', 'p204', 'p205', 'p206', 'p207')"
    )
    await store._db.commit()
    await store.remember_listing_hashes("c1", [(s, snapshot_hash(s), b"bytes") for s in snapshots[200:208]])
    await store.save_membership(MembershipSnapshot("m-x", "c2", "p0", patron_status=PatronStatus.FORMER,
                                                   next_charge_date=T0, observed_at=T0), "c2")  # fmt: skip
    rng = random.Random(4)
    checked = 0
    for _ in range(60):
        since = T0 + timedelta(minutes=rng.randint(-60 * 24 * 80, 60 * 24 * 80))
        now = since + timedelta(minutes=rng.choice([1, 15, 60, 60 * 24, 60 * 24 * 30]))
        grace = rng.choice([0, 1, 3, 7, 30])
        expected = sorted(s.patreon_user_id for s in snapshots if may_change_by_time(s, since, now, grace))
        assert sorted(await store.memberships_due_by_time("c1", since, now, grace)) == expected, (since, now, grace)
        checked += len(expected)
    assert checked > 30, "the windows must pick someone for the comparison to mean anything"


async def test_rows_from_before_the_moments_get_them_at_the_next_start(open_store):
    """An upgraded database: migration 14 leaves every older row's moments unknown (NULL), and no listing may ever
    re-read an unchanged member (pages without listing hashes never do), so the store reads them from the
    snapshots when it opens; a row whose snapshot can't be read is never due (the daily full re-plan plans it)."""
    store = await open_store()
    snapshots = _snapshots(120)
    await store.save_membership_page(snapshots, "c1")
    await store._db.execute(
        "UPDATE memberships SET due_next_charge = NULL, due_paid_end = NULL, due_last_charge = NULL"
    )
    await store._db.execute("UPDATE memberships SET snapshot = 'not json' WHERE patreon_user_id = 'p0'")
    await store._db.commit()
    since, now = T0 - timedelta(days=20), T0 + timedelta(days=20)
    assert await store.memberships_due_by_time("c1", since, now, 3) == [], "unknown moments are never due"
    await store.close()

    reopened = await open_store()
    expected = sorted(s.patreon_user_id for s in snapshots[1:] if may_change_by_time(s, since, now, 3))
    assert expected and sorted(await reopened.memberships_due_by_time("c1", since, now, 3)) == expected
    assert await reopened.fill_due_moments() == 0, "read once"
