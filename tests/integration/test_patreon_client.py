"""The real `PatreonClient` against `FakePatreon` over 127.0.0.1: OAuth, resources, paging, retries, errors."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from bot.domain.models import PatronStatus
from bot.patreon import (
    PatreonAuthError,
    PatreonBadResponse,
    PatreonClient,
    PatreonCursorExpired,
    PatreonNotFound,
    PatreonRequestError,
    PatreonUnavailable,
)
from fakes.patreon import FakePatreon

REDIRECT = "http://127.0.0.1:8080/patreon/callback"
USER_AGENT = "patreon-role-sync-tests/1.0 (+https://example.test)"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MEMBERS = "/api/oauth2/v2/campaigns/{}/members"


@pytest.fixture
async def fake() -> AsyncIterator[FakePatreon]:
    server = FakePatreon(client_id="fake-client", client_secret="fake-secret", redirect_uris=(REDIRECT,))
    await server.start()
    server.add_tier("1001", "Bronze", 500, discord_role_ids=["555"])
    server.add_tier("1002", "Silver", 1000)
    server.add_user("u1", "Ann", discord_id=1234)
    server.set_membership("u1", tier_ids=["1001"])
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


class Sleeps:
    """Records the waits the client asks for instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_client(session: aiohttp.ClientSession, fake: FakePatreon, **overrides: Any) -> PatreonClient:
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "client_id": "fake-client",
        "client_secret": "fake-secret",
        "redirect_uri": REDIRECT,
        "user_agent": USER_AGENT,
        "retry_base_delay": 0.01,
        "clock": lambda: NOW,
    }
    options.update(overrides)
    return PatreonClient(session, **options)


async def test_authorize_exchange_and_identity_show_our_membership_with_tiers(fake, session) -> None:
    client = make_client(session, fake)
    url = client.authorize_url("csrf token/1")
    assert "scope=identity%20identity.memberships" in url
    async with session.get(url, allow_redirects=False) as redirect:
        assert redirect.status == 302
        location = urlsplit(redirect.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert query["state"] == ["csrf token/1"]

    tokens = await client.exchange_code(query["code"][0])
    assert tokens.scope == ("identity", "identity.memberships")
    assert tokens.expires_at == NOW + timedelta(seconds=2678400)

    identity = await client.get_identity(tokens.access_token)
    assert (identity.user.id, identity.user.full_name, identity.user.social_discord_id) == ("u1", "Ann", 1234)
    membership = identity.membership_for(fake.campaign.id)
    assert membership is not None
    assert membership.patron_status is PatronStatus.ACTIVE
    assert membership.last_charge_status == "Paid"
    assert membership.entitled_tier_ids == ("1001",)
    assert membership.currently_entitled_amount_cents == 500
    assert membership.social_discord_id == 1234
    assert membership.observed_at == NOW
    raw = fake.raw_paths[-1]
    assert "fields%5Bmember%5D=" in raw and "[" not in raw  # brackets are percent-encoded on the wire


async def test_refresh_rotates_and_the_old_refresh_token_is_dead(fake, session) -> None:
    client = make_client(session, fake)
    first = await client.exchange_code(fake.issue_code("u1"))
    second = await client.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert (await client.get_identity(second.access_token)).user.id == "u1"

    with pytest.raises(PatreonAuthError) as failure:
        await client.refresh(first.refresh_token)
    assert (failure.value.error, failure.value.status) == ("invalid_grant", 401)
    assert fake.count("/api/oauth2/token") == 3  # a 401 is never retried


async def test_a_used_code_is_invalid_grant(fake, session) -> None:
    client = make_client(session, fake)
    code = fake.issue_code("u1")
    await client.exchange_code(code)
    with pytest.raises(PatreonAuthError) as failure:
        await client.exchange_code(code)
    assert failure.value.error == "invalid_grant"


async def test_missing_code_is_invalid_request(fake, session) -> None:
    client = make_client(session, fake)
    with pytest.raises(PatreonAuthError) as failure:
        await client.exchange_code("")
    assert failure.value.status == 400
    assert failure.value.error == "invalid_request"
    assert failure.value.error_description == "Missing code parameter."


async def test_bad_and_expired_bearer_tokens_are_auth_errors_without_retry(fake, session) -> None:
    client = make_client(session, fake)
    with pytest.raises(PatreonAuthError) as failure:
        await client.get_identity("not-a-token")
    assert (failure.value.status, failure.value.error) == (401, "Unauthorized")

    tokens = await client.exchange_code(fake.issue_code("u1"))
    fake.expire_token(tokens.access_token)
    with pytest.raises(PatreonAuthError):
        await client.get_identity(tokens.access_token)
    assert fake.count("/api/oauth2/v2/identity") == 2


async def test_campaign_and_tiers(fake, session) -> None:
    client = make_client(session, fake)
    (campaign,) = await client.get_campaigns(fake.creator_access_token)
    assert campaign.id == fake.campaign.id
    same = await client.get_campaign(fake.creator_access_token, campaign.id)
    tiers = {tier.id: tier for tier in same.tiers}
    assert set(tiers) == {fake.campaign.free_tier.id, "1001", "1002"}
    assert (tiers["1001"].title, tiers["1001"].amount_cents, tiers["1001"].discord_role_ids) == (
        "Bronze",
        500,
        ("555",),
    )
    assert (tiers["1001"].patron_count, tiers["1002"].patron_count) == (1, 0)
    assert same.patron_count == 1


async def test_2500_members_come_back_in_exactly_three_pages(fake, session) -> None:
    seeded = set(fake.seed_members(2499, tier_ids=["1001", "1002"], rng_seed=7)) | {"u1"}
    client = make_client(session, fake)
    pages = [page async for page in client.iter_member_pages(fake.creator_access_token, fake.campaign.id)]

    assert [len(page.members) for page in pages] == [1000, 1000, 500]
    assert fake.count(MEMBERS.format(fake.campaign.id)) == 3
    member_ids = [m.member_id for page in pages for m in page.members]
    assert len(member_ids) == len(set(member_ids)) == 2500
    assert {m.patreon_user_id for page in pages for m in page.members} == seeded
    assert pages[0].total == 2500 and pages[-1].next_cursor is None
    with_discord = [m for page in pages for m in page.members if m.social_discord_id is not None]
    expected = sum(1 for uid in seeded if fake.campaign.users[uid].discord_id is not None)
    assert len(with_discord) == expected > 2000
    ann = next(m for page in pages for m in page.members if m.patreon_user_id == "u1")
    assert (ann.entitled_tier_ids, ann.social_discord_id, ann.tiers_known) == (("1001",), 1234, True)
    assert all(q.get("page[count]") == "1000" for _m, path, q in fake.calls if path.endswith("/members"))


async def test_an_expired_cursor_raises_instead_of_truncating(fake, session) -> None:
    fake.seed_members(2499)
    fake.expire_cursor_after(1)
    client = make_client(session, fake)
    seen: list[str | None] = []
    with pytest.raises(PatreonCursorExpired) as failure:
        async for page in client.iter_member_pages(fake.creator_access_token, fake.campaign.id):
            seen.extend(m.member_id for m in page.members)
    assert isinstance(failure.value, PatreonRequestError)
    assert failure.value.status == 400
    assert len(seen) == 1000
    assert fake.count(MEMBERS.format(fake.campaign.id)) == 2  # 400 is not retried


async def test_get_member_and_a_deleted_member(fake, session) -> None:
    client = make_client(session, fake)
    member = fake.campaign.live_member_for("u1")
    assert member is not None
    snapshot = await client.get_member(fake.creator_access_token, member.id)
    assert (snapshot.member_id, snapshot.campaign_id, snapshot.patreon_user_id) == (member.id, fake.campaign.id, "u1")
    assert snapshot.entitled_tier_ids == ("1001",)
    fake.remove_membership("u1")
    with pytest.raises(PatreonNotFound):
        await client.get_member(fake.creator_access_token, member.id)


async def test_429_waits_for_retry_after_then_succeeds(fake, session) -> None:
    sleeps = Sleeps()
    client = make_client(session, fake, sleep=sleeps)
    fake.rate_limit_next(r"/campaigns$", retry_after=2)
    campaigns = await client.get_campaigns(fake.creator_access_token)
    assert [c.id for c in campaigns] == [fake.campaign.id]
    assert sleeps.waits == [2.0]
    assert fake.count("/api/oauth2/v2/campaigns") == 2
    assert client.request_count == 2


async def test_429_asking_longer_than_the_cap_gives_up_at_once(fake, session) -> None:
    sleeps = Sleeps()
    client = make_client(session, fake, sleep=sleeps, max_retry_wait=60.0)
    fake.rate_limit_next(r"/campaigns$", retry_after=120)
    with pytest.raises(PatreonUnavailable) as failure:
        await client.get_campaigns(fake.creator_access_token)
    assert (failure.value.status, failure.value.retry_after) == (429, 120.0)
    assert sleeps.waits == []
    assert fake.count("/api/oauth2/v2/campaigns") == 1


async def test_429_that_never_ends_is_unavailable(fake, session) -> None:
    client = make_client(session, fake, max_retries=2)
    fake.rate_limit_next(r"/identity$", retry_after=0.01, count=50)
    with pytest.raises(PatreonUnavailable):
        await client.get_identity(fake.creator_access_token)
    assert fake.count("/api/oauth2/v2/identity") == 3


async def test_500_twice_then_success_with_exponential_backoff(fake, session) -> None:
    sleeps = Sleeps()
    client = make_client(session, fake, sleep=sleeps)
    fake.fail_next(r"/campaigns/\d+$", status=500, count=2)
    campaign = await client.get_campaign(fake.creator_access_token, fake.campaign.id)
    assert campaign.id == fake.campaign.id
    assert fake.count(f"/api/oauth2/v2/campaigns/{fake.campaign.id}") == 3
    assert sleeps.waits == [0.01, 0.02]


async def test_500_forever_is_unavailable(fake, session) -> None:
    client = make_client(session, fake, max_retries=3)
    fake.fail_next(r"/token$", status=503, count=100)
    with pytest.raises(PatreonUnavailable) as failure:
        await client.refresh(fake.creator_refresh_token)
    assert failure.value.status == 503
    assert fake.count("/api/oauth2/token") == 4
    assert client.request_count == 4


async def test_a_timeout_is_unavailable(fake, session) -> None:
    client = make_client(session, fake, request_timeout=0.1, max_retries=1)
    fake.delay_next(r"/identity$", seconds=2.0, count=5)
    with pytest.raises(PatreonUnavailable, match="Timeout"):
        await client.get_identity(fake.creator_access_token)
    assert fake.count("/api/oauth2/v2/identity") == 2


async def test_connection_refused_is_unavailable(session) -> None:
    client = PatreonClient(
        session,
        base_url="http://127.0.0.1:9",
        client_id="c",
        client_secret="s",
        redirect_uri=REDIRECT,
        user_agent=USER_AGENT,
        max_retries=1,
        retry_base_delay=0.01,
    )
    with pytest.raises(PatreonUnavailable):
        await client.get_identity("token")
    assert client.request_count == 2


@contextlib.asynccontextmanager
async def client_of(session: aiohttp.ClientSession, routes: list[web.RouteDef]) -> AsyncIterator[PatreonClient]:
    """A client of a one-off server on 127.0.0.1 answering `routes` (what no fake Patreon would send)."""
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield PatreonClient(
            session, base_url=f"http://{host}:{port}", client_id="c", client_secret="s", redirect_uri=REDIRECT,
            user_agent=USER_AGENT,
        )  # fmt: skip
    finally:
        await runner.cleanup()


async def test_a_success_that_is_not_json_api_is_a_bad_response(session) -> None:
    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    async def not_jsonapi(_request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    routes = [web.get("/api/oauth2/v2/identity", html), web.get("/api/oauth2/v2/campaigns", not_jsonapi)]
    async with client_of(session, routes) as client:
        with pytest.raises(PatreonBadResponse, match="not JSON"):
            await client.get_identity("token")
        with pytest.raises(PatreonBadResponse, match="no 'data'"):
            await client.get_campaigns("token")


@pytest.mark.parametrize("charset", ["utf-8", "iso-8859-1", "utf-16", None])
async def test_a_listing_page_reads_in_the_charset_it_declares(session, charset: str | None) -> None:
    """The listing's bytes go to the reader as they came when they are UTF-8 (what Patreon sends, and JSON's
    default); a page that declares another charset is read in it, as any other answer is."""
    from tests.unit.test_member_pages import canonical_page  # the fast reader's canonical page

    document = canonical_page(2)
    document["data"][1]["attributes"]["full_name"] = "José Ñandú"
    del document["meta"]["pagination"]["cursors"], document["links"]
    text = json.dumps(document, ensure_ascii=False)

    async def members(_request: web.Request) -> web.Response:
        body = text.encode(charset or "utf-8")
        kind = "application/json" + (f"; charset={charset}" if charset else "")
        return web.Response(body=body, headers={"Content-Type": kind})

    async with client_of(session, [web.get("/api/oauth2/v2/campaigns/1/members", members)]) as client:
        pages = [page async for page in client.iter_member_pages("token", "1")]
        assert [m.full_name for m in pages[0].members] == ["User 0", "José Ñandú"]


async def test_every_request_sends_our_user_agent(fake, session) -> None:
    client = make_client(session, fake)
    tokens = await client.exchange_code(fake.issue_code("u1"))
    await client.get_identity(tokens.access_token)
    await client.get_campaigns(fake.creator_access_token)
    assert len(fake.user_agents) == 3
    assert set(fake.user_agents) == {USER_AGENT}


async def test_webhook_lifecycle_through_the_api(fake, session) -> None:
    client = make_client(session, fake)
    token = fake.creator_access_token
    created = await client.create_webhook(token, fake.campaign.id, "http://127.0.0.1:1/hook", ["members:update"])
    assert created.secret and len(created.secret) >= 32
    assert fake.webhooks.hooks[created.id].secret == created.secret
    (listed,) = await client.list_webhooks(token)
    assert (listed.id, listed.uri, listed.triggers, listed.paused) == (
        created.id,
        created.uri,
        ("members:update",),
        False,
    )
    updated = await client.update_webhook(
        token, created.id, triggers=["members:create", "members:delete"], paused=False
    )
    assert updated.triggers == ("members:create", "members:delete")
    await client.delete_webhook(token, created.id)
    assert await client.list_webhooks(token) == []
