"""The refresh fails safe: listings that cannot be complete, token-endpoint hiccups, Discord failing mid-plan.

Each test is a scenario from a review: before the fix, a paying patron lost a role, a token was thrown away, or
a refresh crashed without saying so.
"""

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain.models import TokenPair
from bot.store import LAST_REFRESH, patron_subject
from bot.sync.campaign import CREATOR_REJECTED_FACT
from bot.sync.role_gateway import RoleChangeError
from fakes.sync_harness import GUILD, SyncHarness

GOLD, VIP = 630000000000000001, 630000000000000003
ANN, BEN, CAT = 650000000000000001, 650000000000000002, 650000000000000003
TOKEN_PATH = "/api/oauth2/token"


@pytest.fixture
async def h(tmp_path):
    """Ann, Ben and Cat pay for Gold and are linked; a first refresh has stored and applied everything."""
    h = await SyncHarness(tmp_path / "bot.sqlite3").start()
    h.patreon.add_tier("2001", "Gold", 1000)
    for pid, name, discord_id in (("p-ann", "Ann", ANN), ("p-ben", "Ben", BEN), ("p-cat", "Cat", CAT)):
        h.patreon.add_user(pid, name)
        h.patreon.set_membership(pid, "active_patron", tier_ids=["2001"])
        h.link_member(discord_id, {VIP} if discord_id == ANN else set())
        await h.store.save_link(discord_id, pid, GUILD, "oauth")
    await h.store.map_tier_role(GUILD, "2001", GOLD)
    try:
        first = await h.services.refresh.run("setup")
        await h.services.jobs.wait_idle(5)
        assert first.ok and all(GOLD in h.guild.members[user] for user in (ANN, BEN, CAT))
        yield h
    finally:
        await h.close()


def rewrite_member_pages(h, rewrite):
    """Fake Patreon passes every members-listing page it serves through `rewrite(body, first_page)`."""
    h.patreon.rewrite_responses(r"/members$", lambda body, query: rewrite(body, "page[cursor]" not in query))


@contextlib.contextmanager
def table_gone(db_path: Path, table: str) -> Iterator[None]:
    """While inside, the bot's database has no `table` (renamed away by another connection, as a bad restore or a
    stray tool would), so the bot's next query of it fails for real; the table is put back on the way out."""
    aside = f"{table}_aside"
    with contextlib.closing(sqlite3.connect(db_path, timeout=5)) as db:
        db.execute(f"ALTER TABLE {table} RENAME TO {aside}")
        db.commit()
        try:
            yield
        finally:
            db.execute(f"ALTER TABLE {aside} RENAME TO {table}")
            db.commit()


async def assert_nothing_changed(h, report):
    await h.services.jobs.wait_idle(5)
    assert not report.ok
    assert report.snapshots_forgotten == 0 and report.jobs_queued == 0
    for pid in ("p-ann", "p-ben", "p-cat"):
        assert await h.store.get_membership(pid) is not None, f"{pid} was forgotten"
    assert all(GOLD in h.guild.members[user] for user in (ANN, BEN, CAT)), "a paying patron lost Gold"
    fact = await h.store.get_fact(LAST_REFRESH)
    assert isinstance(fact, dict) and fact["ok"] is False and fact["detail"] == report.detail


# -- 1. a listing that cannot be complete ------------------------------------------------------------------


async def test_a_first_page_without_cursor_short_of_the_total_is_not_the_whole_listing(h):
    h.services.refresh.page_size = 1

    def drop_cursor(body, first_page):
        if first_page:  # 200, one member, `total` still 3, but no cursor and no links.next
            body = {**body, "meta": {"pagination": {"total": body["meta"]["pagination"]["total"]}}}
            body.pop("links", None)
        return body

    rewrite_member_pages(h, drop_cursor)
    report = await h.services.refresh.run("glitch")
    await assert_nothing_changed(h, report)
    assert report.members_listed == 1
    assert "Patreon reported 3" in report.detail


async def test_a_member_listed_without_its_user_is_matched_back_by_member_id(h):
    def drop_user(body, first_page):
        body["data"][0].get("relationships", {}).pop("user", None)
        return body

    rewrite_member_pages(h, drop_user)
    report = await h.services.refresh.run("glitch")
    await h.services.jobs.wait_idle(5)
    assert report.ok and report.members_without_user == 0 and report.snapshots_forgotten == 0
    for pid in ("p-ann", "p-ben", "p-cat"):
        assert await h.store.get_membership(pid) is not None
    assert all(GOLD in h.guild.members[user] for user in (ANN, BEN, CAT))


async def test_without_a_total_a_listing_may_not_forget_most_members(h):
    def one_member_no_meta(body, first_page):
        return {**body, "data": body["data"][:1], "meta": {}, "links": {}}

    rewrite_member_pages(h, one_member_no_meta)
    report = await h.services.refresh.run("glitch")
    await assert_nothing_changed(h, report)
    assert "no total" in report.detail


async def test_without_a_total_an_ordinary_departure_is_still_forgotten(h):
    h.patreon.remove_membership("p-cat")
    rewrite_member_pages(h, lambda body, first_page: {**body, "meta": {}})
    report = await h.services.refresh.run("cat left")
    await h.services.jobs.wait_idle(5)
    assert report.ok, report.detail
    assert report.snapshots_forgotten == 1 and h.guild.members[CAT] == set()


async def test_a_member_leaving_mid_listing_does_not_fail_the_refresh(h):
    """The total shrinks between pages; the listing is complete against the smaller total."""
    h.services.refresh.page_size = 1
    pages = {"n": 0}

    def leave_after_first_page(body, first_page):
        pages["n"] += 1
        if pages["n"] == 1:
            h.patreon.remove_membership("p-cat")
        return body

    rewrite_member_pages(h, leave_after_first_page)
    report = await h.services.refresh.run("mid-listing departure")
    await h.services.jobs.wait_idle(5)
    assert report.ok, report.detail
    assert report.members_listed == 2 and h.guild.members[CAT] == set()


# -- 3. the token endpoint: only an OAuth refusal is a refusal --------------------------------------------


async def test_a_403_from_the_token_endpoint_does_not_kill_the_creator_token(h):
    h.clock.advance(days=2)  # the stored creator pair is due for refresh, still valid for days
    h.patreon.fail_next(TOKEN_PATH, status=403, count=1)  # an edge/WAF hiccup
    report = await h.services.refresh.run("scheduled")
    assert report.ok, report.detail
    assert await h.store.get_fact(CREATOR_REJECTED_FACT) is None
    calls = h.patreon.count(TOKEN_PATH)
    assert (await h.services.refresh.run("later")).ok
    assert h.patreon.count(TOKEN_PATH) == calls + 1, "the refresh is tried again, and works"


async def test_a_failed_refresh_of_an_expired_creator_token_fails_the_run_but_not_for_good(h):
    h.clock.advance(days=9)  # past the stored pair's expiry: it can't be used as it is
    h.patreon.fail_next(TOKEN_PATH, status=400, count=1)  # 400 without `invalid_grant`
    report = await h.services.refresh.run("scheduled")
    assert not report.ok and "could not be refreshed for now" in report.detail
    assert await h.store.get_fact(CREATOR_REJECTED_FACT) is None
    assert (await h.services.refresh.run("later")).ok


async def test_invalid_grant_still_stops_asking_for_the_creator_token(h):
    h.patreon.tokens.rotate(h.patreon.creator_refresh_token)  # rotated elsewhere: ours is dead
    h.clock.advance(days=2)
    assert not (await h.services.refresh.run("scheduled")).ok
    assert await h.store.get_fact(CREATOR_REJECTED_FACT) is not None


async def test_a_403_from_the_token_endpoint_keeps_a_patron_token(h):
    far = datetime.now(UTC) + timedelta(days=3)
    await h.store.save_tokens(patron_subject("p-ann"), TokenPair("a", "r", far))
    h.patreon.fail_next(TOKEN_PATH, status=403, count=1)
    assert (await h.services.refresh.run("scheduled")).ok
    assert await h.store.get_tokens(patron_subject("p-ann")) == TokenPair("a", "r", far)


async def test_invalid_grant_drops_a_patron_token(h):
    far = datetime.now(UTC) + timedelta(days=3)
    await h.store.save_tokens(patron_subject("p-ann"), TokenPair("a", "not-a-refresh-token", far))
    assert (await h.services.refresh.run("scheduled")).ok
    assert await h.store.get_tokens(patron_subject("p-ann")) is None
    assert await h.store.get_link_by_discord(ANN) is not None, "the link stays"


# -- 4. Discord failing while the refresh plans --------------------------------------------------------------


async def test_a_discord_failure_while_planning_queues_the_member_instead_of_crashing(h):
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[])
    await h.deliver("members:pledge:delete", "p-ben")  # recorded, not applied yet
    gateway = h.gateway
    gateway.complete = False  # a guild not fully chunked: the planner asks Discord
    failed = []

    async def lookup(guild_id, user_id):
        if user_id == BEN and not failed:
            failed.append(user_id)
            raise RoleChangeError("Discord failed to look the member up (503)", permanent=False)
        return frozenset(h.guild.members[user_id])

    gateway.member_roles = lookup
    gateway.cached_member_roles = lambda guild_id, user_id: None
    report = await h.services.refresh.run("scheduled")
    assert report.ok, report.detail
    assert failed == [BEN] and report.members_unchecked == 1 and report.jobs_queued >= 1
    fact = await h.store.get_fact(LAST_REFRESH)
    assert isinstance(fact, dict) and fact["cause"] == "scheduled" and fact["members_unchecked"] == 1
    assert (await h.store.webhook_event_counts()).get("superseded") == 1
    await h.services.jobs.wait_idle(5)
    assert h.guild.members[BEN] == set(), "the queued job planned Ben again and took Gold"


async def test_an_unexpected_error_is_recorded_and_leaves_webhook_events_pending(h):
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[])
    await h.deliver("members:pledge:delete", "p-ben")
    with table_gone(h.db_path, "role_grants"):  # the database fails under the running bot, mid-refresh
        report = await h.services.refresh.run("scheduled")
    assert not report.ok and "OperationalError: no such table: role_grants" in report.detail
    fact = await h.store.get_fact(LAST_REFRESH)
    assert isinstance(fact, dict) and fact["ok"] is False and fact["cause"] == "scheduled"
    counts = await h.store.webhook_event_counts()
    assert counts.get("superseded") is None and counts.get("pending") == 1, "the event still has work to do"
    await h.apply()
    assert h.guild.members[BEN] == set()
