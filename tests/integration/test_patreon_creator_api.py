"""The real `CreatorClient` against the fake Patreon over 127.0.0.1: a second creator connects, lists campaigns,
registers and manages webhooks; attackers and revocations get the right errors; a patron's membership of a
connected campaign is read strictly (docs/patreon-api.md, "Creators and campaigns")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.patreon import PatreonAuthError, PatreonBadResponse, PatreonNotFound, PatreonRequestError
from bot.patreon.creator_api import (
    CREATOR_SCOPES,
    MEMBER_TRIGGERS,
    CreatorClient,
    is_revocation,
    sees_every_membership,
)
from fakes.patreon import FakePatreon

REDIRECT = "http://127.0.0.1:8080/patreon/callback"
B = "8000001"
HOOK = "https://bot.example/patreon/webhook/8000001"


@pytest.fixture
async def fake() -> AsyncIterator[FakePatreon]:
    server = FakePatreon(redirect_uris=(REDIRECT,))
    await server.start()
    server.add_tier("1001", "Bronze", 500)
    server.add_user("ann", "Ann", discord_id=1234)
    server.set_membership("ann", tier_ids=["1001"])
    bea = server.add_creator("bea", "Bea Creator", B)
    bea.add_tier("2001", "Gold", 1500)
    bea.set_membership("ann", tier_ids=["2001"])
    yield server
    await server.close()


@pytest.fixture
async def client(fake: FakePatreon) -> AsyncIterator[CreatorClient]:
    async with aiohttp.ClientSession() as session:
        yield CreatorClient(
            session,
            base_url=fake.base_url,
            client_id="fake-client",
            client_secret="fake-secret",
            redirect_uri=REDIRECT,
            user_agent="creator-api-tests/1.0",
            retry_base_delay=0.01,
        )


async def connect(fake: FakePatreon, client: CreatorClient, user_id: str, scopes: tuple[str, ...]) -> Any:
    """The creator approves at (fake) Patreon; the bot exchanges the code."""
    fake.next_authorizing_user = user_id
    async with aiohttp.ClientSession() as browser:
        url = client.authorize_url("state", scopes)
        async with browser.get(url, allow_redirects=False) as redirect:
            code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    return await client.exchange_code(code)


async def test_a_creator_connects_lists_campaigns_and_manages_a_webhook(fake, client) -> None:
    pair = await connect(fake, client, "bea", CREATOR_SCOPES)
    assert set(pair.scope) == set(CREATOR_SCOPES)
    (campaign,) = await client.get_campaigns(pair.access_token)
    assert campaign.id == B and {t.title for t in campaign.tiers} == {"Free", "Gold"}

    created = await client.create_webhook(pair.access_token, B, HOOK, MEMBER_TRIGGERS)
    assert created.secret == fake.webhooks.hooks[created.id].secret and len(created.secret or "") >= 32
    assert (created.uri, created.triggers, created.paused) == (HOOK, MEMBER_TRIGGERS, False)
    assert fake.webhooks.hooks[created.id].campaign_id == B
    (listed,) = await client.list_webhooks(pair.access_token)
    assert listed == created
    assert await client.webhook_for_uri(pair.access_token, HOOK) == created
    assert await client.webhook_for_uri(pair.access_token, HOOK + "/other") is None

    paused = await client.update_webhook(pair.access_token, created.id, paused=True)
    assert paused.paused and fake.webhooks.hooks[created.id].paused
    moved = await client.update_webhook(pair.access_token, created.id, uri=HOOK + "/v2", paused=False)
    assert (moved.uri, moved.paused) == (HOOK + "/v2", False)
    assert await client.forget_webhook(pair.access_token, created.id) is True
    assert await client.forget_webhook(pair.access_token, created.id) is False
    assert await client.list_webhooks(pair.access_token) == []


async def test_failures_and_pause_show_in_the_listing(fake, client) -> None:
    token = fake.issue_tokens("bea", CREATOR_SCOPES).access_token
    hook = await client.create_webhook(token, B, "http://127.0.0.1:9/unreachable", ["members:update"])
    for _ in range(3):
        await fake.deliver_event("members:update", "ann", campaign_id=B)
    (listed,) = await client.list_webhooks(token)
    assert (listed.id, listed.paused, listed.num_consecutive_times_failed) == (hook.id, True, 3)
    assert listed.last_attempted_at is not None


async def test_another_creators_webhook_and_campaign_are_refused(fake, client) -> None:
    owners = fake.add_webhook("https://owner.example/hook", ["members:update"])
    token = fake.issue_tokens("bea", CREATOR_SCOPES).access_token
    with pytest.raises(PatreonNotFound):
        await client.update_webhook(token, owners.id, uri="https://evil.example/x")
    with pytest.raises(PatreonNotFound):
        await client.delete_webhook(token, owners.id)
    with pytest.raises(PatreonAuthError) as forbidden:
        await client.create_webhook(token, fake.campaign.id, "https://evil.example/x", ["members:update"])
    assert forbidden.value.status == 403 and not is_revocation(forbidden.value)
    assert owners.uri == "https://owner.example/hook" and list(fake.webhooks.hooks) == [owners.id]
    assert await client.list_webhooks(token) == []


async def test_a_token_without_the_webhook_scope_is_refused(fake, client) -> None:
    pair = await connect(fake, client, "bea", ("identity", "campaigns", "campaigns.members"))
    with pytest.raises(PatreonAuthError) as refused:
        await client.create_webhook(pair.access_token, B, HOOK, MEMBER_TRIGGERS)
    assert refused.value.status == 401 and fake.webhooks.hooks == {}


async def test_bad_triggers_are_a_request_error_and_create_nothing(fake, client) -> None:
    token = fake.issue_tokens("bea", CREATOR_SCOPES).access_token
    with pytest.raises(PatreonRequestError):
        await client.create_webhook(token, B, HOOK, ["members:updated"])
    assert fake.webhooks.hooks == {}


async def test_a_revoked_app_is_told_apart_from_an_expired_token(fake, client) -> None:
    pair = await connect(fake, client, "bea", CREATOR_SCOPES)
    fake.revoke("bea")
    with pytest.raises(PatreonAuthError) as refused:
        await client.refresh(pair.refresh_token)
    assert is_revocation(refused.value) and refused.value.status == 401
    with pytest.raises(PatreonAuthError) as dead:
        await client.list_webhooks(pair.access_token)
    assert dead.value.status == 401 and not is_revocation(dead.value)


def _drop(attribute: str) -> Any:
    def rewrite(doc: Any, _query: Any) -> Any:
        items = doc["data"] if isinstance(doc["data"], list) else [doc["data"]]
        for item in items:
            item["attributes"].pop(attribute, None)
        return doc

    return rewrite


@pytest.mark.parametrize("attribute", ["secret", "id"])
async def test_a_created_webhook_without_secret_or_id_is_refused(fake, client, attribute) -> None:
    token = fake.issue_tokens("bea", CREATOR_SCOPES).access_token

    def rewrite(doc: Any, _query: Any) -> Any:
        if attribute == "id":
            doc["data"].pop("id")
        else:
            doc["data"]["attributes"].pop("secret")
        return doc

    fake.rewrite_responses(r"/webhooks$", rewrite, count=1)
    with pytest.raises(PatreonBadResponse):
        await client.create_webhook(token, B, HOOK, MEMBER_TRIGGERS)


async def test_a_listing_without_a_requested_field_is_refused(fake, client) -> None:
    token = fake.issue_tokens("bea", CREATOR_SCOPES).access_token
    await client.create_webhook(token, B, HOOK, MEMBER_TRIGGERS)
    fake.rewrite_responses(r"/webhooks$", _drop("paused"), count=1)
    with pytest.raises(PatreonBadResponse):
        await client.list_webhooks(token)


# ---------------------------------------------------------------- item 4: a patron of a connected campaign


async def test_a_patrons_membership_of_a_connected_campaign_needs_identity_memberships(fake, client) -> None:
    narrow = await connect(fake, client, "ann", ("identity",))
    assert not sees_every_membership(narrow)
    assert await client.campaign_membership(narrow.access_token, B) is None
    assert (await client.campaign_membership(narrow.access_token, fake.campaign.id)) is not None

    wide = await connect(fake, client, "ann", ("identity", "identity.memberships"))
    assert sees_every_membership(wide)
    membership = await client.campaign_membership(wide.access_token, B)
    assert membership is not None and membership.entitled_tier_ids == ("2001",)

    creator = fake.issue_tokens("bea", CREATOR_SCOPES).access_token
    confirmed = await client.confirm_member(creator, B, membership.member_id or "")
    assert confirmed is not None and confirmed.entitled_tier_ids == ("2001",) and confirmed.patreon_user_id == "ann"
    with pytest.raises(PatreonAuthError) as other:
        await client.confirm_member(creator, B, fake.campaign.member_by_user["ann"])
    assert other.value.status == 403
    fake.campaigns[B].remove_membership("ann")
    assert await client.confirm_member(creator, B, membership.member_id or "") is None


async def test_a_membership_without_its_campaign_is_never_credited_to_a_connected_one(fake, client) -> None:
    wide = await connect(fake, client, "ann", ("identity", "identity.memberships"))

    def only_as_anonymous(doc: Any, _query: Any) -> Any:
        """Patreon answering with one membership and no campaign relationship on it."""
        members = [item for item in doc["included"] if item["type"] == "member"]
        doc["included"] = [item for item in doc["included"] if item["type"] != "member"] + members[-1:]
        doc["data"]["relationships"]["memberships"]["data"] = [{"id": members[-1]["id"], "type": "member"}]
        members[-1]["relationships"].pop("campaign")
        return doc

    fake.rewrite_responses(r"/identity$", only_as_anonymous, count=1)
    assert await client.campaign_membership(wide.access_token, fake.campaign.id) is None


async def test_confirm_member_refuses_a_member_of_another_campaign(fake, client) -> None:
    creator = fake.issue_tokens("bea", CREATOR_SCOPES).access_token
    member_id = fake.campaigns[B].member_by_user["ann"]

    def elsewhere(doc: Any, _query: Any) -> Any:
        doc["data"]["relationships"]["campaign"]["data"]["id"] = fake.campaign.id
        return doc

    fake.rewrite_responses(r"/members/", elsewhere, count=1)
    with pytest.raises(PatreonBadResponse):
        await client.confirm_member(creator, B, member_id)
