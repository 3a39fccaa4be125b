"""Plain data shared by every layer: what Patreon told us, and the policy's answer for one member.

Everything here is frozen and free of I/O so the policy can be a pure function of it. What a guild chose (its
settings and how an admin sets each one) is bot/domain/guild_settings.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

#: Field metadata (`field(metadata=SECRET)`) for tokens and secrets, which `redacted_repr` shows as `'***'`.
SECRET: Mapping[str, bool] = MappingProxyType({"secret": True})


def redacted_repr(instance: Any) -> str:
    """The dataclass repr (repr() lands in logs), with every SECRET field that holds a value shown as `'***'`."""
    parts = []
    for item in fields(instance):
        if not item.repr:
            continue
        value = getattr(instance, item.name)
        shown = "'***'" if item.metadata.get("secret") and value else repr(value)
        parts.append(f"{item.name}={shown}")
    return f"{type(instance).__qualname__}({', '.join(parts)})"


class PatronStatus(StrEnum):
    """Patreon's `patron_status`; `None` on a snapshot means "never pledged" (a free member)."""

    ACTIVE = "active_patron"
    DECLINED = "declined_patron"
    FORMER = "former_patron"


@dataclass(frozen=True)
class Tier:
    id: str
    title: str = ""
    amount_cents: int = 0
    patron_count: int | None = None
    published: bool | None = None
    discord_role_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str = ""
    vanity: str | None = None
    url: str | None = None
    patron_count: int | None = None
    tiers: tuple[Tier, ...] = ()


@dataclass(frozen=True)
class PatreonUser:
    id: str
    full_name: str | None = None
    #: `social_connections.discord.user_id`, present only when the patron linked Discord on Patreon.
    social_discord_id: int | None = None


@dataclass(frozen=True)
class MembershipSnapshot:
    """One member of the campaign as Patreon described it at `observed_at`.

    `entitled_tier_ids` is what Patreon listed; it can be empty for a paying patron (billing-day gap),
    so the policy also looks at the amounts and charge fields.
    """

    member_id: str | None
    campaign_id: str | None
    patreon_user_id: str | None
    full_name: str | None = None
    patron_status: PatronStatus | None = None
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
    entitled_tier_ids: tuple[str, ...] = ()
    #: False when the document did not carry the `currently_entitled_tiers` relationship at all.
    tiers_known: bool = True
    social_discord_id: int | None = None
    observed_at: datetime | None = None
    #: ISO code of `currently_entitled_amount_cents` / `will_pay_amount_cents` when the document named it (v1-style
    #: `currency`, a pledge event's `currency_code`); None when Patreon didn't say, which v2 members never do
    #: (docs/patreon-api.md, "Money"). `campaign_lifetime_support_cents` is always in the campaign's currency.
    currency: str | None = None


@dataclass(frozen=True)
class Identity:
    """The /identity answer: who authorised us, and their memberships we can see."""

    user: PatreonUser
    memberships: tuple[MembershipSnapshot, ...] = ()

    def membership_for(self, campaign_id: str) -> MembershipSnapshot | None:
        """The membership of exactly this campaign. One without a campaign (a document that didn't include
        `memberships.campaign`) is never taken for any: with several campaigns served, it could be another's."""
        return next((m for m in self.memberships if m.campaign_id == campaign_id), None)


@dataclass(frozen=True)
class MembersPage:
    members: tuple[MembershipSnapshot, ...]
    tiers: tuple[Tier, ...] = ()
    next_cursor: str | None = None
    total: int | None = None


@dataclass(frozen=True)
class TokenPair:
    access_token: str = field(metadata=SECRET)
    refresh_token: str = field(metadata=SECRET)
    expires_at: datetime
    scope: tuple[str, ...] = ()
    token_type: str = "Bearer"

    def __repr__(self) -> str:
        return redacted_repr(self)


@dataclass(frozen=True)
class TierRoleMap:
    """tier id → the Discord roles that tier earns in one guild (a tier may carry several roles)."""

    roles_by_tier: dict[str, frozenset[int]] = field(default_factory=dict)

    def managed_role_ids(self) -> frozenset[int]:
        result: set[int] = set()
        for roles in self.roles_by_tier.values():
            result |= roles
        return frozenset(result)


@dataclass(frozen=True)
class RoleDecision:
    """What the policy wants for one member in one guild, with a reason a human can read.

    `hold` means "do not remove anything right now" (grace period, billing-day gap, paid-through time):
    the reconcile engine may still add roles in `desired` but removes none.
    """

    desired: frozenset[int]
    hold: bool
    summary: str
    reasons: dict[int, str] = field(default_factory=dict)
