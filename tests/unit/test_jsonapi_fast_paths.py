"""The member reader's fast paths (JSON's own types taken as they are) read exactly what the forgiving readers
read: odd types and non-dict mappings still go the slow way and give the same snapshot as before."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from bot.domain.models import PatronStatus
from bot.patreon.client import MEMBER_REQUEST_FIELDS
from bot.patreon.jsonapi import parse_members_page

NO_USER: dict[str, Any] = {"full_name": None, "social_connections": {"discord": None}}


def _page(attributes: dict[str, Any], user_attributes: Any, relationships: Any) -> dict[str, Any]:
    return {
        "data": [{"type": "member", "id": "m1", "attributes": attributes, "relationships": relationships}],
        "included": [{"type": "user", "id": "u1", "attributes": user_attributes}],
        "meta": {"pagination": {"cursors": {"next": None}, "total": 1}},
    }


ODD_MEMBER: dict[str, Any] = {
    "campaign_lifetime_support_cents": "1200",
    "currently_entitled_amount_cents": 500.0,
    "full_name": None,
    "is_free_trial": "true",
    "is_gifted": "FALSE",
    "last_charge_date": "2025-02-26T12:00:00",
    "last_charge_status": 7,
    "next_charge_date": "not a date",
    "patron_status": "secret_patron",
    "pledge_cadence": "12",
    "pledge_relationship_start": None,
    "will_pay_amount_cents": True,
}


def test_odd_values_take_the_forgiving_readers() -> None:
    relationships = {
        "currently_entitled_tiers": {"data": [{"id": 3001}, {"id": "3001"}, "junk"]},
        "user": {"data": {"id": "u1", "type": "user"}},
    }
    user = {"full_name": "From the user", "social_connections": {"discord": {"user_id": " 42 "}}}
    member = parse_members_page(_page(ODD_MEMBER, user, relationships), None, MEMBER_REQUEST_FIELDS).members[0]
    assert (member.campaign_lifetime_support_cents, member.currently_entitled_amount_cents) == (1200, 500)
    assert (member.will_pay_amount_cents, member.pledge_cadence) == (0, 12)  # a bool is not a number
    assert (member.is_free_trial, member.is_gifted) == (True, False)
    assert member.last_charge_status == "7"
    assert member.last_charge_date is not None and member.last_charge_date.tzinfo is not None
    assert member.next_charge_date is None and member.patron_status is None
    assert member.entitled_tier_ids == ("3001",) and member.tiers_known
    assert (member.full_name, member.social_discord_id, member.campaign_id) == ("From the user", 42, None)


def test_mappings_that_are_not_dicts_read_as_dicts() -> None:
    attributes = {**ODD_MEMBER, "patron_status": "active_patron", "full_name": "Ann"}
    relationships: dict[str, dict[str, Any]] = {
        "currently_entitled_tiers": {"data": [{"id": "3002", "type": "tier"}]},
        "user": {"data": {"id": "u1", "type": "user"}},
        "campaign": {"data": {"id": "c1", "type": "campaign"}},
    }
    user = {"full_name": None, "social_connections": {"discord": {"user_id": 77}}}
    plain = parse_members_page(_page(attributes, user, relationships), None, MEMBER_REQUEST_FIELDS).members[0]
    frozen = parse_members_page(
        _page(
            MappingProxyType(attributes),  # type: ignore[arg-type]
            MappingProxyType({"full_name": None, "social_connections": {"discord": MappingProxyType({"user_id": 77})}}),
            MappingProxyType({name: MappingProxyType(value) for name, value in relationships.items()}),
        ),
        None,
        MEMBER_REQUEST_FIELDS,
    ).members[0]
    assert frozen == plain
    assert (plain.patron_status, plain.campaign_id, plain.social_discord_id) == (PatronStatus.ACTIVE, "c1", 77)


def test_broken_shapes_read_as_absent() -> None:
    relationships = {"currently_entitled_tiers": None, "user": {"data": {"id": "  "}}}
    member = parse_members_page(_page({**ODD_MEMBER}, NO_USER, relationships), None, MEMBER_REQUEST_FIELDS).members[0]
    assert (member.tiers_known, member.entitled_tier_ids) == (True, ())  # the key is there, its linkage is not
    assert (member.patreon_user_id, member.social_discord_id) == (None, None)
    bare = _page({**ODD_MEMBER}, NO_USER, "junk")
    no_relationships = parse_members_page(bare, None, MEMBER_REQUEST_FIELDS).members[0]
    assert (no_relationships.tiers_known, no_relationships.patreon_user_id) == (False, None)
