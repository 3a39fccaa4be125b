"""FakePatreon does what docs/patreon-api.md ("What the fake Patreon reproduces") says; it accepts every real sample."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from bot.patreon.jsonapi import parse_member_document, parse_members_page
from fakes.patreon import FakePatreon
from tests.samples import sample, sample_bytes, sample_paths

REDIRECT = "http://127.0.0.1:8080/patreon/callback"
UA = {"User-Agent": "fake-patreon-tests/1.0"}
API = "/api/oauth2/v2"
OBSERVED = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakePatreon]:
    server = FakePatreon(redirect_uris=(REDIRECT,))
    await server.start()
    server.add_tier("1001", "Bronze", 500)
    server.add_user("u1", "Ann", discord_id=1234)
    server.add_user("u2", "Bob")
    server.set_membership("u1", tier_ids=["1001"])
    server.set_membership("u2", tier_ids=["1001"])
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=UA) as session:
        yield session


async def get(http: aiohttp.ClientSession, fake: FakePatreon, path: str, **params: str) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {fake.creator_access_token}"}
    async with http.get(fake.base_url + path, params=params, headers=headers) as response:
        return response.status, await response.json()


# ---------------------------------------------------------------- OAuth


async def test_token_errors_are_byte_for_byte_the_real_ones(fake, http) -> None:
    url = fake.base_url + "/api/oauth2/token"
    form = {"grant_type": "authorization_code", "client_id": "fake-client", "client_secret": "fake-secret"}
    async with http.post(url, data={**form, "redirect_uri": REDIRECT}) as response:
        assert (response.status, await response.json()) == (400, sample("oauth_token_error_missing_code.json"))
    async with http.post(url, data={**form, "redirect_uri": REDIRECT, "code": "nope"}) as response:
        assert (response.status, await response.json()) == (401, sample("oauth_token_error_invalid_grant.json"))
    code = fake.issue_code("u1")
    async with http.post(url, data={**form, "redirect_uri": "http://elsewhere/cb", "code": code}) as response:
        assert (response.status, (await response.json())["error"]) == (401, "invalid_grant")
    async with http.post(url, data={**form, "client_secret": "wrong", "redirect_uri": REDIRECT, "code": code}) as r:
        assert (r.status, (await r.json())["error"]) == (401, "invalid_client")


async def test_refresh_params_in_the_query_string_work_and_rotate(fake, http) -> None:
    params = {
        "grant_type": "refresh_token",
        "refresh_token": fake.creator_refresh_token,
        "client_id": "fake-client",
        "client_secret": "fake-secret",
    }
    async with http.post(fake.base_url + "/api/oauth2/token", params=params) as response:
        body = await response.json()
    assert response.status == 200
    assert set(body) == set(sample("token_response.json"))
    assert (body["expires_in"], body["token_type"], body["version"]) == (2678400, "Bearer", "0.0.1")
    assert "campaigns.members" in body["scope"].split(" ")
    assert body["refresh_token"] != fake.creator_refresh_token
    async with http.post(fake.base_url + "/api/oauth2/token", params=params) as response:
        assert (response.status, await response.json()) == (401, {"error": "invalid_grant"})


async def test_authorize_approves_the_first_patron_or_denies(fake, http) -> None:
    query = {"response_type": "code", "client_id": "fake-client", "redirect_uri": REDIRECT, "state": "a b&c"}
    async with http.get(fake.base_url + "/oauth2/authorize", params=query, allow_redirects=False) as response:
        redirect = parse_qs(urlsplit(response.headers["Location"]).query)
    assert response.status == 302 and redirect["state"] == ["a b&c"]
    assert fake.tokens.codes[redirect["code"][0]].user_id == "u1"
    assert fake.tokens.codes[redirect["code"][0]].scopes == ("identity",)

    fake.deny_next_authorize()
    async with http.get(fake.base_url + "/oauth2/authorize", params=query, allow_redirects=False) as response:
        assert parse_qs(urlsplit(response.headers["Location"]).query) == {
            "error": ["access_denied"],
            "state": ["a b&c"],
        }

    bad = {**query, "redirect_uri": "http://evil.test/cb"}
    async with http.get(fake.base_url + "/oauth2/authorize", params=bad, allow_redirects=False) as response:
        assert response.status == 400


# ---------------------------------------------------------------- API errors


async def test_bad_token_gets_the_real_401_shape(fake, http) -> None:
    async with http.get(f"{fake.base_url}{API}/identity", headers={"Authorization": "Bearer nope"}) as response:
        body = await response.json()
    assert response.status == 401
    expected = sample("error_401_unauthorized.json")["errors"][0]
    (error,) = body["errors"]
    assert {k: v for k, v in error.items() if k != "id"} == {k: v for k, v in expected.items() if k != "id"}


async def test_missing_user_agent_is_403(fake) -> None:
    async with aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as bare:
        headers = {"Authorization": f"Bearer {fake.creator_access_token}"}
        async with bare.get(f"{fake.base_url}{API}/campaigns", headers=headers) as response:
            assert response.status == 403
            assert (await response.json())["errors"][0]["status"] == "403"
    assert fake.user_agents[-1] is None


async def test_rate_limit_has_retry_after_header_and_the_documented_body(fake, http) -> None:
    fake.rate_limit_next("/campaigns", retry_after=3)
    status, body = await get(http, fake, f"{API}/campaigns")
    assert status == 429
    assert fake.calls[-1][1] == f"{API}/campaigns"
    (error,) = body["errors"]
    assert set(error) == set(sample("error_429_rate_limited_docs.json")["errors"][0])
    assert (error["retry_after_seconds"], error["code_name"], error["status"]) == (3, "RequestThrottled", "429")
    async with http.get(f"{fake.base_url}{API}/identity") as response:  # the fault was used up
        assert response.status == 401


async def test_rate_limit_header(fake, http) -> None:
    fake.rate_limit_next("/identity", retry_after=7)
    async with http.get(f"{fake.base_url}{API}/identity") as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "7")


# ---------------------------------------------------------------- sparse fieldsets and includes


async def test_only_requested_fields_and_included_paths_appear(fake, http) -> None:
    member = fake.campaign.live_member_for("u1")
    assert member is not None
    status, bare = await get(http, fake, f"{API}/members/{member.id}")
    assert status == 200
    assert bare["data"]["attributes"] == {} and "relationships" not in bare["data"] and "included" not in bare

    _, sparse = await get(http, fake, f"{API}/members/{member.id}", **{"fields[member]": "patron_status"})
    assert sparse["data"]["attributes"] == {"patron_status": "active_patron"}

    _, with_user = await get(http, fake, f"{API}/members/{member.id}", include="user")
    assert set(with_user["data"]["relationships"]) == {"user"}
    assert with_user["included"] == [{"attributes": {}, "id": "u1", "type": "user"}]

    status, error = await get(http, fake, f"{API}/members/{member.id}", **{"fields[member]": "pledge_amount_cents"})
    assert status == 400 and error["errors"][0]["source"]["parameter"] == "fields[member]"
    status, error = await get(http, fake, f"{API}/members/{member.id}", include="rewards")
    assert status == 400 and error["errors"][0]["source"]["parameter"] == "include"


async def test_identity_nested_includes_and_deduplicated_included(fake, http) -> None:
    code = fake.issue_code("u1")
    form = {"grant_type": "authorization_code", "code": code, "client_id": "fake-client"}
    form |= {"client_secret": "fake-secret", "redirect_uri": REDIRECT}
    async with http.post(fake.base_url + "/api/oauth2/token", data=form) as response:
        token = (await response.json())["access_token"]
    params = {
        "include": "memberships.currently_entitled_tiers,memberships.campaign,memberships.user",
        "fields[tier]": "title",
        "fields[user]": "full_name",
    }
    async with http.get(
        f"{fake.base_url}{API}/identity", params=params, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        doc = await r.json()
    assert set(doc["data"]["relationships"]) == {"memberships"}
    assert doc["data"]["attributes"] == {"full_name": "Ann"}
    kinds = [(item["type"], item["id"]) for item in doc["included"]]
    assert sorted(kinds) == sorted(
        [("member", fake.campaign.member_by_user["u1"]), ("tier", "1001"), ("campaign", fake.campaign.id)]
    )
    member = next(item for item in doc["included"] if item["type"] == "member")
    assert set(member["relationships"]) == {"currently_entitled_tiers", "campaign", "user"}


async def test_members_pages_cursors_links_and_clamping(fake, http) -> None:
    fake.seed_members(1200, tier_ids=["1001"])
    path = f"{API}/campaigns/{fake.campaign.id}/members"
    _, first = await get(http, fake, path, include="currently_entitled_tiers", **{"page[count]": "5000"})
    assert len(first["data"]) == 1000
    assert [i for i in first["included"] if i["type"] == "tier"] == [{"attributes": {}, "id": "1001", "type": "tier"}]
    cursor = first["meta"]["pagination"]["cursors"]["next"]
    assert first["meta"]["pagination"]["total"] == 1202
    assert f"page%5Bcursor%5D={cursor}" in first["links"]["next"]
    _, last = await get(http, fake, path, **{"page[count]": "1000", "page[cursor]": cursor})
    assert len(last["data"]) == 202 and "links" not in last
    assert last["meta"]["pagination"]["cursors"]["next"] is None
    _, default = await get(http, fake, path)
    assert len(default["data"]) == 20
    status, error = await get(http, fake, path, **{"page[cursor]": "forged"})
    assert status == 400 and error["errors"][0]["code"] == 3


async def test_patron_counts_follow_memberships(fake, http) -> None:
    assert (fake.campaign.patron_count, fake.campaign.tiers["1001"].patron_count) == (2, 2)
    fake.set_membership("u2", patron_status="former_patron")
    fake.remove_membership("u1")
    _, doc = await get(
        http,
        fake,
        f"{API}/campaigns/{fake.campaign.id}",
        include="tiers",
        **{"fields[campaign]": "patron_count", "fields[tier]": "patron_count"},
    )
    assert doc["data"]["attributes"] == {"patron_count": 0}
    assert {t["id"]: t["attributes"]["patron_count"] for t in doc["included"]} == {
        fake.campaign.free_tier.id: 0,
        "1001": 0,
    }


# ---------------------------------------------------------------- webhooks API and deliveries


async def test_webhooks_api_accepts_the_documented_requests(fake, http) -> None:
    auth = {"Authorization": f"Bearer {fake.creator_access_token}"}
    create = sample("webhook_create_request_docs.json")
    create["data"]["relationships"]["campaign"]["data"]["id"] = fake.campaign.id
    async with http.post(f"{fake.base_url}{API}/webhooks", data=json.dumps(create), headers=auth) as response:
        created = await response.json()
    assert response.status == 201
    assert set(created["data"]["attributes"]) == set(sample("webhook_create_response_docs.json")["data"]["attributes"])
    assert len(created["data"]["attributes"]["secret"]) >= 32
    hook_id = created["data"]["id"]

    patch = sample("webhook_patch_request_docs.json")
    patch["data"]["id"] = hook_id
    async with http.patch(f"{fake.base_url}{API}/webhooks/{hook_id}", json=patch, headers=auth) as response:
        patched = (await response.json())["data"]["attributes"]
    assert (patched["paused"], patched["triggers"], patched["uri"]) == (
        False,
        ["members:create", "members:delete"],
        "https://www.example2.com",
    )
    patch["data"]["attributes"] = {"paused": "maybe"}
    async with http.patch(f"{fake.base_url}{API}/webhooks/{hook_id}", json=patch, headers=auth) as response:
        assert response.status == 400
    status, listed = await get(http, fake, f"{API}/webhooks", **{"fields[webhook]": "uri"})
    assert status == 200
    assert listed["data"] == [{"attributes": {"uri": "https://www.example2.com"}, "id": hook_id, "type": "webhook"}]
    async with http.delete(f"{fake.base_url}{API}/webhooks/{hook_id}", headers=auth) as response:
        assert response.status == 204
    assert fake.webhooks.hooks == {}


class Receiver:
    """A webhook endpoint that checks the signature the way the bot must (raw bytes, HMAC-MD5)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.status = 200
        self.received: list[tuple[str, bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = hmac.new(self.secret.encode(), raw, hashlib.md5).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Patreon-Signature", "")):
            return web.Response(status=403, text="bad signature")
        if self.status != 200:
            return web.Response(status=self.status, text="down")
        self.received.append((request.headers["X-Patreon-Event"], raw))
        return web.Response(text="ok")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/patreon/webhook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/patreon/webhook"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_deliveries_are_signed_real_shaped_and_parse(fake) -> None:
    hook = fake.add_webhook("http://placeholder", ["members:pledge:create", "members:update"])
    async with Receiver(hook.secret) as receiver:
        hook.uri = receiver.url
        assert await fake.send_webhook("members:pledge:create", "u1") == (200, "ok")
        ((event, raw),) = receiver.received
        assert event == "members:pledge:create"
        assert raw == fake.render_member_webhook_body(event, "u1")
        doc = json.loads(raw)
        assert set(doc["data"]["attributes"]) >= set(sample("webhook_members_pledge_create.json")["data"]["attributes"])
        assert sorted(i["type"] for i in doc["included"]) == ["campaign", "tier", "user"]
        snapshot = parse_member_document(doc)
        assert (snapshot.patreon_user_id, snapshot.entitled_tier_ids, snapshot.social_discord_id) == (
            "u1",
            ("1001",),
            1234,
        )

        status, text = await fake.send_webhook("members:update", "u1", secret="wrong-secret")
        assert (status, text) == (403, "bad signature")
        status, _ = await fake.send_webhook("members:update", "u1", signature_override="0" * 32)
        assert status == 403


async def test_failed_deliveries_queue_pause_and_flush_on_unpause(fake, http) -> None:
    hook = fake.add_webhook("http://placeholder", ["members:update"])
    async with Receiver(hook.secret) as receiver:
        hook.uri, receiver.status = receiver.url, 500
        for user_id in ("u1", "u2", "u1"):
            assert (await fake.send_webhook("members:update", user_id))[0] == 500
        assert (hook.paused, hook.num_consecutive_times_failed, len(hook.queue)) == (True, 3, 3)
        assert await fake.send_webhook("members:update", "u2") == (0, "webhook paused; delivery queued")

        receiver.status = 200
        patch = {"data": {"id": hook.id, "type": "webhook", "attributes": {"paused": "false"}}}
        auth = {"Authorization": f"Bearer {fake.creator_access_token}"}
        async with http.patch(f"{fake.base_url}{API}/webhooks/{hook.id}", json=patch, headers=auth) as response:
            assert response.status == 200
        await fake.drain()
        users = [parse_member_document(json.loads(raw)).patreon_user_id for _event, raw in receiver.received]
        assert users == ["u1", "u2", "u1", "u2"]
        assert (hook.queue, hook.num_consecutive_times_failed, hook.paused) == ([], 0, False)


async def test_the_portal_send_test_body_is_delivered_untouched(fake) -> None:
    raw = sample_bytes("webhook_portal_send_test_members_create.json")
    hook = fake.add_webhook("http://placeholder", ["members:create"])
    async with Receiver(hook.secret) as receiver:
        hook.uri = receiver.url
        assert await fake.send_webhook("members:create", None, body_override=raw) == (200, "ok")
    ((_event, received),) = receiver.received
    assert received == raw
    assert parse_member_document(json.loads(received)).member_id is None


# ---------------------------------------------------------------- the samples round-trip through the fake

MEMBER_SAMPLES = [p.name for p in sample_paths(("webhook_member", "member_by_id", "members_page"))]


def _sparse_query(member: dict[str, Any], included: list[dict[str, Any]]) -> dict[str, str]:
    """The include/fields query that makes the fake answer with what this sample carried."""
    query = {"include": ",".join(sorted(member.get("relationships") or {}))}
    query["fields[member]"] = ",".join(member.get("attributes") or {})
    for kind in ("user", "tier"):
        names = {name for item in included if item["type"] == kind for name in item.get("attributes") or {}}
        query[f"fields[{kind}]"] = ",".join(sorted(names))
    return query


@pytest.mark.parametrize("name", MEMBER_SAMPLES)
async def test_each_member_sample_round_trips_through_the_fake(name: str) -> None:
    doc = sample(name)
    is_page = isinstance(doc["data"], list)
    member_doc = {"data": doc["data"][0], "included": doc.get("included", [])} if is_page else doc
    campaign = ((member_doc["data"].get("relationships") or {}).get("campaign") or {}).get("data")
    fake = FakePatreon(campaign_id=campaign["id"] if campaign else "7654321")
    await fake.start()
    try:
        member = fake.import_member_document(member_doc)
        expected = parse_member_document(member_doc, OBSERVED)
        if name.startswith("webhook_"):
            rendered = json.loads(fake.render_member_webhook_body("members:update", member.user_id))
            assert parse_member_document(rendered, OBSERVED) == expected
        query = _sparse_query(member_doc["data"], member_doc["included"])
        async with aiohttp.ClientSession(headers=UA) as http:
            status, answer = await get(http, fake, f"{API}/members/{member.id}", **query)
            assert status == 200, answer
            assert parse_member_document(answer, OBSERVED) == expected
            if is_page:
                path = f"{API}/campaigns/{fake.campaign.id}/members"
                _, page = await get(http, fake, path, **query, **{"page[count]": "1000"})
                assert parse_members_page(page, OBSERVED).members == parse_members_page(doc, OBSERVED).members
    finally:
        await fake.close()


# ---------------------------------------------------------------- scale


async def test_100k_members_seed_and_page_through_in_pages_of_1000(http) -> None:
    """A 100,000-member campaign (what the benches list) seeds and pages like Patreon: 1,000 a page, each page's
    cursor leading to the next, no member twice. How fast is the benches' business, not a test's."""
    fake = FakePatreon()
    await fake.start()
    try:
        fake.add_tier("1001", "Bronze", 500)
        fake.seed_members(100_000, rng_seed=3)
        params = {
            "include": "currently_entitled_tiers,user",
            "fields[member]": "patron_status,currently_entitled_amount_cents,last_charge_status,full_name",
            "fields[user]": "social_connections,full_name",
            "fields[tier]": "title,amount_cents",
            "page[count]": "1000",
        }
        seen: set[str] = set()
        for _ in range(5):
            status, doc = await get(http, fake, f"{API}/campaigns/{fake.campaign.id}/members", **params)
            assert status == 200 and len(doc["data"]) == 1000
            seen.update(member["id"] for member in doc["data"])
            params["page[cursor]"] = doc["meta"]["pagination"]["cursors"]["next"]
        assert len(seen) == 5000, "every page new members"
        assert doc["meta"]["pagination"]["total"] == 100_000
    finally:
        await fake.close()
