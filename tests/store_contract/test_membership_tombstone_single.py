"""Contract: a single membership save (a webhook's re-fetch) honours the tombstone a 404 left, as a listing page
does, so two processes applying one member's two webhooks at once can't bring a lapsed membership back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.models import MembershipSnapshot, PatronStatus


def look(at: datetime, member_id: str = "m-1") -> MembershipSnapshot:
    return MembershipSnapshot(
        member_id, "c1", "p-1", "Ann", PatronStatus.ACTIVE, "Paid", observed_at=at,
        currently_entitled_amount_cents=500, entitled_tier_ids=("t1",),
    )


async def test_a_look_fetched_before_another_process_404_is_not_saved_after_it(open_store):
    here, there = await open_store(), await open_store()  # two processes, one database
    t0 = datetime.now(UTC) - timedelta(minutes=5)  # tombstones last a day of real time
    assert await here.save_membership(look(t0), "c1")
    fetched_active, fetched_gone = t0 + timedelta(minutes=1), t0 + timedelta(minutes=1, seconds=2)
    assert await there.delete_membership_observed_before("p-1", fetched_gone, "m-1", campaign_id="c1")
    assert not await here.save_membership(look(fetched_active), "c1"), "the older look came after the 404"
    assert await here.get_membership("p-1", "c1") is None
    assert await there.get_membership("p-1", "c1") is None


async def test_a_look_after_the_404_and_a_renewal_are_saved(store):
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    await store.save_membership(look(t0), "c1")
    gone = t0 + timedelta(minutes=1)
    assert await store.delete_membership_observed_before("p-1", gone, "m-1", campaign_id="c1")
    assert await store.save_membership(look(t0, "m-2"), "c1"), "another membership id: a renewal"
    await store.delete_membership("p-1", "c1")
    assert await store.save_membership(look(gone + timedelta(seconds=1)), "c1"), "seen again after the 404"
    assert await store.get_membership("p-1", "c1") is not None
    assert await store.save_membership(look(t0), "c2"), "another campaign's tombstone doesn't count"


async def test_a_tombstone_of_every_membership_of_the_user_refuses_any_older_look(store):
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    await store.save_membership(look(t0, "m-old"), "c1")
    gone = t0 + timedelta(minutes=1)
    assert await store.delete_membership_observed_before("p-1", gone, campaign_id="c1", also_gone="m-1")
    assert not await store.save_membership(look(t0 + timedelta(seconds=30), "m-other"), "c1")
    assert await store.get_membership("p-1", "c1") is None
