"""The Linked Roles metadata is the policy's view of a patron: grace, paid-through and the billing-day gap included."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bot.accounts.linked_roles import (
    NOTHING,
    LinkedRoleMetadata,
    metadata_for,
    schema_payload,
    tier_ranks,
)
from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus, Tier

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
SINCE = datetime(2025, 1, 2, tzinfo=UTC)
TIERS = {
    "free": Tier("free", "Free", 0),
    "bronze": Tier("bronze", "Bronze", 500),
    "silver": Tier("silver", "Silver", 1000),
    "silver2": Tier("silver2", "Silver (annual)", 1000),
    "gold": Tier("gold", "Gold", 2500),
}
SETTINGS = GuildSettings(guild_id=1, enabled=True)


def member(tier: str | None, **fields: object) -> MembershipSnapshot:
    values: dict[str, object] = {
        "member_id": "m1",
        "campaign_id": "c1",
        "patreon_user_id": "p1",
        "patron_status": PatronStatus.ACTIVE,
        "last_charge_status": "Paid",
        "last_charge_date": NOW - timedelta(days=3),
        "next_charge_date": NOW + timedelta(days=27),
        "pledge_relationship_start": SINCE,
        "currently_entitled_amount_cents": TIERS[tier].amount_cents if tier else 0,
        "campaign_lifetime_support_cents": 12_345,
        "entitled_tier_ids": (tier,) if tier else (),
        "pledge_cadence": 1,
    }
    values.update(fields)
    return MembershipSnapshot(**values)  # type: ignore[arg-type]


def test_the_schema_fits_discords_rules():
    records = schema_payload()
    assert len(records) <= 5
    for record in records:
        assert re.fullmatch(r"[a-z0-9_]{1,50}", record["key"]) and 1 <= record["type"] <= 8
        assert 1 <= len(record["name"]) <= 100 and 1 <= len(record["description"]) <= 200


def test_ranks_go_by_price_and_equal_prices_share_a_place():
    assert tier_ranks(TIERS) == {"bronze": 1, "silver": 2, "silver2": 2, "gold": 3}


def test_an_active_patron_has_their_tiers_rank_and_since():
    assert metadata_for(member("silver"), SETTINGS, TIERS, NOW) == LinkedRoleMetadata(True, 2, 123, SINCE)
    assert metadata_for(member("gold"), SETTINGS, TIERS, NOW).tier_rank == 3
    assert metadata_for(member("free", patron_status=None), SETTINGS, TIERS, NOW) == LinkedRoleMetadata(
        False, 0, 123, None
    )
    assert metadata_for(None, SETTINGS, TIERS, NOW) == NOTHING


def test_grace_and_paid_through_keep_the_rank_until_they_end():
    declined = member(
        "gold",
        patron_status=PatronStatus.DECLINED,
        last_charge_status="Declined",
        last_charge_date=NOW - timedelta(days=2),
    )
    assert metadata_for(declined, SETTINGS, TIERS, NOW).tier_rank == 3
    assert metadata_for(declined, SETTINGS, TIERS, NOW + timedelta(days=6)).tier_rank == 0
    no_grace = GuildSettings(guild_id=1, enabled=True, decline_grace_days=0)
    assert not metadata_for(declined, no_grace, TIERS, NOW).patron
    cancelled = member("silver", patron_status=PatronStatus.FORMER, next_charge_date=NOW + timedelta(days=10))
    assert metadata_for(cancelled, SETTINGS, TIERS, NOW).tier_rank == 2
    assert metadata_for(cancelled, SETTINGS, TIERS, NOW + timedelta(days=40)) == LinkedRoleMetadata(False, 0, 123)


def test_a_billing_day_gap_holds_what_was_pushed():
    gap = member(None, currently_entitled_amount_cents=0)
    assert metadata_for(gap, SETTINGS, TIERS, NOW, last_pushed=LinkedRoleMetadata(True, 3, 123, SINCE)).tier_rank == 3
    assert metadata_for(gap, SETTINGS, TIERS, NOW).tier_rank == 0


def test_the_payload_is_stringified_and_round_trips():
    metadata = LinkedRoleMetadata(True, 2, 123, SINCE)
    payload = metadata.payload()
    assert payload == {
        "patron": "1",
        "tier_rank": "2",
        "lifetime_support": "123",
        "patron_since": "2025-01-02T00:00:00+00:00",
        "campaign": "0",
    }
    assert LinkedRoleMetadata.from_payload(payload) == metadata
    assert NOTHING.payload() == {"patron": "0", "tier_rank": "0", "lifetime_support": "0", "campaign": "0"}
