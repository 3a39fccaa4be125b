"""The fake's records: tiers, users and members as plain slotted objects, and Patreon's timestamp style.

Members and users keep their last rendered JSON fragment (see `pages.py`) until they change, so serving 100,000
members never re-renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

PAID_STATUSES = ("active_patron",)
SOCIAL_PROVIDERS = (
    "deviantart",
    "facebook",
    "google",
    "instagram",
    "reddit",
    "spotify",
    "twitch",
    "twitter",
    "vimeo",
    "youtube",
)


class _Default(Enum):
    TOKEN = 0


#: "Work it out from the other arguments" for `set_membership` parameters where None is a real value.
DEFAULT = _Default.TOKEN


def iso(value: datetime | None) -> str | None:
    """Patreon's timestamp style: `2023-12-29T05:26:19.000+00:00`."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(slots=True)
class FakeTier:
    id: str
    title: str
    amount_cents: int
    discord_role_ids: list[str] | None = None
    published: bool = True
    description: str = ""
    created_at: datetime = field(default_factory=lambda: datetime(2023, 1, 1, tzinfo=UTC))
    patron_count: int = 0
    #: Attributes never sent, even when asked for (`CampaignState.omit_tier_attributes`).
    omitted: frozenset[str] = frozenset()


@dataclass(slots=True)
class FakeUser:
    id: str
    full_name: str
    discord_id: int | None = None
    email: str | None = None
    created: datetime = field(default_factory=lambda: datetime(2023, 1, 1, tzinfo=UTC))
    #: Raw `social_connections` from an imported document; None → built from `discord_id`.
    social_connections: dict[str, Any] | None = None
    #: Other raw attributes from an imported document, rendered as they were.
    extra: dict[str, Any] = field(default_factory=dict)
    #: How /identity answers this user's token: None normally, else a `BLANK_IDENTITY_SHAPES` key.
    identity_shape: str | None = None
    #: True once the user owns a campaign (`is_creator`).
    owns_campaign: bool = False
    #: A rendered JSON fragment and the (fields, include) key it was rendered for; see `pages.py`.
    fragment: str | None = None
    fragment_key: Any = None

    def attributes(self) -> dict[str, Any]:
        social = self.social_connections
        if social is None:
            social = dict.fromkeys(SOCIAL_PROVIDERS)
            social["discord"] = None if self.discord_id is None else {"url": None, "user_id": str(self.discord_id)}
        first, _, last = self.full_name.partition(" ")
        return {
            "about": None,
            "created": iso(self.created),
            "email": self.email,
            "first_name": first,
            "full_name": self.full_name,
            "hide_pledges": True,
            "image_url": f"https://c10.patreonusercontent.com/fake/user/{self.id}.png",
            "is_creator": self.owns_campaign,
            "last_name": last,
            "like_count": 0,
            "thumb_url": f"https://c10.patreonusercontent.com/fake/user/{self.id}-thumb.png",
            "url": f"https://www.patreon.com/user?u={self.id}",
            "vanity": None,
            **self.extra,
            "social_connections": social,
        }


@dataclass(slots=True)
class FakeMember:
    id: str
    user_id: str
    patron_status: str | None = None
    last_charge_status: str | None = None
    last_charge_date: datetime | None = None
    next_charge_date: datetime | None = None
    pledge_relationship_start: datetime | None = None
    pledge_cadence: int | None = None
    currently_entitled_amount_cents: int = 0
    will_pay_amount_cents: int = 0
    campaign_lifetime_support_cents: int = 0
    is_free_trial: bool = False
    is_gifted: bool = False
    tier_ids: tuple[str, ...] = ()
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: Attributes never sent, even when asked for (`CampaignState.omit_member_attributes`).
    omitted: frozenset[str] = frozenset()
    fragment: str | None = None
    fragment_key: Any = None

    def attributes(self, user: FakeUser | None) -> dict[str, Any]:
        """Every member attribute, as a real webhook delivery carries them (less the omitted ones)."""
        full = {
            "campaign_lifetime_support_cents": self.campaign_lifetime_support_cents,
            "currently_entitled_amount_cents": self.currently_entitled_amount_cents,
            "email": user.email if user else None,
            "full_name": user.full_name if user else None,
            "is_follower": False,
            "is_free_trial": self.is_free_trial,
            "is_gifted": self.is_gifted,
            "last_charge_date": iso(self.last_charge_date),
            "last_charge_status": self.last_charge_status,
            "lifetime_support_cents": self.campaign_lifetime_support_cents,
            "next_charge_date": iso(self.next_charge_date),
            "note": "",
            "patron_status": self.patron_status,
            "pledge_cadence": self.pledge_cadence,
            "pledge_relationship_start": iso(self.pledge_relationship_start),
            "will_pay_amount_cents": self.will_pay_amount_cents,
            **self.extra,
        }
        return {name: value for name, value in full.items() if name not in self.omitted}
