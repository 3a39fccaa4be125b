"""Migration 8 turns a single-campaign database into campaign-scoped rows without losing a link, a grant or a
queued job (issue 10, item 3). Real SQLite files built by migrations 1-7 with rows as the previous version wrote
them; then the store opens them."""

import json
import sqlite3
from datetime import UTC, datetime, timedelta

from bot.domain.models import MembershipSnapshot, PatronStatus
from bot.store import Store
from bot.store.campaigns import UNKNOWN_CAMPAIGN
from bot.store.codec import encode_snapshot
from bot.store.schema import MIGRATIONS

BEFORE_CAMPAIGNS = 7
CAMPAIGN = "7654321"
GUILD, ROLE = 61, 901
#: Now, not a fixed date: the store ages tombstones on the wall clock (one day), so a fixed date stopped holding one
#: a day after it.
NOW = datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def old_database(path, *, campaign_known: bool) -> None:
    """What a single-campaign install left behind: a link, a membership (with and without a campaign id), a
    tombstone, tiers, a grant, a queued role job, a pending webhook event and the creator's tokens."""
    snapshot = MembershipSnapshot("m-ann", CAMPAIGN, "p-ann", patron_status=PatronStatus.ACTIVE, observed_at=NOW)
    with sqlite3.connect(path) as raw:
        for version, script in enumerate(MIGRATIONS[:BEFORE_CAMPAIGNS], start=1):
            raw.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
        raw.execute("INSERT INTO links VALUES (1001, 'p-ann', NULL, 'oauth', ?)", (iso(NOW),))
        raw.execute("INSERT INTO links VALUES (1002, 'p-bob', ?, 'admin', ?)", (GUILD, iso(NOW)))
        raw.execute(
            "INSERT INTO memberships (patreon_user_id, member_id, campaign_id, social_discord_id, snapshot,"
            " observed_at) VALUES ('p-ann', 'm-ann', ?, NULL, ?, ?)",
            (CAMPAIGN if campaign_known else None, encode_snapshot(snapshot), iso(NOW)),
        )
        raw.execute(
            "INSERT INTO memberships (patreon_user_id, member_id, campaign_id, social_discord_id, snapshot,"
            " observed_at) VALUES ('p-bob', 'm-bob', NULL, NULL, ?, ?)",
            (encode_snapshot(snapshot), iso(NOW)),
        )
        raw.execute("INSERT INTO membership_tombstones VALUES ('p-cat', 'm-cat', ?)", (iso(NOW),))
        if campaign_known:
            raw.execute("INSERT INTO campaign_tiers VALUES ('2001', ?, 'Gold', 1000, 3, 1)", (CAMPAIGN,))
            raw.execute("INSERT INTO service_state VALUES ('campaign_id', ?)", (json.dumps(CAMPAIGN),))
        raw.execute("INSERT INTO tier_roles VALUES (?, '2001', ?)", (GUILD, ROLE))
        raw.execute("INSERT INTO role_grants VALUES (?, 1001, ?, ?, 'linked')", (GUILD, ROLE, iso(NOW)))
        raw.execute(
            "INSERT INTO role_jobs (guild_id, discord_user_id, cause, state, seq, next_attempt_at, enqueued_at)"
            " VALUES (?, 1001, 'webhook members:update', 'pending', 3, ?, ?)",
            (GUILD, iso(NOW), iso(NOW)),
        )
        raw.execute(
            "INSERT INTO webhook_events (received_at, trigger, resource_type, member_id, patreon_user_id,"
            " campaign_id, body_sha256, state, next_attempt_at) VALUES (?, 'members:update', 'member', 'm-ann',"
            " 'p-ann', ?, 'x', 'pending', ?)",
            (iso(NOW), CAMPAIGN, iso(NOW)),
        )
    raw.close()


async def test_a_single_campaign_database_keeps_every_link_grant_and_queued_job(tmp_path):
    path = tmp_path / "bot.sqlite3"
    old_database(path, campaign_known=True)
    store = await Store.open(path)
    try:
        assert await store.schema_version() == len(MIGRATIONS) > BEFORE_CAMPAIGNS
        assert [link.patreon_user_id for link in await store.all_links()] == ["p-ann", "p-bob"]
        assert (await store.get_link_by_discord(1002)).by_hand
        ann = await store.get_membership("p-ann", CAMPAIGN)
        assert ann is not None and ann.patron_status is PatronStatus.ACTIVE
        assert await store.get_membership("p-bob", CAMPAIGN) is not None, "a row without a campaign id joins it"
        assert await store.get_membership("p-ann", "another") is None
        assert await store.membership_count(CAMPAIGN) == 2
        assert set(await store.get_tiers(CAMPAIGN)) == {"2001"} and await store.get_tiers("another") == {}
        assert await store.granted_roles(GUILD, 1001) == frozenset({ROLE})
        jobs = await store.pending_role_jobs()
        assert [(job.guild_id, job.user_id, job.seq) for job in jobs] == [(GUILD, 1001, 3)]
        events = await store.due_webhook_events(NOW + timedelta(seconds=1))
        assert [(e.member_id, e.addressed_campaign_id) for e in events] == [("m-ann", CAMPAIGN)]
        late = MembershipSnapshot("m-cat", CAMPAIGN, "p-cat", observed_at=NOW - timedelta(minutes=1))
        assert await store.save_memberships([late], campaign_id=CAMPAIGN) == 0, "the tombstone still holds"
        assert await store.get_fact("campaign_id") == CAMPAIGN
    finally:
        await store.close()


async def test_a_database_whose_campaign_was_never_told_is_re_keyed_once_the_creator_token_tells_it(tmp_path):
    path = tmp_path / "bot.sqlite3"
    old_database(path, campaign_known=False)
    store = await Store.open(path)
    try:
        assert await store.membership_count(UNKNOWN_CAMPAIGN) == 2
        assert await store.get_membership("p-ann", CAMPAIGN) is None
        events = await store.due_webhook_events(NOW + timedelta(seconds=1))
        assert [e.addressed_campaign_id for e in events] == [UNKNOWN_CAMPAIGN]
        assert await store.adopt_unknown_campaign(CAMPAIGN) == 4  # 2 memberships, the tombstone, the event
        assert await store.membership_count(UNKNOWN_CAMPAIGN) == 0
        assert (await store.get_membership("p-ann", CAMPAIGN)).member_id == "m-ann"
        events = await store.due_webhook_events(NOW + timedelta(seconds=1))
        assert [e.addressed_campaign_id for e in events] == [CAMPAIGN]
        assert [link.discord_user_id for link in await store.all_links()] == [1001, 1002]
        assert len(await store.pending_role_jobs()) == 1
        assert await store.adopt_unknown_campaign(CAMPAIGN) == 0, "once"
    finally:
        await store.close()
