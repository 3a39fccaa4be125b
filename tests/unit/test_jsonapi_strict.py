"""The parser's strict side: a document that would be misread is refused, one that merely holds nulls is not.

An attribute the request asked for (`fields[type]=...`) and the answer left out would read as a default: a tier
without `amount_cents` as a free tier, a member without `patron_status` as "never pledged". With `requested` (what
the client sends), that document is unusable. An explicit null stays a value. Documents parsed without
`requested` (webhook bodies, the vendored samples) keep today's forgiving reading.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.domain.models import PatronStatus
from bot.patreon.client import CAMPAIGN_REQUEST_FIELDS, MEMBER_FIELDS, MEMBER_REQUEST_FIELDS, TIER_FIELDS
from bot.patreon.jsonapi import (
    JsonApiError,
    MissingAttributes,
    parse_campaign,
    parse_identity,
    parse_member_document,
    parse_members_page,
)
from tests.samples import sample

FULL_MEMBER: dict[str, Any] = {
    "campaign_lifetime_support_cents": 1000,
    "currently_entitled_amount_cents": 500,
    "full_name": "Ann",
    "is_free_trial": False,
    "is_gifted": False,
    "last_charge_date": "2025-02-26T12:00:00.000+00:00",
    "last_charge_status": "Paid",
    "next_charge_date": "2025-03-26T12:00:00.000+00:00",
    "patron_status": "active_patron",
    "pledge_cadence": 1,
    "pledge_relationship_start": "2025-01-01T00:00:00.000+00:00",
    "will_pay_amount_cents": 500,
}
FULL_TIER: dict[str, Any] = {
    "title": "Gold",
    "amount_cents": 1000,
    "patron_count": 3,
    "published": True,
    "discord_role_ids": None,
}
FULL_USER: dict[str, Any] = {"full_name": "Ann", "social_connections": {"discord": None}}


def without(attributes: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if key not in names}


def member_resource(member_id: str = "m1", user_id: str | None = "u1", **attributes: Any) -> dict[str, Any]:
    relationships: dict[str, Any] = {"currently_entitled_tiers": {"data": [{"id": "t1", "type": "tier"}]}}
    if user_id is not None:
        relationships["user"] = {"data": {"id": user_id, "type": "user"}}
    return {
        "type": "member",
        "id": member_id,
        "attributes": attributes or dict(FULL_MEMBER),
        "relationships": relationships,
    }


def page(*members: dict[str, Any], tier: dict[str, Any] | None = None, total: int | None = None) -> dict[str, Any]:
    users = [(m["relationships"].get("user") or {}).get("data") for m in members]
    users = [user["id"] for user in users if user and user["id"]]
    included = [{"type": "user", "id": uid, "attributes": dict(FULL_USER)} for uid in users]
    included.append({"type": "tier", "id": "t1", "attributes": dict(FULL_TIER) if tier is None else tier})
    return {
        "data": list(members),
        "included": included,
        "meta": {"pagination": {"cursors": {"next": None}, "total": total or len(members)}},
    }


# ---------------------------------------------------------------- requested but missing


@pytest.mark.parametrize("name", MEMBER_FIELDS)
def test_a_member_missing_any_requested_attribute_is_unusable(name: str) -> None:
    doc = page(member_resource(**without(FULL_MEMBER, name)))
    with pytest.raises(MissingAttributes, match=name):
        parse_members_page(doc, requested=MEMBER_REQUEST_FIELDS)


def test_a_member_missing_patron_status_is_not_read_as_never_pledged() -> None:
    doc = {"data": member_resource(**without(FULL_MEMBER, "patron_status"))}
    with pytest.raises(MissingAttributes, match="member m1 lacks the requested attribute"):
        parse_member_document(doc, requested=MEMBER_REQUEST_FIELDS)


def test_an_explicit_null_patron_status_still_means_never_pledged() -> None:
    doc = {"data": member_resource(**{**FULL_MEMBER, "patron_status": None, "last_charge_status": None})}
    snapshot = parse_member_document(doc, requested=MEMBER_REQUEST_FIELDS)
    assert snapshot.patron_status is None and snapshot.patreon_user_id == "u1"


@pytest.mark.parametrize("name", TIER_FIELDS)
def test_a_tier_missing_any_requested_attribute_is_unusable(name: str) -> None:
    doc = page(member_resource(), tier=without(FULL_TIER, name))
    with pytest.raises(MissingAttributes, match=rf"tier t1 .*{name}"):
        parse_members_page(doc, requested=MEMBER_REQUEST_FIELDS)


def test_a_campaign_tier_without_amount_cents_is_not_a_free_tier() -> None:
    doc = {
        "data": {
            "type": "campaign",
            "id": "c1",
            "attributes": {"vanity": "v", "url": "u", "patron_count": 1},
            "relationships": {"tiers": {"data": [{"id": "t1", "type": "tier"}]}},
        },
        "included": [{"type": "tier", "id": "t1", "attributes": without(FULL_TIER, "amount_cents")}],
    }
    with pytest.raises(MissingAttributes, match="amount_cents"):
        parse_campaign(doc, requested=CAMPAIGN_REQUEST_FIELDS)
    assert parse_campaign(doc).tiers[0].amount_cents == 0  # unrequested: the forgiving reading, as before


def test_a_campaign_tier_left_out_of_included_is_unusable() -> None:
    doc = {
        "data": {
            "type": "campaign",
            "id": "c1",
            "attributes": {"vanity": "v", "url": "u", "patron_count": 1},
            "relationships": {"tiers": {"data": [{"id": "t1", "type": "tier"}, {"id": "t2", "type": "tier"}]}},
        },
        "included": [{"type": "tier", "id": "t1", "attributes": dict(FULL_TIER)}],
    }
    with pytest.raises(MissingAttributes, match="t2"):
        parse_campaign(doc, requested=CAMPAIGN_REQUEST_FIELDS)


def test_an_included_user_missing_social_connections_is_unusable() -> None:
    doc = page(member_resource())
    doc["included"][0]["attributes"] = {"full_name": "Ann"}
    with pytest.raises(MissingAttributes, match=r"user u1 .*social_connections"):
        parse_members_page(doc, requested=MEMBER_REQUEST_FIELDS)


def test_a_resource_split_over_two_included_entries_counts_as_complete() -> None:
    doc = page(member_resource())
    doc["included"][1]["attributes"] = without(FULL_TIER, "amount_cents")
    doc["included"].append({"type": "tier", "id": "t1", "attributes": {"amount_cents": 1000}})
    parsed = parse_members_page(doc, requested=MEMBER_REQUEST_FIELDS)
    assert parsed.tiers[0].amount_cents == 1000


def test_a_full_document_parses_the_same_strict_or_not() -> None:
    doc = page(member_resource())
    assert parse_members_page(doc, requested=MEMBER_REQUEST_FIELDS) == parse_members_page(doc)


def test_a_webhook_body_is_a_hint_and_stays_forgiving() -> None:
    """Webhook bodies are not fetched with our fields: the real free-member capture has no `social_connections`
    on its user, and it still parses (the bot re-fetches the member with fields anyway)."""
    body = sample("webhook_members_create.json")
    snapshot = parse_member_document(body)
    assert snapshot.patron_status is None and snapshot.patreon_user_id == "111836593"
    with pytest.raises(MissingAttributes):
        parse_member_document(body, requested=MEMBER_REQUEST_FIELDS)


def test_a_real_page_is_complete_for_the_fields_it_asked_for_and_not_for_ours() -> None:
    """The Beira capture asked only for `fields[user]=social_connections`: complete for that, unusable for ours."""
    doc = sample("members_page_with_discord_social_connection.json")
    parsed = parse_members_page(doc, requested={"user": ("social_connections",)})
    assert parsed.members[0].social_discord_id == 970344763544973342
    with pytest.raises(MissingAttributes, match="member"):
        parse_members_page(doc, requested=MEMBER_REQUEST_FIELDS)


# ---------------------------------------------------------------- identity without a user id


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"type": "user", "attributes": dict(FULL_USER)},
        {"type": "user", "id": "", "attributes": dict(FULL_USER)},
        {"type": "user", "id": "   ", "attributes": dict(FULL_USER)},
        {"type": "user", "id": None, "attributes": dict(FULL_USER)},
        None,
        [],
    ],
    ids=["empty", "no-id", "blank-id", "spaces-id", "null-id", "null", "list"],
)
def test_an_identity_that_names_nobody_is_refused(data: Any) -> None:
    with pytest.raises(JsonApiError):
        parse_identity({"data": data})
    with pytest.raises(JsonApiError):
        parse_identity({"data": data}, requested=MEMBER_REQUEST_FIELDS)


def test_an_identity_membership_missing_a_requested_attribute_is_unusable() -> None:
    doc = {
        "data": {
            "type": "user",
            "id": "u1",
            "attributes": dict(FULL_USER),
            "relationships": {"memberships": {"data": [{"id": "m1", "type": "member"}]}},
        },
        "included": [member_resource(user_id=None, **without(FULL_MEMBER, "currently_entitled_amount_cents"))],
    }
    with pytest.raises(MissingAttributes, match="currently_entitled_amount_cents"):
        parse_identity(doc, requested=MEMBER_REQUEST_FIELDS)
    doc["included"] = [member_resource(user_id=None), {"type": "tier", "id": "t1", "attributes": FULL_TIER}]
    identity = parse_identity(doc, requested=MEMBER_REQUEST_FIELDS)
    assert identity.memberships[0].patron_status is PatronStatus.ACTIVE
    assert identity.memberships[0].patreon_user_id == "u1"


# ---------------------------------------------------------------- members without a user (deleted accounts)


@pytest.mark.parametrize(
    "user_relationship",
    [None, {"data": None}, {"data": {"id": "", "type": "user"}}],
    ids=["no-relationship", "data-null", "blank-id"],
)
def test_a_member_without_a_user_parses_with_no_user_id(user_relationship: Any) -> None:
    deleted = member_resource("m2", user_id=None)
    if user_relationship is not None:
        deleted["relationships"]["user"] = user_relationship
    parsed = parse_members_page(page(member_resource(), deleted, total=2), requested=MEMBER_REQUEST_FIELDS)
    assert [(m.member_id, m.patreon_user_id) for m in parsed.members] == [("m1", "u1"), ("m2", None)]
    assert parsed.total == 2
