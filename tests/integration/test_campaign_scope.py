"""Many campaigns in one install (issue 10, item 3 and the receiving half of item 5), seeded at the store level.

The harness's own campaign (A) comes from the `.env` creator tokens; campaign B is connected through the registry
API the connect flow uses, and a second server is bound to it. Real SQLite, real HTTP, real signatures."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus, Tier, TokenPair
from bot.store.campaigns import ENV_SOURCE, OAUTH_SOURCE
from bot.web.webhook_receiver import sign
from fakes.sync_harness import GUILD, SECRET, SyncHarness

CAMPAIGN_A = "7654321"
CAMPAIGN_B = "8888888"
GUILD_B = 610000000000000002
SECRET_B = "campaign-b-webhook-secret"
TIER_A, TIER_B = "2001", "3001"
ROLE_A, ROLE_B = 701, 801
ANN, BEN = 1001, 1002  # Ann pledges to A only, Ben to B only; both are members of both servers


def membership(user: str, campaign: str, tier: str, at: datetime) -> MembershipSnapshot:
    return MembershipSnapshot(
        f"m-{user}-{campaign}",
        campaign,
        user,
        patron_status=PatronStatus.ACTIVE,
        entitled_tier_ids=(tier,),
        currently_entitled_amount_cents=500,
        observed_at=at,
    )


@pytest.fixture
async def two(tmp_path):
    h = await SyncHarness(tmp_path / "bot.sqlite3", CAMPAIGN_A).start()
    try:
        h.patreon.add_tier(TIER_A, "Gold", 500)
        h.patreon.add_user("p-ann", "Ann")
        h.patreon.set_membership("p-ann", "active_patron", tier_ids=[TIER_A])
        store, services = h.store, h.services
        assert store is not None and services is not None
        await services.campaign.campaign_id()  # what the bot's start-up tier load does: the creator token tells it
        h.gateway.add_guild(GUILD_B)
        await store.save_settings(GuildSettings(guild_id=GUILD_B, enabled=True))
        pair = TokenPair("b-access", "b-refresh", datetime.now(UTC) + timedelta(days=30))
        await services.campaigns.add(CAMPAIGN_B, pair, SECRET_B, webhook_id="hook-b")
        await services.campaigns.bind_guild(GUILD_B, CAMPAIGN_B, by=4242)
        await store.save_tiers(CAMPAIGN_B, [Tier(TIER_B, "B-tier", 500)])
        await store.map_tier_role(GUILD, TIER_A, ROLE_A)
        await store.map_tier_role(GUILD_B, TIER_B, ROLE_B)
        now = datetime.now(UTC)
        await store.save_membership(membership("p-ann", CAMPAIGN_A, TIER_A, now), CAMPAIGN_A)
        await store.save_membership(membership("p-ben", CAMPAIGN_B, TIER_B, now), CAMPAIGN_B)
        for user, patreon in ((ANN, "p-ann"), (BEN, "p-ben")):
            h.link_member(user)
            h.gateway.guilds[GUILD_B].members[user] = set()
            await store.save_link(user, patreon, None, "oauth")
        yield h
    finally:
        await h.close()


def roles(h: SyncHarness, guild: int, user: int) -> set[int]:
    return set(h.gateway.guilds[guild].members[user])


async def test_each_server_follows_its_own_campaign_and_the_env_campaign_is_imported(two):
    services = two.services
    assert (await services.reconcile.campaign_for(GUILD)) is services.campaign
    assert (await services.reconcile.campaign_for(GUILD_B)) is services.campaigns.get(CAMPAIGN_B)
    await services.campaign.campaign_id()  # the .env campaign's id, told by the creator token
    env = await two.store.get_campaign(CAMPAIGN_A)
    assert env is not None and env.source == ENV_SOURCE and env.token_subject == "creator"
    connected = await two.store.get_campaign(CAMPAIGN_B)
    assert connected is not None and connected.source == OAUTH_SOURCE and connected.webhook_secret == SECRET_B
    assert (await two.store.guild_binding(GUILD_B)).bound_by == 4242
    assert "campaign-b-webhook-secret" not in repr(connected)


async def test_a_patron_of_campaign_a_gets_nothing_in_campaign_bs_server(two):
    reconcile = two.services.reconcile
    for guild in (GUILD, GUILD_B):
        for user in (ANN, BEN):
            await reconcile.reconcile_member(guild, user, "test")
    assert roles(two, GUILD, ANN) == {ROLE_A} and roles(two, GUILD_B, ANN) == set()
    assert roles(two, GUILD_B, BEN) == {ROLE_B} and roles(two, GUILD, BEN) == set()


async def test_a_refresh_of_campaign_a_never_forgets_or_touches_campaign_b(two):
    await two.services.reconcile.reconcile_member(GUILD_B, BEN, "test")
    report = await two.services.refresh.run("scheduled")
    assert not report.ok, "campaign B's fake tokens are refused, so its refresh fails (and removes nothing)"
    last_a = await two.store.get_fact("last_refresh")
    assert isinstance(last_a, dict) and last_a["ok"], "campaign A refreshed all the same"
    last_b = await two.store.get_fact(f"last_refresh:{CAMPAIGN_B}")
    assert isinstance(last_b, dict) and not last_b["ok"] and "nothing was removed" in last_b["detail"]
    assert (await two.store.get_campaign(CAMPAIGN_B)).state == "revoked", "Patreon refused B's refresh token"
    assert (await two.store.get_campaign(CAMPAIGN_A)).state == "active"
    calls = len(two.patreon.calls)
    assert not (await two.services.refresh.run("again")).ok
    assert not [p for _m, p, _q in two.patreon.calls[calls:] if p.endswith("/token")], "a refused pair isn't retried"
    assert await two.store.get_membership("p-ben", CAMPAIGN_B) is not None, "A's listing doesn't list Ben"
    assert await two.store.get_membership("p-ann", CAMPAIGN_A) is not None
    await two.services.jobs.wait_idle(5)
    assert roles(two, GUILD_B, BEN) == {ROLE_B} and roles(two, GUILD, ANN) == {ROLE_A}
    assert roles(two, GUILD, BEN) == set() and roles(two, GUILD_B, ANN) == set()


async def post(h: SyncHarness, path: str, body: bytes, secret: str) -> int:
    assert h._session is not None
    url = h.url.replace("/patreon/webhook", path)
    headers = {"X-Patreon-Event": "members:update", "X-Patreon-Signature": sign(body, secret)}
    async with h._session.post(url, data=body, headers=headers) as response:
        return response.status


def member_body(member_id: str, user: str, campaign: str) -> bytes:
    return json.dumps(
        {
            "data": {
                "type": "member",
                "id": member_id,
                "relationships": {
                    "user": {"data": {"type": "user", "id": user}},
                    "campaign": {"data": {"type": "campaign", "id": campaign}},
                },
            }
        }
    ).encode()


async def test_a_body_signed_with_one_campaigns_secret_is_refused_at_another_campaigns_url(two):
    await two.services.campaign.campaign_id()
    body = member_body("m-ben", "p-ben", CAMPAIGN_B)
    assert await post(two, f"/patreon/webhook/{CAMPAIGN_A}", body, SECRET_B) == 401
    assert await post(two, f"/patreon/webhook/{CAMPAIGN_B}", body, SECRET) == 401
    assert await post(two, "/patreon/webhook", body, SECRET_B) == 401, "the legacy URL takes the .env secret only"
    assert await post(two, "/patreon/webhook/999", body, SECRET_B) == 401, "an unknown campaign: the same 401"
    assert await two.store.webhook_event_counts() == {}, "nothing was recorded"
    assert await post(two, "/patreon/webhook/not-a-number", body, SECRET_B) == 404
    assert await post(two, f"/patreon/webhook/{CAMPAIGN_B}", body, SECRET_B) == 202
    assert await post(two, f"/patreon/webhook/{CAMPAIGN_A}", member_body("m-x", "p-x", CAMPAIGN_A), SECRET) == 202
    events = await two.store.due_webhook_events(datetime.now(UTC) + timedelta(seconds=1))
    assert sorted(e.addressed_campaign_id or "" for e in events) == [CAMPAIGN_A, CAMPAIGN_B]


async def test_a_webhook_for_campaign_b_is_applied_with_bs_token_and_never_reaches_as_server(two):
    """B's creator token is fake, so the re-fetch fails and the event waits: nothing of A's is used for it, and
    no role changes in A's server."""
    body = member_body("m-ben", "p-ben", CAMPAIGN_B)
    assert await post(two, f"/patreon/webhook/{CAMPAIGN_B}", body, SECRET_B) == 202
    fetches_before = sum(1 for _m, path, _q in two.patreon.calls if "/members/" in path)
    await two.services.webhook_applier.apply_due()
    counts = await two.store.webhook_event_counts()
    assert counts.get("pending", 0) + counts.get("failed", 0) == 1 and not counts.get("done")
    assert sum(1 for _m, path, _q in two.patreon.calls if "/members/" in path) >= fetches_before
    assert roles(two, GUILD, BEN) == set()


async def test_a_server_bound_to_nothing_can_not_turn_itself_on_and_no_command_binds_it(two):
    other = 610000000000000009
    two.gateway.add_guild(other)
    admin = two.services.admin
    with pytest.raises(Exception) as refused:
        await admin.update_settings(other, enabled=True)
    assert "ALLOWED_GUILD_IDS" in str(refused.value) or "can't tell" in str(refused.value)
    assert await two.store.guild_binding(other) is None
    assert await two.services.reconcile.participation_refusal(other) is not None
    with pytest.raises(ValueError):
        await two.store.bind_guild(other, "12345", by=1)  # a campaign nobody connected
    with pytest.raises(ValueError):
        await two.services.campaigns.bind_guild(other, "12345", by=1)
    assert await two.store.guild_binding(other) is None


async def test_a_disconnected_campaigns_server_stops_acting_and_keeps_its_roles(two):
    await two.services.reconcile.reconcile_member(GUILD_B, BEN, "test")
    assert await two.services.campaigns.remove(CAMPAIGN_B) == [GUILD_B]
    # Disconnected, it follows no campaign, not the .env one either, and is no rival to the creator's server.
    assert "doesn't follow a Patreon campaign" in (await two.services.reconcile.participation_refusal(GUILD_B) or "")
    assert await two.services.reconcile.participation_refusal(GUILD) is None
    assert await two.store.get_tokens(f"campaign:{CAMPAIGN_B}") is None
    await two.services.reconcile.reconcile_member(GUILD_B, BEN, "test")
    assert roles(two, GUILD_B, BEN) == {ROLE_B}, "roles stay until an admin's final sync"
    body = member_body("m-ben", "p-ben", CAMPAIGN_B)
    assert await post(two, f"/patreon/webhook/{CAMPAIGN_B}", body, SECRET_B) == 401


def test_the_env_creator_tokens_and_webhook_secret_are_optional_but_go_together():
    from bot.config import ConfigError, load_config

    base = {
        "DISCORD_TOKEN": "t",
        "PATREON_CLIENT_ID": "id",
        "PATREON_CLIENT_SECRET": "secret",
        "PATREON_REDIRECT_URI": "https://roles.example.com/patreon/callback",
    }
    assert not load_config(base, env_file=None).has_env_campaign
    tokens = {"PATREON_CREATOR_ACCESS_TOKEN": "a", "PATREON_CREATOR_REFRESH_TOKEN": "r"}
    assert load_config({**base, **tokens, "PATREON_WEBHOOK_SECRET": "w"}, env_file=None).has_env_campaign
    for partial, named in (
        ({"PATREON_CREATOR_ACCESS_TOKEN": "a"}, "PATREON_CREATOR_REFRESH_TOKEN"),
        (tokens, "PATREON_WEBHOOK_SECRET"),
    ):
        with pytest.raises(ConfigError) as refused:
            load_config({**base, **partial}, env_file=None)
        assert str(refused.value).startswith(named)


async def test_the_patrons_report_of_a_server_lists_only_its_own_campaigns_patrons(two):
    from bot.guild_admin.patrons_report import patrons_report

    services = two.services
    now = datetime.now(UTC)
    report_b = await patrons_report(two.store, two.gateway, services.admin.participation, GUILD_B, now)
    assert [row.patreon_user_id for row in report_b.rows] == ["p-ben"]
    report_a = await patrons_report(two.store, two.gateway, services.admin.participation, GUILD, now)
    assert [row.patreon_user_id for row in report_a.rows] == ["p-ann"]


async def test_a_new_webhook_secret_is_served_at_once_and_the_old_one_refused(two):
    body = member_body("m-ben", "p-ben", CAMPAIGN_B)
    await two.services.campaigns.set_webhook(CAMPAIGN_B, "hook-b2", "campaign-b-second-secret")
    assert await post(two, f"/patreon/webhook/{CAMPAIGN_B}", body, SECRET_B) == 401
    assert await post(two, f"/patreon/webhook/{CAMPAIGN_B}", body, "campaign-b-second-secret") == 202
    record = await two.store.get_campaign(CAMPAIGN_B)
    assert record is not None and (record.webhook_id, record.webhook_secret) == ("hook-b2", "campaign-b-second-secret")


async def test_webhook_secrets_are_sealed_at_rest_and_move_with_a_key_rotation(tmp_path):
    import sqlite3

    from bot.store import Store
    from bot.store.token_cipher import TokenCipher, TokenKeyError, new_key

    path = tmp_path / "bot.sqlite3"
    old_key, new_key_text = new_key(), new_key()
    new = TokenCipher.from_setting(new_key_text)
    store = await Store.open(path, TokenCipher.from_setting(old_key))
    try:
        await store.save_campaign(CAMPAIGN_B, token_subject="campaign:x", source=OAUTH_SOURCE, webhook_secret=SECRET_B)
        await store.reencrypt_tokens(TokenCipher.from_setting(f"{new_key_text},{old_key}"))
    finally:
        await store.close()
    with sqlite3.connect(path) as raw:
        (stored,) = raw.execute("SELECT webhook_secret FROM campaigns").fetchone()
    raw.close()
    assert SECRET_B not in stored
    reopened = await Store.open(path, new)
    try:
        assert (await reopened.get_campaign(CAMPAIGN_B)).webhook_secret == SECRET_B
    finally:
        await reopened.close()
    with pytest.raises(TokenKeyError):  # the old key opens nothing any more: one line at start-up
        await Store.open(path, TokenCipher.from_setting(old_key))


async def test_two_complete_listings_each_forget_only_their_own_campaigns_absentees(tmp_path):
    """Both campaigns live in the fake Patreon (Eve's with her own creator token): each refresh completes, and a
    complete listing of A forgets A's absentees only, never B's members (which A's listing can't show)."""
    from fakes.patreon import CREATOR_SCOPES

    h = await SyncHarness(tmp_path / "bot.sqlite3", CAMPAIGN_A).start()
    try:
        store, services = h.store, h.services
        h.patreon.add_tier(TIER_A, "Gold", 500)
        h.patreon.add_user("p-ann", "Ann")
        h.patreon.set_membership("p-ann", "active_patron", tier_ids=[TIER_A])
        eve = h.patreon.add_creator("p-eve", "Eve", CAMPAIGN_B)
        eve.add_tier(TIER_B, "B-tier", 700)
        eve.add_user("p-ben", "Ben", None)
        eve.set_membership("p-ben", patron_status="active_patron", tier_ids=[TIER_B])
        token = h.patreon.issue_tokens("p-eve", CREATOR_SCOPES)
        pair = TokenPair(token.access_token, token.refresh_token, datetime.now(UTC) + timedelta(days=30))
        h.gateway.add_guild(GUILD_B)
        await store.save_settings(GuildSettings(guild_id=GUILD_B, enabled=True))
        await services.campaigns.add(CAMPAIGN_B, pair, SECRET_B)
        await services.campaigns.bind_guild(GUILD_B, CAMPAIGN_B, by=4242)
        await store.map_tier_role(GUILD, TIER_A, ROLE_A)
        await store.map_tier_role(GUILD_B, TIER_B, ROLE_B)
        long_ago = datetime.now(UTC) - timedelta(days=2)
        for user, campaign, tier in (("p-gone-a", CAMPAIGN_A, TIER_A), ("p-gone-b", CAMPAIGN_B, TIER_B)):
            await store.save_membership(membership(user, campaign, tier, long_ago), campaign)
        for user, patreon in ((ANN, "p-ann"), (BEN, "p-ben")):
            h.link_member(user)
            h.gateway.guilds[GUILD_B].members[user] = set()
            await store.save_link(user, patreon, None, "oauth")

        report = await services.refresh.run("scheduled")
        assert report.ok, report.detail
        await services.jobs.wait_idle(5)
        assert await store.get_membership("p-gone-a", CAMPAIGN_A) is None
        assert await store.get_membership("p-gone-b", CAMPAIGN_B) is None
        assert (await store.get_membership("p-ben", CAMPAIGN_B)) is not None, "A's listing never forgets B's"
        assert await store.get_membership("p-ben", CAMPAIGN_A) is None
        assert TIER_B in await store.get_tiers(CAMPAIGN_B) and TIER_A not in await store.get_tiers(CAMPAIGN_B)
        assert TIER_B not in await store.get_tiers(CAMPAIGN_A)
        assert roles(h, GUILD, ANN) == {ROLE_A} and roles(h, GUILD_B, ANN) == set()
        assert roles(h, GUILD_B, BEN) == {ROLE_B} and roles(h, GUILD, BEN) == set()
        eve_calls = [q for _m, path, q in h.patreon.calls if f"/campaigns/{CAMPAIGN_B}/members" in path]
        assert eve_calls, "B's members were listed with B's own token"
    finally:
        await h.close()
