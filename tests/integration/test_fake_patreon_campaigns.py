"""The fake Patreon with several creators: each creator token sees its own campaigns, tiers and members only,
creator OAuth grants and checks scopes, a revoked app's tokens die, and /identity's memberships follow the
`identity.memberships` scope (docs/patreon-api.md, "Creators and campaigns")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from fakes.patreon import CREATOR_SCOPES, FakePatreon

REDIRECT = "http://127.0.0.1:8080/patreon/callback"
UA = {"User-Agent": "fake-patreon-tests/1.0"}
API = "/api/oauth2/v2"
B = "8000001"


@pytest.fixture
async def fake() -> AsyncIterator[FakePatreon]:
    server = FakePatreon(redirect_uris=(REDIRECT,))
    await server.start()
    server.add_tier("1001", "Bronze", 500)
    server.add_user("ann", "Ann", discord_id=1234)
    server.set_membership("ann", tier_ids=["1001"])
    bea = server.add_creator("bea", "Bea Creator", B)
    bea.add_tier("2001", "Gold", 1500)
    server.add_user("cid", "Cid", discord_id=5678)
    bea.set_membership("cid", tier_ids=["2001"])
    bea.set_membership("ann", tier_ids=["2001"])  # Ann is a patron of both campaigns
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=UA) as session:
        yield session


async def authorize(http: aiohttp.ClientSession, fake: FakePatreon, user_id: str, scope: str) -> dict[str, Any]:
    """The browser half and the token half of Patreon's OAuth for `user_id`; the token endpoint's JSON."""
    fake.next_authorizing_user = user_id
    query = {"response_type": "code", "client_id": "fake-client", "redirect_uri": REDIRECT, "scope": scope}
    async with http.get(fake.base_url + "/oauth2/authorize", params=query, allow_redirects=False) as response:
        redirect = parse_qs(urlsplit(response.headers["Location"]).query)
    form = {"grant_type": "authorization_code", "code": redirect["code"][0], "client_id": "fake-client"}
    form |= {"client_secret": "fake-secret", "redirect_uri": REDIRECT}
    async with http.post(fake.base_url + "/api/oauth2/token", data=form) as response:
        assert response.status == 200
        return dict(await response.json())


async def get(http: aiohttp.ClientSession, fake: FakePatreon, token: str, path: str, **params: str) -> tuple[int, Any]:
    async with http.get(fake.base_url + API + path, params=params, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def refresh(http: aiohttp.ClientSession, fake: FakePatreon, refresh_token: str) -> tuple[int, Any]:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    form |= {"client_id": "fake-client", "client_secret": "fake-secret"}
    async with http.post(fake.base_url + "/api/oauth2/token", data=form) as response:
        return response.status, await response.json()


# ---------------------------------------------------------------- each creator sees their own


async def test_a_second_creator_sees_only_their_own_campaign_and_tiers(fake, http) -> None:
    token = (await authorize(http, fake, "bea", " ".join(CREATOR_SCOPES)))["access_token"]
    status, doc = await get(http, fake, token, "/campaigns", include="tiers", **{"fields[tier]": "title"})
    assert status == 200
    assert [c["id"] for c in doc["data"]] == [B] and doc["meta"]["pagination"]["total"] == 1
    assert sorted(t["attributes"]["title"] for t in doc["included"]) == ["Free", "Gold"]
    status, doc = await get(http, fake, fake.creator_access_token, "/campaigns")
    assert (status, [c["id"] for c in doc["data"]]) == (200, [fake.campaign.id])

    # Someone else's campaign is a 403, an unknown one a 404, whichever creator asks.
    assert (await get(http, fake, token, f"/campaigns/{fake.campaign.id}"))[0] == 403
    assert (await get(http, fake, token, f"/campaigns/{fake.campaign.id}/members"))[0] == 403
    assert (await get(http, fake, fake.creator_access_token, f"/campaigns/{B}"))[0] == 403
    assert (await get(http, fake, fake.creator_access_token, f"/campaigns/{B}/members"))[0] == 403
    assert (await get(http, fake, token, "/campaigns/999/members"))[0] == 404
    ann_in_a = fake.campaign.member_by_user["ann"]
    ann_in_b = fake.campaigns[B].member_by_user["ann"]
    assert (await get(http, fake, token, f"/members/{ann_in_a}"))[0] == 403
    assert (await get(http, fake, fake.creator_access_token, f"/members/{ann_in_b}"))[0] == 403
    status, doc = await get(http, fake, token, f"/members/{ann_in_b}", include="campaign,currently_entitled_tiers")
    assert status == 200
    assert doc["data"]["relationships"]["campaign"]["data"]["id"] == B
    assert doc["data"]["relationships"]["currently_entitled_tiers"]["data"] == [{"id": "2001", "type": "tier"}]


async def test_members_pages_and_cursors_belong_to_their_campaign(fake, http) -> None:
    fake.campaigns[B].seed_members(30, tier_ids=["2001"])
    fake.seed_members(5, tier_ids=["1001"])
    token = fake.issue_tokens("bea", CREATOR_SCOPES).access_token
    status, first = await get(http, fake, token, f"/campaigns/{B}/members", include="user")
    assert status == 200 and len(first["data"]) == 20
    assert first["meta"]["pagination"]["total"] == 32
    cursor = first["meta"]["pagination"]["cursors"]["next"]
    _, second = await get(http, fake, token, f"/campaigns/{B}/members", include="user", **{"page[cursor]": cursor})
    assert len(second["data"]) == 12 and second["meta"]["pagination"]["cursors"]["next"] is None
    listed = {m["relationships"]["user"]["data"]["id"] for page in (first, second) for m in page["data"]}
    assert listed == set(fake.campaigns[B].member_by_user)
    assert listed.isdisjoint(uid for uid in fake.campaign.member_by_user if uid != "ann")
    # B's cursor on A's listing is refused as Patreon refuses a bad cursor (400, code 3).
    status, error = await get(
        http, fake, fake.creator_access_token, f"/campaigns/{fake.campaign.id}/members", **{"page[cursor]": cursor}
    )
    assert status == 400 and error["errors"][0]["code"] == 3


async def test_a_creator_may_own_several_campaigns(fake, http) -> None:
    fake.add_campaign("8000002", "bea")
    token = fake.issue_tokens("bea", CREATOR_SCOPES).access_token
    _, doc = await get(http, fake, token, "/campaigns")
    assert [c["id"] for c in doc["data"]] == [B, "8000002"]
    _, identity = await get(http, fake, token, "/identity", include="campaign", **{"fields[user]": "is_creator"})
    assert identity["data"]["attributes"] == {"is_creator": True}
    assert identity["data"]["relationships"]["campaign"]["data"]["id"] == B


async def test_approve_next_as_is_one_shot_and_comes_before_the_default(fake, http) -> None:
    fake.approve_next_as("bea")
    query = {"response_type": "code", "client_id": "fake-client", "redirect_uri": REDIRECT, "scope": "identity"}
    approvers = []
    for _ in range(2):
        async with http.get(fake.base_url + "/oauth2/authorize", params=query, allow_redirects=False) as response:
            code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
        approvers.append(fake.tokens.codes[code].user_id)
    assert approvers == ["bea", "ann"]  # then the first active patron, as before
    with pytest.raises(KeyError):
        fake.approve_next_as("nobody")


# ---------------------------------------------------------------- creator OAuth and scopes


async def test_creator_oauth_grants_the_asked_scopes_and_refuses_unknown_ones(fake, http) -> None:
    body = await authorize(http, fake, "bea", "identity campaigns campaigns.members w:campaigns.webhook")
    assert body["scope"].split() == ["identity", "campaigns", "w:campaigns.webhook", "campaigns.members"]

    query = {"response_type": "code", "client_id": "fake-client", "redirect_uri": REDIRECT, "state": "s1"}
    query["scope"] = "identity campaigns.webhooks"
    codes_before = len(fake.tokens.codes)
    async with http.get(fake.base_url + "/oauth2/authorize", params=query, allow_redirects=False) as response:
        assert response.status == 302
        assert parse_qs(urlsplit(response.headers["Location"]).query) == {"error": ["invalid_scope"], "state": ["s1"]}
    assert len(fake.tokens.codes) == codes_before  # no code was issued

    # The client's owner gets every scope whatever it asks for.
    owner = await authorize(http, fake, fake.owner_id, "identity")
    assert "w:campaigns.webhook" in owner["scope"].split() and "identity.memberships" in owner["scope"].split()


async def test_scopes_granted_once_stay_granted_until_revoked(fake, http) -> None:
    await authorize(http, fake, "cid", "identity identity.memberships")
    again = await authorize(http, fake, "cid", "identity")
    assert again["scope"].split() == ["identity", "identity.memberships"]
    fake.revoke("cid")
    after = await authorize(http, fake, "cid", "identity")
    assert after["scope"].split() == ["identity"]


async def test_each_endpoint_checks_its_scope(fake, http) -> None:
    token = fake.issue_tokens("bea", ("identity", "campaigns")).access_token
    assert (await get(http, fake, token, "/campaigns"))[0] == 200
    status, body = await get(http, fake, token, f"/campaigns/{B}/members")
    assert status == 401 and body["errors"][0]["code_name"] == "Unauthorized"
    assert (await get(http, fake, token, f"/members/{fake.campaigns[B].member_by_user['cid']}"))[0] == 401
    assert (await get(http, fake, token, "/webhooks"))[0] == 401
    patron = fake.issue_tokens("cid", ("identity",)).access_token
    assert (await get(http, fake, patron, "/campaigns"))[0] == 401


# ---------------------------------------------------------------- rotation and revocation


async def test_refresh_rotates_per_creator_and_revocation_kills_both_tokens(fake, http) -> None:
    first = await authorize(http, fake, "bea", " ".join(CREATOR_SCOPES))
    status, second = await refresh(http, fake, first["refresh_token"])
    assert status == 200 and second["scope"] == first["scope"]
    assert await refresh(http, fake, first["refresh_token"]) == (401, {"error": "invalid_grant"})
    status, doc = await get(http, fake, second["access_token"], "/campaigns")
    assert [c["id"] for c in doc["data"]] == [B]

    assert fake.revoke("bea") >= 1
    assert await refresh(http, fake, second["refresh_token"]) == (401, {"error": "invalid_grant"})
    status, body = await get(http, fake, second["access_token"], "/campaigns")
    assert status == 401 and body["errors"][0]["code_name"] == "Unauthorized"
    # Another creator's revocation is not the owner's.
    assert (await get(http, fake, fake.creator_access_token, "/campaigns"))[0] == 200
    assert (await refresh(http, fake, fake.creator_refresh_token))[0] == 200


# ---------------------------------------------------------------- a patron's memberships on /identity


MEMBERSHIPS = {
    "include": "memberships.campaign,memberships.currently_entitled_tiers",
    "fields[member]": "patron_status",
}


def campaigns_of(doc: dict[str, Any]) -> dict[str, list[str]]:
    """campaign id → entitled tier ids, for each membership /identity returned."""
    members = {item["id"]: item for item in doc.get("included", []) if item["type"] == "member"}
    found = {}
    for link in doc["data"]["relationships"]["memberships"]["data"]:
        member = members[link["id"]]
        tiers = [t["id"] for t in member["relationships"]["currently_entitled_tiers"]["data"]]
        found[member["relationships"]["campaign"]["data"]["id"]] = tiers
    return found


async def test_identity_shows_other_campaigns_only_with_identity_memberships(fake, http) -> None:
    narrow = (await authorize(http, fake, "ann", "identity"))["access_token"]
    _, doc = await get(http, fake, narrow, "/identity", **MEMBERSHIPS)
    assert campaigns_of(doc) == {fake.campaign.id: ["1001"]}

    wide = (await authorize(http, fake, "ann", "identity identity.memberships"))["access_token"]
    _, doc = await get(http, fake, wide, "/identity", **MEMBERSHIPS)
    assert campaigns_of(doc) == {fake.campaign.id: ["1001"], B: ["2001"]}
    tiers = {item["id"] for item in doc["included"] if item["type"] == "tier"}
    assert tiers == {"1001", "2001"}

    # Cid belongs to B only: without the scope he shows no membership at all.
    cid = fake.issue_tokens("cid", ("identity",)).access_token
    _, doc = await get(http, fake, cid, "/identity", **MEMBERSHIPS)
    assert doc["data"]["relationships"]["memberships"]["data"] == []
