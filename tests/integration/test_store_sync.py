"""The store's sync additions on a real SQLite file: bulk snapshots, guarded deletes, links, tokens, queues."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.models import MembershipSnapshot, PatronStatus, TokenPair
from bot.store import Store, patron_subject
from bot.store.schema import MIGRATIONS

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path):
    opened = await Store.open(tmp_path / "bot.sqlite3")
    yield opened
    await opened.close()


def snapshot(
    user: str, at: datetime, status: PatronStatus | None = PatronStatus.ACTIVE, member: str = ""
) -> MembershipSnapshot:
    return MembershipSnapshot(member or f"m-{user}", "c", user, patron_status=status, observed_at=at)


async def test_migration_2_adds_the_queues(store):
    assert await store.schema_version() == len(MIGRATIONS) >= 2
    assert await store.webhook_event_counts() == {} and await store.role_job_counts() == {}


async def test_bulk_save_in_chunks_never_overwrites_a_newer_snapshot(store):
    await store.save_membership(snapshot("u2", T0 + timedelta(minutes=5), PatronStatus.FORMER))
    saved = await store.save_memberships([snapshot(f"u{n}", T0) for n in range(5)], chunk=2)
    assert saved == 4
    kept = await store.get_membership("u2")
    assert kept is not None and kept.patron_status == PatronStatus.FORMER
    assert (await store.get_membership("u4")) is not None


async def test_unlisted_members_are_forgotten_unless_seen_after_the_listing_began(store):
    await store.save_memberships([snapshot("listed", T0), snapshot("gone", T0), snapshot("new", T0 + timedelta(1))])
    gone = await store.delete_memberships_except({"listed"}, observed_before=T0 + timedelta(hours=1))
    assert gone == ["gone"]
    assert await store.get_membership("new") is not None and await store.get_membership("gone") is None


async def test_a_404_forgets_only_that_membership_and_only_if_older(store):
    await store.save_membership(snapshot("u", T0, member="renewed"))
    assert not await store.delete_membership_observed_before("u", T0 + timedelta(1), member_id="old")
    assert not await store.delete_membership_observed_before("u", T0 - timedelta(1), member_id="renewed")
    assert await store.delete_membership_observed_before("u", T0 + timedelta(1), member_id="renewed")
    assert await store.get_membership("u") is None


async def test_add_links_never_replaces_an_existing_link(store):
    await store.save_link(1, "p1", 10, "oauth")
    added = await store.add_links([(1, "p9", 10, "auto"), (2, "p1", 10, "auto"), (3, "p3", 10, "auto")], T0)
    assert added == 1
    assert await store.link_map() == {1: "p1", 3: "p3"}


async def test_a_link_by_hand_counts_only_in_its_server_in_python_and_in_sql(store):
    await store.save_link(1, "p1", 100, "oauth")
    await store.save_link(2, "p2", 100, "admin")
    await store.save_link(3, "p3", 200, "admin")
    await store.add_auto_links([(4, "p4", 200, "auto")], T0)
    links = {link.discord_user_id: link for link in await store.all_links()}
    for guild in (100, 200, 300):
        in_python = {user: link.patreon_user_id for user, link in links.items() if link.counts_in(guild)}
        assert await store.links_counting_in(guild) == in_python, guild
    assert await store.links_counting_in(100) == {1: "p1", 2: "p2", 4: "p4"}
    assert await store.links_counting_in(300) == {1: "p1", 4: "p4"}, "proven links count everywhere"


async def test_tokens_expiring_finds_patron_pairs_due_for_refresh(store):
    soon = TokenPair("a1", "r1", T0 + timedelta(days=2))
    later = TokenPair("a2", "r2", T0 + timedelta(days=30))
    await store.save_tokens(patron_subject("p1"), soon)
    await store.save_tokens(patron_subject("p2"), later)
    await store.save_tokens("creator", soon)
    due = await store.tokens_expiring("patron:", T0 + timedelta(days=7))
    assert [(subject, pair.refresh_token) for subject, pair in due] == [(patron_subject("p1"), "r1")]


async def test_a_revived_failed_job_keeps_its_reported_mark(store):
    await store.enqueue_role_jobs([(1, 2)], "webhook", T0)
    (job,) = await store.due_role_jobs(T0, 5)
    await store.fail_role_job(job, "Missing Permissions")
    await store.enqueue_role_jobs([(1, 2)], "refresh", T0 + timedelta(minutes=15))
    (revived,) = await store.pending_role_jobs()
    assert (revived.state, revived.attempts, revived.reported, revived.cause) == ("pending", 0, True, "refresh")


async def test_webhook_events_superseded_by_a_later_complete_listing(store):
    common = {"trigger": "members:update", "resource_type": "member", "campaign_id": "c", "body_sha256": "x"}
    await store.record_webhook_event(
        received_at=T0, member_id="m1", patreon_user_id="u1", applicable=True, seen_fact=("seen", "t"), **common
    )
    await store.record_webhook_event(
        received_at=T0 + timedelta(hours=1), member_id="m2", patreon_user_id="u2", applicable=True, **common
    )
    assert await store.get_fact("seen") == "t"
    assert await store.supersede_webhook_events(T0 + timedelta(minutes=30), T0) == 1
    (left,) = await store.due_webhook_events(T0 + timedelta(days=1))
    assert left.member_id == "m2"
    assert await store.prune_webhook_events(T0 + timedelta(days=1)) == 1
