"""Loading real captured member documents into the fake, so tests can show the fake renders them back faithfully."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fakes.patreon.state import CampaignState, FakeMember, FakeUser, parse_iso


def import_member_document(state: CampaignState, doc: Mapping[str, Any]) -> FakeMember:
    """Load a real member document (webhook body, /members/{id}) so the fake can render it back."""
    data = doc["data"]
    relationships = data.get("relationships") or {}
    campaign = (relationships.get("campaign") or {}).get("data")
    if campaign and campaign.get("id") != state.campaign_id:
        raise ValueError(f"document is for campaign {campaign.get('id')}, this fake is {state.campaign_id}")
    included = {(item["type"], item["id"]): item for item in doc.get("included") or []}
    for (kind, tier_id), item in included.items():
        if kind == "tier":
            attrs = item.get("attributes") or {}
            state.add_tier(
                tier_id,
                attrs.get("title") or "",
                attrs.get("amount_cents") or 0,
                discord_role_ids=attrs.get("discord_role_ids"),
                published=attrs.get("published", True),
            )
    tier_links = (relationships.get("currently_entitled_tiers") or {}).get("data") or []
    tier_ids = tuple(link["id"] for link in tier_links)
    for tier_id in tier_ids:
        if tier_id not in state.tiers:
            state.add_tier(tier_id, "", 0)
    user_link = (relationships.get("user") or {}).get("data")
    user_id = user_link["id"] if user_link else f"user-of-{data['id']}"
    user_attrs = dict((included.get(("user", user_id)) or {}).get("attributes") or {})
    attrs = dict(data.get("attributes") or {})
    user = state.users.get(user_id) or FakeUser(user_id, "")
    user.full_name = user_attrs.pop("full_name", None) or attrs.get("full_name") or ""
    user.email = attrs.get("email", user_attrs.pop("email", None))
    user.social_connections = user_attrs.pop("social_connections", None)
    user.extra, user.fragment_key = user_attrs, None
    state.users[user_id] = user
    member = state.members.get(data["id"]) or state.new_member(user_id, data["id"])
    state.adjust_counts(member, -1)
    if member.deleted:
        state.live_count += 1
    member.user_id, member.deleted = user_id, False
    state.member_by_user[user_id] = member.id
    member.patron_status = attrs.pop("patron_status", None)
    member.last_charge_status = attrs.pop("last_charge_status", None)
    member.last_charge_date = parse_iso(attrs.pop("last_charge_date", None))
    member.next_charge_date = parse_iso(attrs.pop("next_charge_date", None))
    member.pledge_relationship_start = parse_iso(attrs.pop("pledge_relationship_start", None))
    member.pledge_cadence = attrs.pop("pledge_cadence", None)
    member.currently_entitled_amount_cents = attrs.pop("currently_entitled_amount_cents", None) or 0
    member.will_pay_amount_cents = attrs.pop("will_pay_amount_cents", None) or 0
    member.campaign_lifetime_support_cents = attrs.pop("campaign_lifetime_support_cents", None) or 0
    member.is_free_trial = bool(attrs.pop("is_free_trial", False))
    member.is_gifted = bool(attrs.pop("is_gifted", False))
    member.tier_ids, member.extra, member.fragment_key = tier_ids, attrs, None
    state.adjust_counts(member, +1)
    return member
