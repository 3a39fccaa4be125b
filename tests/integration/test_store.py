"""The store on a real SQLite file: migrations, links, tokens, ordering of snapshots, ledger, states."""

import logging
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings, RoleMode
from bot.domain.models import MembershipSnapshot, PatronStatus, Tier, TokenPair
from bot.store import CREATOR_SUBJECT, Store, patron_subject
from bot.store.bulk import TOMBSTONE_LIFETIME
from bot.store.schema import MIGRATIONS

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "data" / "bot.sqlite3")
    yield opened
    await opened.close()


async def test_schema_is_migrated_and_wal_is_on(tmp_path, store):
    assert await store.schema_version() == len(MIGRATIONS)
    with sqlite3.connect(tmp_path / "data" / "bot.sqlite3") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopening_keeps_data_and_does_not_remigrate(tmp_path):
    path = tmp_path / "bot.sqlite3"
    first = await Store.open(path)
    await first.save_link(1, "p1", 10, "oauth")
    await first.close()
    second = await Store.open(path)
    try:
        link = await second.get_link_by_discord(1)
        assert link is not None and link.patreon_user_id == "p1" and link.linked_in_guild_id == 10
    finally:
        await second.close()


async def test_link_moves_when_patreon_account_relinked_elsewhere(store):
    assert await store.save_link(1, "p1", 10, "oauth") is None
    replaced = await store.save_link(2, "p1", 10, "oauth")
    assert replaced is not None and replaced.discord_user_id == 1
    assert await store.get_link_by_discord(1) is None
    assert (await store.get_link_by_patreon("p1")).discord_user_id == 2
    assert await store.delete_link(2) is not None
    assert await store.all_links() == []


async def test_tokens_round_trip_and_delete(store):
    pair = TokenPair("acc", "ref", T0 + timedelta(days=31), ("identity", "identity.memberships"))
    await store.save_tokens(patron_subject("p1"), pair)
    await store.save_tokens(CREATOR_SUBJECT, TokenPair("c", "r", T0))
    assert await store.get_tokens(patron_subject("p1")) == pair
    await store.delete_tokens(patron_subject("p1"))
    assert await store.get_tokens(patron_subject("p1")) is None
    assert (await store.get_tokens(CREATOR_SUBJECT)).access_token == "c"


async def test_older_snapshot_never_overwrites_newer(store):
    newer = MembershipSnapshot("m1", "c1", "p1", patron_status=PatronStatus.FORMER, observed_at=T0 + timedelta(hours=1))
    older = MembershipSnapshot(
        "m1", "c1", "p1", patron_status=PatronStatus.ACTIVE, entitled_tier_ids=("t1",), observed_at=T0
    )
    assert await store.save_membership(newer)
    assert not await store.save_membership(older)
    assert (await store.get_membership("p1")).patron_status is PatronStatus.FORMER
    same_time_again = MembershipSnapshot(
        "m1", "c1", "p1", patron_status=PatronStatus.ACTIVE, observed_at=newer.observed_at
    )
    assert await store.save_membership(same_time_again)  # a duplicate delivery is harmless


async def test_snapshot_round_trips_every_field(store):
    snapshot = MembershipSnapshot(
        member_id="m1",
        campaign_id="c1",
        patreon_user_id="p1",
        full_name="Ann",
        patron_status=PatronStatus.DECLINED,
        last_charge_status="Declined",
        last_charge_date=T0,
        next_charge_date=T0 + timedelta(days=30),
        pledge_relationship_start=T0 - timedelta(days=300),
        pledge_cadence=1,
        currently_entitled_amount_cents=500,
        will_pay_amount_cents=500,
        campaign_lifetime_support_cents=4500,
        is_free_trial=False,
        is_gifted=True,
        entitled_tier_ids=("t1", "t2"),
        tiers_known=True,
        social_discord_id=1234,
        observed_at=T0,
    )
    await store.save_membership(snapshot)
    assert await store.get_membership("p1") == snapshot


async def test_settings_default_then_saved(store):
    assert await store.get_settings(5) == GuildSettings(guild_id=5)
    changed = GuildSettings(guild_id=5, decline_grace_days=3, role_mode=RoleMode.HIGHEST, log_channel_id=77)
    await store.save_settings(changed)
    assert await store.get_settings(5) == changed
    assert await store.get_settings(6) == GuildSettings(guild_id=6)


async def test_tier_role_map_many_to_many_per_guild(store):
    assert await store.map_tier_role(1, "gold", 100)
    assert await store.map_tier_role(1, "gold", 101)
    assert await store.map_tier_role(1, "silver", 100)
    assert not await store.map_tier_role(1, "gold", 100)
    assert await store.map_tier_role(2, "gold", 200)
    tier_roles = await store.get_tier_roles(1)
    assert tier_roles.roles_by_tier == {"gold": {100, 101}, "silver": {100}}
    assert await store.unmap_tier_role(1, "gold", 101) == 1
    assert await store.unmap_tier_role(1, "silver") == 1
    assert (await store.get_tier_roles(1)).roles_by_tier == {"gold": {100}}
    assert (await store.get_tier_roles(2)).roles_by_tier == {"gold": {200}}
    assert await store.configured_guild_ids() == [1, 2]


async def test_grant_ledger(store):
    await store.record_grants(1, 42, [100, 101], "linked")
    await store.record_grants(2, 42, [100], "linked")
    await store.forget_grants(1, 42, [101])
    assert await store.granted_roles(1, 42) == {100}
    assert await store.granted_roles(2, 42) == {100}
    assert await store.granted_roles(1, 43) == frozenset()


async def test_state_can_be_consumed_once(store):
    expires = datetime.now(UTC) + timedelta(minutes=15)
    assert await store.consume_state("nonce-1", expires)
    assert not await store.consume_state("nonce-1", expires)
    assert await store.consume_state("nonce-2", expires)


async def test_tiers_and_facts(store):
    await store.save_tiers("c1", [Tier("t2", "Gold", 1000, 3, True), Tier("t1", "Bronze", 300, None, None)])
    tiers = await store.get_tiers()
    assert list(tiers) == ["t1", "t2"]
    assert tiers["t2"] == Tier("t2", "Gold", 1000, 3, True)
    await store.set_fact("campaign_id", "c1")
    assert await store.get_fact("campaign_id") == "c1"
    assert await store.get_fact("missing") is None


async def test_refresh_save_skips_members_patreon_describes_unchanged(store):
    first = [
        MembershipSnapshot(f"m{i}", "c1", f"p{i}", patron_status=PatronStatus.ACTIVE, observed_at=T0) for i in range(5)
    ]
    assert await store.save_memberships(first) == 5
    later = T0 + timedelta(minutes=15)
    again = [
        MembershipSnapshot(f"m{i}", "c1", f"p{i}", patron_status=PatronStatus.ACTIVE, observed_at=later)
        for i in range(5)
    ]
    changed = MembershipSnapshot("m2", "c1", "p2", patron_status=PatronStatus.FORMER, observed_at=later)
    again[2] = changed
    assert await store.save_memberships(again) == 1, "only the changed member is rewritten"
    assert await store.get_membership("p2") == changed
    unchanged = await store.get_membership("p1")
    assert unchanged.patron_status is PatronStatus.ACTIVE and unchanged.observed_at == T0


async def test_a_listing_page_read_before_a_404_cannot_bring_the_membership_back(store):
    now = datetime.now(UTC)  # tombstones are kept for a day of real time
    await store.save_membership(
        MembershipSnapshot("m1", "c1", "p1", patron_status=PatronStatus.ACTIVE, observed_at=now)
    )
    assert await store.delete_membership_observed_before("p1", now + timedelta(minutes=2), "m1")
    late_page = MembershipSnapshot(
        "m1", "c1", "p1", patron_status=PatronStatus.ACTIVE, observed_at=now + timedelta(minutes=1)
    )
    assert await store.save_memberships([late_page]) == 0
    assert await store.get_membership("p1") is None
    renewed = MembershipSnapshot(
        "m2", "c1", "p1", patron_status=PatronStatus.ACTIVE, observed_at=now + timedelta(minutes=3)
    )
    assert await store.save_memberships([renewed]) == 1, "a look after the 404 (a renewal) is stored"
    assert (await store.get_membership("p1")).member_id == "m2"


async def test_a_tombstone_past_its_day_never_keeps_a_page_out_whether_or_not_it_was_deleted_yet(tmp_path, store):
    """Tombstones past their lifetime are deleted at most once a minute (a listing asks at each page); one not yet
    deleted is ignored all the same, so a page read before an old 404 is stored as it always was."""
    now = datetime.now(UTC)
    old_404 = (now - TOMBSTONE_LIFETIME - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for user in ("p1", "p2"):
        if user == "p2":  # written after the first page's prune: still there at the second page
            with sqlite3.connect(tmp_path / "data" / "bot.sqlite3") as raw:
                raw.execute("INSERT INTO membership_tombstones VALUES ('c1', 'p2', 'm-p2', ?)", (old_404,))
        page = MembershipSnapshot(f"m-{user}", "c1", user, observed_at=now - TOMBSTONE_LIFETIME - timedelta(hours=2))
        assert await store.save_memberships([page], campaign_id="c1") == 1, user
        assert await store.get_membership(user, "c1") == page
    with sqlite3.connect(tmp_path / "data" / "bot.sqlite3") as raw:
        assert raw.execute("SELECT patreon_user_id FROM membership_tombstones").fetchall() == [("p2",)]


async def test_a_404_for_an_old_membership_does_not_drop_the_renewed_one_from_a_listing(store):
    now = datetime.now(UTC)
    await store.save_membership(
        MembershipSnapshot("m1", "c1", "p1", patron_status=PatronStatus.ACTIVE, observed_at=now)
    )
    renewed = MembershipSnapshot(
        "m2", "c1", "p1", patron_status=PatronStatus.ACTIVE, observed_at=now + timedelta(minutes=1)
    )
    assert await store.delete_membership_observed_before("p1", now + timedelta(minutes=2), "m1")
    assert await store.save_memberships([renewed]) == 1
    assert (await store.get_membership("p1")).member_id == "m2"


async def test_pending_role_jobs_are_counted_per_guild(store):
    assert await store.count_pending_role_jobs(10) == 0
    await store.enqueue_role_jobs([(10, 1), (10, 2), (10, 3), (20, 1)], "refresh", T0)
    await store.enqueue_role_jobs([(10, 1)], "webhook", T0)  # coalesces with the job already there
    assert await store.count_pending_role_jobs(10) == 3
    assert await store.count_pending_role_jobs(20) == 1
    assert await store.count_pending_role_jobs(30) == 0
    jobs = {job.key: job for job in await store.due_role_jobs(T0, limit=10)}
    await store.fail_role_job(jobs[(10, 2)], "Missing Permissions")  # failed is not pending
    assert await store.finish_role_job(jobs[(10, 3)])
    assert await store.count_pending_role_jobs(10) == 1
    assert await store.count_pending_role_jobs(20) == 1


async def test_opening_the_store_leaves_logging_alone(tmp_path):
    """Capping aiosqlite's logger is the entry point's logging set-up, not a side effect of opening a database."""
    logger = logging.getLogger("aiosqlite")
    before = logger.level
    logger.setLevel(logging.NOTSET)
    try:
        opened = await Store.open(tmp_path / "quiet.sqlite3")
        await opened.close()
        assert logger.level == logging.NOTSET
    finally:
        logger.setLevel(before)
