"""Real-world documents the parser must not misread, made by the fake Patreon and read by the real client and bot.

Each quirk is arranged on the fake (`CampaignState.omit_*_attributes`, `delete_account`, `blank_identity`, a v1
`pledges:*` trigger), served over HTTP on 127.0.0.1, and read by the real `PatreonClient` or the real services.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.domain.guild_settings import GuildSettings
from bot.guild_admin.health import health_report
from bot.patreon import PatreonBadResponse, PatreonClient
from bot.patreon.client import CAMPAIGN_REQUEST_FIELDS, MEMBER_REQUEST_FIELDS
from bot.store import LAST_REFRESH, WEBHOOK_LAST_SEEN
from fakes.patreon import FakePatreon
from fakes.sync_harness import GUILD, SyncHarness

REDIRECT = "http://127.0.0.1:8080/patreon/callback"
GOLD_ROLE, ANN, BEN = 630000000000000001, 650000000000000001, 650000000000000002


@pytest.fixture
async def fake() -> AsyncIterator[FakePatreon]:
    server = FakePatreon(redirect_uris=(REDIRECT,))
    await server.start()
    server.add_tier("1001", "Gold", 1000)
    for user_id, name in (("u1", "Ann"), ("u2", "Ben")):
        server.add_user(user_id, name)
        server.set_membership(user_id, tier_ids=["1001"])
    yield server
    await server.close()


@pytest.fixture
async def client(fake: FakePatreon) -> AsyncIterator[PatreonClient]:
    async with aiohttp.ClientSession() as session:
        yield PatreonClient(
            session,
            base_url=fake.base_url,
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            redirect_uri=REDIRECT,
            user_agent="patreon-role-sync-tests/1.0",
            retry_base_delay=0.0,
        )


async def listing(client: PatreonClient, fake: FakePatreon) -> list:
    """Every page with every member read: the client decodes a member when it is first read, and refuses then."""
    pages = [page async for page in client.iter_member_pages(fake.creator_access_token, fake.state.id)]
    assert all(isinstance(page.members, tuple) for page in pages)
    return pages


def member_id(fake: FakePatreon, user_id: str) -> str:
    return fake.state.member_by_user[user_id]


# ---------------------------------------------------------------- the client refuses what it would misread


async def test_a_tier_without_amount_cents_is_refused_not_read_as_free(client, fake) -> None:
    fake.state.omit_tier_attributes("1001", "amount_cents")
    with pytest.raises(PatreonBadResponse, match=r"tier 1001 lacks the requested attribute.*amount_cents"):
        await client.get_campaign(fake.creator_access_token, fake.state.id)
    with pytest.raises(PatreonBadResponse, match="amount_cents"):
        await listing(client, fake)
    with pytest.raises(PatreonBadResponse, match="amount_cents"):
        await client.get_member(fake.creator_access_token, member_id(fake, "u1"))


async def test_a_member_without_patron_status_is_refused_not_read_as_never_pledged(client, fake) -> None:
    fake.state.omit_member_attributes("u1", "patron_status")
    with pytest.raises(PatreonBadResponse, match="patron_status"):
        await client.get_member(fake.creator_access_token, member_id(fake, "u1"))
    with pytest.raises(PatreonBadResponse, match="patron_status"):
        await listing(client, fake)
    with pytest.raises(PatreonBadResponse, match="patron_status"):
        await client.get_identity(fake.issue_tokens("u1").access_token)
    other = await client.get_member(fake.creator_access_token, member_id(fake, "u2"))
    assert other.patron_status is not None  # only the quirky member's documents are unusable


async def test_what_the_parser_holds_the_answer_to_is_exactly_what_the_client_asked_for(client, fake) -> None:
    token = fake.creator_access_token
    await client.get_member(token, member_id(fake, "u1"))
    await listing(client, fake)
    await client.get_identity(fake.issue_tokens("u1").access_token)
    await client.get_campaign(token, fake.state.id)
    sent = [query for _method, path, query in fake.calls if path.startswith("/api/oauth2/v2/")]
    expected = [MEMBER_REQUEST_FIELDS] * 3 + [CAMPAIGN_REQUEST_FIELDS]
    for query, fields in zip(sent, expected, strict=True):
        asked = {key[7:-1]: tuple(value.split(",")) for key, value in query.items() if key.startswith("fields[")}
        assert asked == {kind: tuple(names) for kind, names in fields.items()}


async def test_an_explicit_null_patron_status_is_still_a_free_member(client, fake) -> None:
    fake.set_membership("u1", patron_status=None, tier_ids=[], last_charge_status=None)
    snapshot = await client.get_member(fake.creator_access_token, member_id(fake, "u1"))
    assert snapshot.patron_status is None and snapshot.patreon_user_id == "u1"


@pytest.mark.parametrize("shape", ["empty", "no_id", "null"])
async def test_an_identity_naming_nobody_is_refused(client, fake, shape: str) -> None:
    fake.state.blank_identity("u1", shape)
    with pytest.raises(PatreonBadResponse):
        await client.get_identity(fake.issue_tokens("u1").access_token)
    assert (await client.get_identity(fake.issue_tokens("u2").access_token)).user.id == "u2"


async def test_a_deleted_account_is_listed_without_a_user_and_counted_in_the_total(client, fake) -> None:
    fake.state.delete_account("u2")
    (page,) = await listing(client, fake)
    assert page.total == 2
    assert sorted((m.patreon_user_id or "-", m.member_id) for m in page.members) == [
        ("-", member_id(fake, "u2")),
        ("u1", member_id(fake, "u1")),
    ]


# ---------------------------------------------------------------- the bot: unusable means nothing changes


@pytest.fixture
async def h(tmp_path) -> AsyncIterator[SyncHarness]:
    """Ann and Ben pay for Gold and are linked; a first refresh stored and applied everything."""
    h = await SyncHarness(tmp_path / "bot.sqlite3").start()
    h.patreon.add_tier("2001", "Gold", 1000)
    for pid, name, discord_id in (("p-ann", "Ann", ANN), ("p-ben", "Ben", BEN)):
        h.patreon.add_user(pid, name)
        h.patreon.set_membership(pid, "active_patron", tier_ids=["2001"])
        h.link_member(discord_id)
        await h.store.save_link(discord_id, pid, GUILD, "oauth")
    await h.store.map_tier_role(GUILD, "2001", GOLD_ROLE)
    try:
        first = await h.services.refresh.run("setup")
        await h.services.jobs.wait_idle(5)
        assert first.ok and all(GOLD_ROLE in h.guild.members[user] for user in (ANN, BEN))
        yield h
    finally:
        await h.close()


async def check_lines(h: SyncHarness) -> list[str]:
    """The `/patreon-admin check` lines from the data the cog gives it."""
    facts = {key: await h.store.get_fact(key) for key in (WEBHOOK_LAST_SEEN, LAST_REFRESH)}
    lines = health_report(
        GUILD, h.gateway, GuildSettings(guild_id=GUILD), await h.store.get_tier_roles(GUILD), {}, facts
    )
    return [line.render() for line in lines]


async def test_a_refresh_that_reads_a_tier_without_its_price_changes_nothing_and_says_why(h) -> None:
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[])  # would lose Gold on a usable listing
    h.patreon.state.omit_tier_attributes("2001", "amount_cents")
    report = await h.services.refresh.run("quirk")
    await h.services.jobs.wait_idle(5)
    assert not report.ok and "amount_cents" in report.detail and "nothing was removed" in report.detail
    assert report.snapshots_forgotten == 0 and report.jobs_queued == 0
    assert GOLD_ROLE in h.guild.members[BEN]
    assert any("⚠️ Last refresh" in line and "amount_cents" in line for line in await check_lines(h))


async def test_a_webhook_member_without_patron_status_is_retried_and_nothing_is_removed(h) -> None:
    h.patreon.set_membership("p-ann", "former_patron", tier_ids=[])
    h.patreon.state.omit_member_attributes("p-ann", "patron_status")
    before = await h.store.get_membership("p-ann")
    status, _ = await h.deliver("members:pledge:delete", "p-ann")
    assert status == 202
    await h.services.webhook_applier.apply_due()
    await h.services.jobs.wait_idle(5)
    assert await h.store.get_membership("p-ann") == before  # the unusable re-fetch stored nothing
    assert GOLD_ROLE in h.guild.members[ANN]
    counts = await h.store.webhook_event_counts()
    assert counts.get("pending") == 1, counts  # parked for a retry with back-off, not applied, not dropped


async def test_a_refresh_with_deleted_accounts_completes_and_removes_nothing_wrongly(h) -> None:
    """Two members without a user: a stranger's deleted account (unlinkable, counted) and Ann, whose listed
    member has lost its user (matched back by its member id, so she keeps her snapshot and her role)."""
    h.patreon.add_user("p-gone", "Gone")
    h.patreon.set_membership("p-gone", "active_patron", tier_ids=["2001"])
    h.patreon.state.delete_account("p-gone")
    h.patreon.state.delete_account("p-ann")
    h.patreon.set_membership("p-ben", "former_patron", tier_ids=[])  # a real change the refresh must still apply
    report = await h.services.refresh.run("deleted accounts")
    await h.services.jobs.wait_idle(5)
    assert report.ok, report.detail
    assert (report.members_listed, report.members_without_user, report.snapshots_forgotten) == (3, 1, 0)
    assert "1 member(s) without a Patreon account (deleted) can't be linked" in report.detail
    assert GOLD_ROLE in h.guild.members[ANN]
    assert GOLD_ROLE not in h.guild.members[BEN]
    ann = await h.store.get_membership("p-ann")
    assert ann is not None and ann.member_id == h.patreon.state.member_by_user["p-ann"]
    lines = await check_lines(h)
    assert any("1 member(s) without a Patreon account (deleted) can't be linked" in line for line in lines)


async def test_a_listing_short_of_its_total_is_still_incomplete_with_deleted_accounts(h) -> None:
    h.patreon.add_user("p-gone", "Gone")
    h.patreon.set_membership("p-gone", "active_patron", tier_ids=["2001"])
    h.patreon.state.delete_account("p-gone")
    h.patreon.remove_membership("p-ben")  # absent: only a complete listing may act on that

    h.patreon.state.live_count += 1  # Patreon's total counts one member more than its pages list
    report = await h.services.refresh.run("short")
    await h.services.jobs.wait_idle(5)
    assert not report.ok and "and 1 without a Patreon account" in report.detail
    assert GOLD_ROLE in h.guild.members[BEN]
    assert report.snapshots_forgotten == 0 and await h.store.get_membership("p-ben") is not None


# ---------------------------------------------------------------- API v1 deliveries


async def test_a_v1_delivery_is_answered_warned_about_once_and_changes_nothing(h, caplog) -> None:
    h.patreon.set_membership("p-ann", "former_patron", tier_ids=[])
    caplog.set_level(logging.DEBUG, logger="bot.web.webhook_receiver")
    answers = [await h.deliver(trigger, "p-ann") for trigger in ("pledges:delete", "pledges:delete")]
    assert [status for status, _ in answers] == [200, 200]
    assert json.loads(answers[0][1])["status"] == "ignored"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "bot.web.webhook_receiver"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "pledges:delete" in warnings[0].getMessage() and "members:pledge:create" in warnings[0].getMessage()
    assert await h.store.webhook_event_counts() == {}
    assert await h.store.get_fact(WEBHOOK_LAST_SEEN) is None  # check must not say webhooks arrive
    await h.apply()
    assert GOLD_ROLE in h.guild.members[ANN]


async def test_a_v1_body_is_the_pledge_shape(h) -> None:
    body = json.loads(h.patreon.render_member_webhook_body("pledges:create", "p-ann"))
    assert body["data"]["type"] == "pledge"
    assert body["data"]["relationships"]["patron"]["data"] == {"id": "p-ann", "type": "user"}
    assert body["data"]["attributes"]["amount_cents"] == 1000


async def test_an_unsigned_v1_delivery_is_still_refused(h, caplog) -> None:
    body = h.patreon.render_member_webhook_body("pledges:create", "p-ann")
    status, _ = await h.post(body, trigger="pledges:create", sign_it=False)
    assert status == 401
    assert not any("API v1" in r.getMessage() for r in caplog.records)
