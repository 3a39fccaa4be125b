"""Which tiers a membership is entitled to, and the tier roles those earn: the tier half of the policy.

Split from bot/domain/policy.py, which judges a member's standing (active, declined, paid through, ...) and asks
this module what their tiers give. Pure like the policy: it reads only its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bot.domain import billing
from bot.domain.guild_settings import RoleMode
from bot.domain.models import MembershipSnapshot, PatronStatus, Tier, TierRoleMap
from bot.domain.money import amount_currency, same_currency


@dataclass(frozen=True)
class Entitlement:
    """The tiers a membership counts as entitled to, which of them was inferred, and whether none can be known."""

    tier_ids: tuple[str, ...]
    inferred: str | None = None
    #: Paying, no tier listed, and no tier can be inferred: no catalogue, another currency, or several months a charge.
    unknowable: bool = False
    #: Why no tier could be inferred (shown in the summary), when `unknowable`.
    why: str = "no tier is known"


def entitlement_of(membership: MembershipSnapshot, tiers: Mapping[str, Tier], currency: str) -> Entitlement:
    """The tiers `membership` is entitled to, repairing Patreon's blank-tier gap.

    Patreon's `currently_entitled_tiers` is trusted when it lists a paid tier (or one missing from the
    catalogue). When it lists none, or was absent (`tiers_known` False), but the member pays (status
    active, or last charge Paid) and `currently_entitled_amount_cents > 0`, the tier is inferred: the
    highest-amount tier with 0 < amount <= the entitled amount that is not known to be unpublished
    (ties: smaller id). Free tiers that were listed stay. With no catalogue at all the entitlement is
    `unknowable`; with a catalogue but no tier that cheap, the member simply has no paid tier.

    Tier prices are monthly and in the campaign's `currency`, so nothing is inferred (`unknowable`, which keeps
    roles and adds none) from an amount in another currency or one that pays for several months (an annual plan's
    charge is a year's price, often discounted): comparing those with a monthly price would guess.
    """
    listed = tuple(dict.fromkeys(membership.entitled_tier_ids)) if membership.tiers_known else ()
    amount = membership.currently_entitled_amount_cents
    paying = membership.patron_status == PatronStatus.ACTIVE or membership.last_charge_status == billing.PAID
    if any(not is_known_free(t, tiers) for t in listed) or not paying or amount <= 0:
        return Entitlement(listed)
    if not same_currency(membership, currency):
        paid_in = amount_currency(membership, currency)
        return Entitlement(
            listed, unknowable=True, why=f"pays in {paid_in}, not the campaign's {currency}, and no tier is listed"
        )
    months = billing.cadence_months(membership)
    if months > 1:
        return Entitlement(listed, unknowable=True, why=f"pays every {months} months and no tier is listed")
    candidates = [
        tier_id for tier_id, tier in tiers.items() if 0 < tier.amount_cents <= amount and tier.published is not False
    ]
    if not candidates:
        return Entitlement(listed, unknowable=not tiers)
    inferred = min(candidates, key=lambda t: rank_key(t, tiers))
    return Entitlement((*listed, inferred), inferred=inferred)


def tier_grants(
    tier_ids: Iterable[str],
    inferred: str | None,
    tier_roles: TierRoleMap,
    tiers: Mapping[str, Tier],
    mode: RoleMode,
    explain: bool = True,
) -> tuple[dict[int, str], dict[int, str]]:
    """Roles earned by `tier_ids` under `mode`, with reasons; and the roles HIGHEST mode passed over (with
    `explain` only: they matter only as reasons)."""
    mapped = sorted((t for t in set(tier_ids) if tier_roles.roles_by_tier.get(t)), key=lambda t: rank_key(t, tiers))
    chosen = mapped[:1] if mode == RoleMode.HIGHEST else mapped
    if not explain:
        return {role: "" for tier_id in chosen for role in tier_roles.roles_by_tier[tier_id]}, {}
    granted: dict[int, str] = {}
    for tier_id in chosen:
        how = "inferred from the entitled amount (Patreon listed no tier)" if tier_id == inferred else "is entitled"
        for role in sorted(tier_roles.roles_by_tier[tier_id]):
            granted.setdefault(role, f"tier {tier_name(tier_id, tiers)} {how}")
    denied: dict[int, str] = {}
    for tier_id in mapped[len(chosen) :]:
        outranks = f"highest-only: {tier_name(mapped[0], tiers)} outranks {tier_name(tier_id, tiers)}"
        for role in sorted(tier_roles.roles_by_tier[tier_id] - granted.keys()):
            denied.setdefault(role, outranks)
    return granted, denied


def rank_key(tier_id: str, tiers: Mapping[str, Tier]) -> tuple[int, int, tuple[int, int, str]]:
    """Sort key, best first: higher amount, then unknown above Free, then smaller id (numeric if digits)."""
    tier = tiers.get(tier_id)
    amount = tier.amount_cents if tier is not None else 0
    known_free = tier is not None and tier.amount_cents <= 0
    numeric = tier_id.isascii() and tier_id.isdigit()
    return (-amount, 1 if known_free else 0, (0, int(tier_id), tier_id) if numeric else (1, 0, tier_id))


def is_known_free(tier_id: str, tiers: Mapping[str, Tier]) -> bool:
    tier = tiers.get(tier_id)
    return tier is not None and tier.amount_cents <= 0


def tier_name(tier_id: str, tiers: Mapping[str, Tier]) -> str:
    tier = tiers.get(tier_id)
    return tier.title if tier is not None and tier.title else tier_id


def tier_list(tier_ids: Iterable[str], tiers: Mapping[str, Tier], keep_free: bool = False) -> str:
    """Tier names best first; the Free tier is left out when a paid one is named (unless keep_free)."""
    ordered = sorted(set(tier_ids), key=lambda t: rank_key(t, tiers))
    shown = ordered if keep_free else [t for t in ordered if not is_known_free(t, tiers)] or ordered
    return ", ".join(tier_name(t, tiers) for t in shown) or "no tier"
