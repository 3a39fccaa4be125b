"""Linked Roles: the metadata schema the bot registers with Discord, and what metadata a patron has (pure).

Discord keeps one role connection per (application, user), shown in every server; server admins then require, on
any role, values of these records (Server Settings → Roles → Links). The records are what admins see, so the names
say what they mean. At most 5 records are allowed (docs/discord-api.md, Linked Roles); the bot uses all 5:

- `patron` (BOOLEAN_EQUAL): the policy would give a paid tier's roles now, a declined payment's grace and a
  cancelled pledge's paid-through period included: the same rule as the bot-managed roles.
- `tier_rank` (INTEGER_GREATER_THAN_OR_EQUAL): the best such tier's place by price among the campaign's paid tiers
  (1 the cheapest, tiers of equal price share a place; 0 none). "tier_rank ≥ 2" reads "Silver or better".
- `lifetime_support` (INTEGER_GREATER_THAN_OR_EQUAL): lifetime support in whole units of the campaign's currency.
- `patron_since` (DATETIME_LESS_THAN_OR_EQUAL): when the current pledge began, so a requirement of N days means
  "a patron for at least N days"; absent when not a patron.
- `campaign` (INTEGER_EQUAL): the Patreon campaign id these values are about (0: none). Discord shows one connection
  in every server and decides at claim time, so with several campaigns in one install a patron of campaign B would
  meet campaign A's server's `tier_rank >= 1`; a requirement that also says `campaign = <A's id>` can't be met by
  B's values. (Pushing zeros to everyone with several campaigns was the other choice; it would end Linked Roles for
  any install that connects a second campaign.)

`metadata_for` asks the policy itself (bot/domain/policy.py `decide_roles`) over a tier map that gives each tier
a stand-in role, so grace, paid-through, trials, the billing-day gap and inferred tiers mean exactly what they mean
for roles. Unlinked, or not a patron, is all zeros and false: pushing that is how a linked role is taken back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bot.domain.guild_settings import ROLE_SETTINGS, GuildSettings, RoleMode
from bot.domain.models import MembershipSnapshot, Tier, TierRoleMap
from bot.domain.policy import decide_roles

PLATFORM_NAME = "Patreon"
SCOPES = ("identify", "role_connections.write")
BOOLEAN_EQUAL, INTEGER_GREATER_THAN_OR_EQUAL, INTEGER_EQUAL, DATETIME_LESS_THAN_OR_EQUAL = 7, 2, 3, 5

#: The records registered at start-up: (type, key, name, description), what admins pick from in Discord.
METADATA_RECORDS: tuple[tuple[int, str, str, str], ...] = (
    (BOOLEAN_EQUAL, "patron", "Patron now", "Pledging on Patreon now (a declined payment's grace included)"),
    (
        INTEGER_GREATER_THAN_OR_EQUAL,
        "tier_rank",
        "Tier rank (1 = cheapest paid tier)",
        "The patron's tier by price among the campaign's paid tiers: 1 the cheapest, 2 the next, 0 none",
    ),
    (
        INTEGER_GREATER_THAN_OR_EQUAL,
        "lifetime_support",
        "Lifetime support",
        "Everything paid to the campaign, in whole units of its currency",
    ),
    (DATETIME_LESS_THAN_OR_EQUAL, "patron_since", "Patron for (days)", "Days since the current pledge began"),
    (
        INTEGER_EQUAL,
        "campaign",
        "Patreon campaign id",
        "The campaign these values are about: with several campaigns, require your campaign's id",
    ),
)


def schema_payload() -> list[dict[str, Any]]:
    """The body of `PUT /applications/{app}/role-connections/metadata`."""
    return [
        {"type": kind, "key": key, "name": name, "description": description}
        for kind, key, name, description in METADATA_RECORDS
    ]


@dataclass(frozen=True)
class LinkedRoleMetadata:
    patron: bool = False
    tier_rank: int = 0
    lifetime_support: int = 0
    patron_since: datetime | None = None
    #: The campaign id the values are about (0: none, e.g. unlinked).
    campaign: int = 0

    def payload(self) -> dict[str, str]:
        """Discord's `metadata` object: every value string-ified; a date only when there is one."""
        values = {
            "patron": "1" if self.patron else "0",
            "tier_rank": str(self.tier_rank),
            "lifetime_support": str(self.lifetime_support),
            "campaign": str(self.campaign),
        }
        if self.patron_since is not None:
            values["patron_since"] = self.patron_since.astimezone(UTC).replace(microsecond=0).isoformat()
        return values

    @classmethod
    def from_payload(cls, values: Mapping[str, str]) -> LinkedRoleMetadata:
        since = values.get("patron_since")
        return cls(
            patron=values.get("patron") == "1",
            tier_rank=int(values.get("tier_rank", "0")),
            lifetime_support=int(values.get("lifetime_support", "0")),
            patron_since=datetime.fromisoformat(since) if since else None,
            campaign=int(values.get("campaign", "0")),
        )

    def describe(self) -> str:
        """One line for `/patreon status`."""
        since = f", patron since {self.patron_since:%Y-%m-%d}" if self.patron_since else ""
        return (
            f"patron {'yes' if self.patron else 'no'}, tier rank {self.tier_rank}, "
            f"lifetime support {self.lifetime_support}{since}"
        )


#: Unlinked, never pledged, or no longer a patron.
NOTHING = LinkedRoleMetadata()


def tier_ranks(tiers: Mapping[str, Tier]) -> dict[str, int]:
    """Each paid tier's place by price (1 the cheapest; equal prices share a place); free tiers are left out."""
    prices = sorted({tier.amount_cents for tier in tiers.values() if tier.amount_cents > 0})
    place = {amount: index for index, amount in enumerate(prices, start=1)}
    return {tier_id: place[tier.amount_cents] for tier_id, tier in tiers.items() if tier.amount_cents > 0}


def metadata_for(
    membership: MembershipSnapshot | None,
    settings: GuildSettings,
    tiers: Mapping[str, Tier],
    now: datetime,
    last_pushed: LinkedRoleMetadata = NOTHING,
    campaign_id: str | None = None,
) -> LinkedRoleMetadata:
    """The metadata the policy gives this membership under `settings` (the grace and paid-through rules) at `now`.

    `last_pushed` plays the part of the roles a member holds: while the policy holds (a billing-day gap, an unsettled
    charge) the rank last pushed is kept rather than dropped, as held roles are.
    """
    campaign = int(campaign_id) if campaign_id is not None and campaign_id.isdigit() else 0
    if membership is None:
        return replace(NOTHING, campaign=campaign)
    ranks = tier_ranks(tiers)
    ids = sorted(ranks)
    stand_in = {tier_id: index for index, tier_id in enumerate(ids, start=1)}
    tier_map = TierRoleMap({tier_id: frozenset({stand_in[tier_id]}) for tier_id in ids})
    no_special_roles: dict[str, Any] = {name: None for name in ROLE_SETTINGS}
    plain = replace(settings, role_mode=RoleMode.STACK, **no_special_roles)
    held = frozenset(stand_in[t] for t in ids if last_pushed.tier_rank and ranks[t] == last_pushed.tier_rank)
    decision = decide_roles(membership, plain, tier_map, tiers, now, held_managed_roles=held)
    given = [ranks[tier_id] for tier_id in ids if stand_in[tier_id] in decision.desired]
    rank = max(given, default=0)
    return LinkedRoleMetadata(
        patron=rank > 0,
        tier_rank=rank,
        lifetime_support=max(0, membership.campaign_lifetime_support_cents) // 100,
        patron_since=membership.pledge_relationship_start if rank > 0 else None,
        campaign=campaign,
    )
