"""The webhook endpoint over loopback: signatures, limits, every real sample, replays and reorderings."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.store import WEBHOOK_LAST_SEEN
from bot.web.webhook_receiver import MAX_BODY_BYTES, sign
from fakes.sync_harness import GUILD, SyncHarness
from tests.samples import sample_bytes, sample_paths

SAMPLE_PARAMS = [path.name for path in sample_paths(("webhook_",))]
GOLD_ROLE, BRONZE_ROLE, VIP_ROLE = 630000000000000001, 630000000000000002, 630000000000000003
ANN = 650000000000000001


def load(name: str) -> tuple[bytes, dict]:
    raw = sample_bytes(name)
    return raw, json.loads(raw)


def sample_campaign(doc: dict) -> str:
    data = doc.get("data") or {}
    campaign = ((data.get("relationships") or {}).get("campaign") or {}).get("data") or {}
    return campaign.get("id") or "7654321"


async def started(tmp_path, campaign_id: str = "7654321") -> SyncHarness:
    return await SyncHarness(tmp_path / "bot.sqlite3", campaign_id).start()


@pytest.fixture
async def harness(tmp_path):
    """A campaign with Gold and Bronze; Ann (Discord) linked to p-ann, a Bronze patron, with a hand-given VIP."""
    h = await started(tmp_path)
    h.patreon.add_tier("2001", "Gold", 1000)
    h.patreon.add_tier("2002", "Bronze", 500)
    h.patreon.add_user("p-ann", "Ann")
    h.patreon.set_membership("p-ann", "active_patron", tier_ids=["2002"])
    await h.store.map_tier_role(GUILD, "2001", GOLD_ROLE)
    await h.store.map_tier_role(GUILD, "2002", BRONZE_ROLE)
    await h.store.save_tiers(h.patreon.campaign.id, [])
    h.link_member(ANN, {VIP_ROLE})
    await h.store.save_link(ANN, "p-ann", GUILD, "oauth")
    try:
        yield h
    finally:
        await h.close()


def member_fetches(h: SyncHarness) -> int:
    return sum(1 for _m, path, _q in h.patreon.calls if path.startswith("/api/oauth2/v2/members/"))


# ------------------------------------------------------------------ every real sample


@pytest.mark.parametrize("name", SAMPLE_PARAMS)
async def test_every_sample_signed_right_is_accepted_and_applied(tmp_path, name):
    raw, doc = load(name)
    h = await started(tmp_path, sample_campaign(doc))
    try:
        data = doc["data"]
        is_member = data.get("type") == "member" and data.get("id") is not None
        if is_member:
            h.patreon.import_member_document(doc)
        trigger = "members:pledge:update" if is_member else "members:create"
        status, text = await h.post(raw, trigger=trigger)
        assert 200 <= status < 300, text
        assert await h.store.get_fact(WEBHOOK_LAST_SEEN)
        await h.apply()
        counts = await h.store.webhook_event_counts()
        user_id = ((data.get("relationships") or {}).get("user") or {}).get("data", {}).get("id")
        if is_member:
            assert counts == {"done": 1}
            snapshot = await h.store.get_membership(user_id)
            assert snapshot is not None and snapshot.member_id == data["id"]
            assert snapshot.patron_status == data["attributes"].get("patron_status")
            assert member_fetches(h) == 1, "the payload is a hint: the member is fetched again"
        else:
            assert counts == {"ignored": 1}, "nothing to apply (a webhook-API document or the portal test)"
            assert member_fetches(h) == 0
            if user_id:
                assert await h.store.get_membership(user_id) is None
    finally:
        await h.close()


@pytest.mark.parametrize("name", SAMPLE_PARAMS)
async def test_every_sample_signed_wrong_is_refused_and_not_recorded(harness, name):
    raw, _ = load(name)
    wrong = sign(raw, "not-the-secret")
    assert (await harness.post(raw, signature=wrong))[0] == 401
    right = sign(raw, "harness-webhook-secret")
    flipped = right[:-1] + ("1" if right[-1] != "1" else "2")
    assert (await harness.post(raw, signature=flipped))[0] == 401
    assert (await harness.post(raw, signature=right[:16]))[0] == 401
    assert (await harness.post(raw + b" ", signature=sign(raw, "harness-webhook-secret")))[0] == 401
    assert await harness.store.webhook_event_counts() == {}
    assert await harness.store.get_fact(WEBHOOK_LAST_SEEN) is None


# ------------------------------------------------------------------ the HTTP contract


async def test_missing_signature_is_401(harness):
    body = harness.patreon.render_member_webhook_body("members:update", "p-ann")
    status, _ = await harness.post(body, sign_it=False)
    assert status == 401
    assert await harness.store.webhook_event_counts() == {}


async def test_oversize_body_is_413_before_anything_else(harness):
    body = b'{"data": null, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    status, _ = await harness.post(body)
    assert status == 413
    just_under = b'{"data":null,"p":"' + b"x" * (MAX_BODY_BYTES - 21) + b'"}'
    assert len(just_under) <= MAX_BODY_BYTES
    assert (await harness.post(just_under, trigger="members:create"))[0] == 200
    assert await harness.store.webhook_event_counts() == {"ignored": 1}


async def test_oversize_chunked_body_without_length_is_413(harness):
    async def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    status, _ = await harness.post(chunks(), signature="0" * 32)  # type: ignore[arg-type]
    assert status == 413


DEEPLY_NESTED = b'{"data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'{"meta": {}}', b'{"data": 5}', DEEPLY_NESTED],
    ids=["broken", "empty", "not-utf8", "list", "no-data", "data-number", "deeply-nested"],
)
async def test_broken_or_non_jsonapi_body_is_400(harness, body):
    status, _ = await harness.post(body)
    assert status == 400
    assert await harness.store.webhook_event_counts() == {}


async def test_unknown_trigger_is_accepted_and_ignored(harness):
    body = harness.patreon.render_member_webhook_body("members:update", "p-ann")
    status, text = await harness.post(body, trigger="posts:publish")
    assert status == 200 and "unknown trigger" in text
    assert await harness.apply() == 0
    assert member_fetches(harness) == 0


# ------------------------------------------------------------------ applying: re-fetch, replay, reorder


async def test_a_delivery_re_fetches_and_queues_the_member(harness):
    harness.patreon.set_membership("p-ann", "active_patron", tier_ids=["2001"])
    status, _ = await harness.deliver("members:pledge:update", "p-ann")
    assert status == 202
    await harness.apply()
    assert harness.guild.members[ANN] == {VIP_ROLE, GOLD_ROLE}
    assert harness.gateway.calls == [(GUILD, ANN, frozenset({GOLD_ROLE}), frozenset())]


async def test_a_replayed_delivery_is_harmless(harness):
    harness.patreon.set_membership("p-ann", "active_patron", tier_ids=["2001"])
    body = harness.patreon.render_member_webhook_body("members:pledge:update", "p-ann")
    for _ in range(3):
        assert (await harness.post(body, trigger="members:pledge:update"))[0] == 202
    await harness.apply()
    assert member_fetches(harness) == 1, "pending events for one member are coalesced into one fetch"
    for _ in range(2):
        assert (await harness.post(body, trigger="members:pledge:update"))[0] == 202
        await harness.apply()
    assert harness.guild.members[ANN] == {VIP_ROLE, GOLD_ROLE}
    assert len(harness.gateway.calls) == 1, "one role change in all"
    assert await harness.store.webhook_event_counts() == {"done": 5}


async def test_an_old_delivery_arriving_late_does_not_roll_back(harness):
    old_body = harness.patreon.render_member_webhook_body("members:pledge:create", "p-ann")  # Bronze
    harness.patreon.set_membership("p-ann", "active_patron", tier_ids=["2001"])
    new_body = harness.patreon.render_member_webhook_body("members:pledge:update", "p-ann")  # Gold
    await harness.post(new_body, trigger="members:pledge:update")
    await harness.apply()
    assert harness.guild.members[ANN] == {VIP_ROLE, GOLD_ROLE}
    await harness.post(old_body, trigger="members:pledge:create")
    await harness.apply()
    assert harness.guild.members[ANN] == {VIP_ROLE, GOLD_ROLE}
    snapshot = await harness.store.get_membership("p-ann")
    assert snapshot is not None and snapshot.entitled_tier_ids == ("2001",)


async def test_a_late_404_for_an_old_membership_keeps_the_renewed_one(harness):
    old_body = harness.patreon.render_member_webhook_body("members:create", "p-ann")
    harness.patreon.remove_membership("p-ann")
    harness.patreon.set_membership("p-ann", "active_patron", tier_ids=["2001"])  # renewed: a new member id
    await harness.deliver("members:create", "p-ann")
    await harness.apply()
    await harness.post(old_body, trigger="members:delete")  # the old id is gone at Patreon (404)
    await harness.apply()
    snapshot = await harness.store.get_membership("p-ann")
    assert snapshot is not None and snapshot.entitled_tier_ids == ("2001",)
    assert harness.guild.members[ANN] == {VIP_ROLE, GOLD_ROLE}


async def test_members_delete_forgets_the_membership_and_removes_only_granted_roles(harness):
    await harness.deliver("members:create", "p-ann")
    await harness.apply()
    assert harness.guild.members[ANN] == {VIP_ROLE, BRONZE_ROLE}
    harness.patreon.remove_membership("p-ann")
    await harness.deliver("members:delete", "p-ann")
    await harness.apply()
    assert await harness.store.get_membership("p-ann") is None
    assert harness.guild.members[ANN] == {VIP_ROLE}


async def test_patreon_unavailable_keeps_events_pending_with_backoff(harness):
    await harness.deliver("members:create", "p-ann")
    await harness.apply()
    before = await harness.store.get_membership("p-ann")
    harness.patreon.remove_membership("p-ann")
    harness.patreon.fail_next(r"/members/", status=500, count=100)
    await harness.deliver("members:delete", "p-ann")
    await harness.apply()
    assert (await harness.store.webhook_event_counts()).get("pending") == 1
    assert await harness.store.get_membership("p-ann") == before, "nothing removed while Patreon is down"
    assert harness.guild.members[ANN] == {VIP_ROLE, BRONZE_ROLE}
    (event,) = await harness.store.due_webhook_events(datetime.now(UTC) + timedelta(hours=1))
    assert event.attempts == 1


def in_campaign(document: dict, campaign_id: str) -> dict:
    """A member document moved to another campaign: its relationship and any included campaign resource."""
    data = document["data"]
    data.setdefault("relationships", {})["campaign"] = {"data": {"id": campaign_id, "type": "campaign"}}
    for resource in document.get("included") or []:
        if resource.get("type") == "campaign":
            resource["id"] = campaign_id
    return document


async def test_events_of_another_campaign_are_ignored(harness):
    foreign = json.loads(harness.patreon.render_member_webhook_body("members:update", "p-ann"))
    harness.patreon.campaign.members[foreign["data"]["id"]].tier_ids = ("2001",)
    body = json.dumps(in_campaign(foreign, "999")).encode()
    # Patreon, asked again, also says the member belongs to campaign 999, not to the one the bot serves.
    harness.patreon.rewrite_responses(r"^/api/oauth2/v2/members/", lambda document, query: in_campaign(document, "999"))
    await harness.post(body)
    await harness.apply()
    assert member_fetches(harness) == 1, "the payload is only a hint: the member is fetched again"
    assert await harness.store.webhook_event_counts() == {"ignored": 1}
    assert harness.gateway.calls == []
