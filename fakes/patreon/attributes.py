"""What the fake knows of each resource type's attributes: the documented v2 names (asking for others is a 400),
and the full attribute sets of the campaign and its tiers, before a request's `fields[...]` picks from them.
"""

from __future__ import annotations

from typing import Any

from fakes.patreon.state import CampaignState, FakeTier, iso

#: Documented v2 attributes per type (`_resources_v2.md`); asking for anything else is a 400.
KNOWN_ATTRIBUTES: dict[str, frozenset[str]] = {
    "member": frozenset(
        [
            "campaign_lifetime_support_cents",
            "currently_entitled_amount_cents",
            "email",
            "full_name",
            "is_follower",
            "is_free_trial",
            "is_gifted",
            "last_charge_date",
            "last_charge_status",
            "lifetime_support_cents",
            "next_charge_date",
            "note",
            "patron_status",
            "pledge_cadence",
            "pledge_relationship_start",
            "will_pay_amount_cents",
        ]
    ),
    "user": frozenset(
        [
            "about",
            "can_see_nsfw",
            "created",
            "email",
            "first_name",
            "full_name",
            "hide_pledges",
            "image_url",
            "is_creator",
            "is_email_verified",
            "last_name",
            "like_count",
            "social_connections",
            "thumb_url",
            "url",
            "vanity",
        ]
    ),
    "tier": frozenset(
        [
            "amount_cents",
            "created_at",
            "description",
            "discord_role_ids",
            "edited_at",
            "image_url",
            "patron_count",
            "post_count",
            "published",
            "published_at",
            "remaining",
            "requires_shipping",
            "title",
            "unpublished_at",
            "url",
            "user_limit",
        ]
    ),
    "campaign": frozenset(
        [
            "created_at",
            "creation_name",
            "discord_server_id",
            "google_analytics_id",
            "has_rss",
            "has_sent_rss_notify",
            "image_small_url",
            "image_url",
            "is_charged_immediately",
            "is_monthly",
            "is_nsfw",
            "main_video_embed",
            "main_video_url",
            "one_liner",
            "patron_count",
            "pay_per_name",
            "pledge_url",
            "published_at",
            "rss_artwork_url",
            "rss_feed_title",
            "show_earnings",
            "summary",
            "thanks_embed",
            "thanks_msg",
            "thanks_video_url",
            "url",
            "vanity",
        ]
    ),
    "webhook": frozenset(["last_attempted_at", "num_consecutive_times_failed", "paused", "secret", "triggers", "uri"]),
    "address": frozenset(
        [
            "addressee",
            "city",
            "country",
            "created_at",
            "line_1",
            "line_2",
            "phone_number",
            "postal_code",
            "state",
            "confirmed",
            "confirmed_at",
        ]
    ),
}


def campaign_attributes(state: CampaignState) -> dict[str, Any]:
    """Every v2 campaign attribute, as the fake renders them before the request's fields select some."""
    return {
        "created_at": iso(state.created_at),
        "creation_name": "fake things",
        "discord_server_id": None,
        "google_analytics_id": None,
        "has_rss": False,
        "has_sent_rss_notify": False,
        "image_small_url": f"https://c10.patreonusercontent.com/fake/campaign/{state.campaign_id}-small.png",
        "image_url": f"https://c10.patreonusercontent.com/fake/campaign/{state.campaign_id}.png",
        "is_charged_immediately": True,
        "is_monthly": True,
        "is_nsfw": False,
        "main_video_embed": None,
        "main_video_url": None,
        "one_liner": None,
        "patron_count": state.patron_count,
        "pay_per_name": "month",
        "pledge_url": f"/checkout/{state.campaign_id}",
        "published_at": iso(state.created_at),
        "rss_artwork_url": None,
        "rss_feed_title": None,
        "show_earnings": False,
        "summary": None,
        "thanks_embed": None,
        "thanks_msg": None,
        "thanks_video_url": None,
        "url": f"https://www.patreon.com/{state.vanity}",
        "vanity": state.vanity,
    }


def tier_attributes(state: CampaignState, tier: FakeTier) -> dict[str, Any]:
    """Every v2 tier attribute, less those the tier is set to omit (`CampaignState.omit_tier_attributes`)."""
    full = {
        "amount_cents": tier.amount_cents,
        "created_at": iso(tier.created_at),
        "description": tier.description,
        "discord_role_ids": tier.discord_role_ids,
        "edited_at": iso(tier.created_at),
        "image_url": None,
        "patron_count": tier.patron_count,
        "post_count": 0,
        "published": tier.published,
        "published_at": iso(tier.created_at) if tier.published else None,
        "remaining": None,
        "requires_shipping": False,
        "title": tier.title,
        "unpublished_at": None if tier.published else iso(tier.created_at),
        "url": f"/checkout/{state.campaign_id}?rid={tier.id}",
        "user_limit": None,
    }
    return {name: value for name, value in full.items() if name not in tier.omitted}
