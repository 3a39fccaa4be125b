"""The refresh skips a member whose bytes are what the last listing showed, unread (issue 9, item 4; migration 14),
and that shortcut never hides a change: a webhook's write between two listings clears the stored listing hash, a
member Patreon sent unreadably still fails the refresh (removing nothing), and the daily full re-plan compares by
value whatever the hashes say."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import sqlite3
from contextlib import closing

from bot.domain.models import PatronStatus
from fakes.sync_harness import GUILD
from tests.e2e.polling import wait_for
from tests.integration import test_refresh_scope as scope
from tests.integration.test_refresh_scope import BEN, GOLD, LINKED, refresh

CAMPAIGN = "7654321"
#: The fixture: Ann, Ben and Cat linked and paying for Gold, Dan paying unlinked, one refresh done.
h = scope.h


async def _listing_hash(h, patreon_id: str) -> bytes | None:
    return (await h.store.listing_looks(CAMPAIGN, [patreon_id]))[patreon_id][1]


async def test_a_webhook_s_write_between_two_listings_is_compared_by_value_not_skipped_by_bytes(h):
    """Ben cancels (a webhook stores it), then pledges back exactly as before, and that webhook is lost: the next
    listing shows the bytes it showed before the cancel. Had the webhook's write kept the listing hash, the refresh
    would skip Ben as unchanged and keep him cancelled, without his Gold, until the daily re-plan."""
    before = await _listing_hash(h, "p-ben")
    assert before is not None, "the first refresh remembers the bytes it read"
    pledge = h.patreon.state.live_member_for("p-ben")
    kept = copy.copy(pledge)
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[])
    assert (await h.deliver("members:pledge:delete", "p-ben"))[0] == 202
    await h.apply()
    assert (await h.store.get_membership("p-ben", CAMPAIGN)).patron_status == PatronStatus.FORMER
    assert GOLD not in h.guild.members[BEN]
    assert await _listing_hash(h, "p-ben") is None, "the webhook's look was not read from a listing"
    assert h.patreon.state.live_member_for("p-ben") is pledge
    for field in dataclasses.fields(kept):  # Ben pledges back: Patreon describes him as before, byte for byte
        setattr(pledge, field.name, getattr(kept, field.name))
    pledge.fragment_key = None  # the fake's cached rendering of him

    report = await refresh(h)
    assert await _listing_hash(h, "p-ben") == before, "the listing showed Ben's old bytes again"
    assert report.snapshots_saved == 1 and report.members_planned == 1
    assert (await h.store.get_membership("p-ben", CAMPAIGN)).patron_status == PatronStatus.ACTIVE
    assert GOLD in h.guild.members[BEN]


async def test_a_database_from_before_the_hashes_remembers_them_at_its_first_listing_and_rewrites_nobody(h):
    with closing(sqlite3.connect(h.db_path)) as db:  # as migration 14 leaves an older database
        db.execute("UPDATE memberships SET listing_hash = NULL")
        db.commit()
    report = await refresh(h)
    assert report.snapshots_saved == 0 and report.members_planned == 0
    assert all([await _listing_hash(h, pid) is not None for pid in ("p-ann", "p-ben", "p-cat", "p-dan")])


async def test_a_changed_member_patreon_sent_unreadably_fails_the_refresh_and_removes_nothing(h):
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[])  # a change: Ben's bytes must be read
    h.patreon.state.omit_member_attributes("p-ben", "patron_status")
    report = await h.services.refresh.run("scheduled")
    await h.services.jobs.wait_idle(5)
    assert not report.ok and "patron_status" in report.detail
    assert all(GOLD in h.guild.members[user] for user in LINKED.values()), "nothing removed on a refused page"
    assert (await h.store.get_membership("p-ben", CAMPAIGN)).patron_status == PatronStatus.ACTIVE


async def test_the_full_re_plan_compares_every_member_by_value_whatever_the_stored_hash_says(h):
    """The safety net: were a stored snapshot ever wrong under a matching listing hash (a reader change without a
    `ROWS_VERSION` bump, a bad restore), the scheduled refresh would trust the hash; the daily full re-plan doesn't."""
    with closing(sqlite3.connect(h.db_path)) as db:  # Ben's stored snapshot says cancelled; his bytes don't
        text = db.execute("SELECT snapshot FROM memberships WHERE patreon_user_id = 'p-ben'").fetchone()[0]
        db.execute(
            "UPDATE memberships SET snapshot = ?, snapshot_hash = x'00' WHERE patreon_user_id = 'p-ben'",
            (text.replace('"active_patron"', '"former_patron"'),),
        )
        db.commit()
    scheduled = await refresh(h)
    assert scheduled.snapshots_saved == 0, "a scheduled refresh trusts the bytes"
    assert (await h.store.get_membership("p-ben", CAMPAIGN)).patron_status == PatronStatus.FORMER
    h.services.refresh.request_full_plan(GUILD)
    full = await refresh(h)
    assert full.snapshots_saved == 1 and full.full_replan_guilds == 1
    assert (await h.store.get_membership("p-ben", CAMPAIGN)).patron_status == PatronStatus.ACTIVE
    assert GOLD in h.guild.members[BEN]


async def test_a_page_with_a_member_of_a_deleted_account_keeps_the_other_members_hashes(h):
    """A member listed without a Patreon user (a deleted account) is common in a big campaign: the rest of its page
    must still be skipped by bytes, not read and compared by value at every refresh."""
    h.patreon.state.delete_account("p-dan")
    assert (await refresh(h)).ok
    with closing(sqlite3.connect(h.db_path)) as db:  # as migration 14 leaves an older database
        db.execute("UPDATE memberships SET listing_hash = NULL")
        db.commit()
    report = await refresh(h)
    assert report.ok and report.snapshots_saved == 0  # Dan matched to his stored user by member id
    assert all([await _listing_hash(h, pid) is not None for pid in ("p-ann", "p-ben", "p-cat")])


async def test_a_webhook_applied_while_the_listing_runs_is_compared_with_the_page_not_skipped(h):
    """The listing reads the campaign's stored listing hashes once, as it begins (bot/sync/refresh_listing.py); a
    webhook applied while its first page is on the way clears Ben's hash in the store, not in what the listing read.
    Ben's page then shows the webhook's new bytes, which differ from the hash the listing read: he is compared by
    value (not skipped), and his new bytes are remembered with what is stored; nobody else is rewritten."""
    before = await _listing_hash(h, "p-ben")
    assert before is not None
    h.patreon.delay_next(rf"/campaigns/{CAMPAIGN}/members", seconds=1.0)  # the first page takes a while
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[])
    task = asyncio.ensure_future(refresh(h))
    await wait_for(lambda: any(f"/campaigns/{CAMPAIGN}/members" in path for _m, path, _q in h.patreon.calls))
    assert (await h.deliver("members:pledge:delete", "p-ben"))[0] == 202
    await h.apply()
    assert await _listing_hash(h, "p-ben") is None, "the webhook's write cleared it in the store"
    report = await task
    assert report.ok, report.detail
    assert report.snapshots_saved <= 1, "Ben at most (the webhook's re-fetch and the page may differ in value)"
    assert (await h.store.get_membership("p-ben", CAMPAIGN)).patron_status == PatronStatus.FORMER
    assert GOLD not in h.guild.members[BEN]
    remembered = await _listing_hash(h, "p-ben")
    assert remembered is not None and remembered != before, "the page's new bytes are remembered"
