"""An independent model of docs/policy.md and of what the bot does with a member's roles over time.

Written from the page, not from `bot/` (nothing here imports it), and fed from what the fake Patreon holds, never
from the bot's parser: if the policy and this model disagree, one of them misreads the page. Two parts:

- `decide`: which managed roles a member should hold and whether removals are held back, from one letter per
  (patron status, last charge) as in the page's "whole grid", plus the page's rules for entitlement, grace,
  paid-through dates and role modes;
- `RoleModel`: per Discord member, the roles someone gave by hand and the roles the bot granted and the member
  still holds; `observe` is what the bot must do when it looks at the member (add what is desired and missing,
  remove only its own grants that are no longer desired, and nothing during a hold).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

STATUSES = (None, "active_patron", "declined_patron", "former_patron")
CHARGES = (
    None,
    "Paid",
    "Declined",
    "Deleted",
    "Pending",
    "Refunded",
    "Fraud",
    "Refunded by Patreon",
    "Other",
    "Partially Refunded",
    "Free Trial",
)
# n never pledged · g paid up · t free-trial charge · d decline grace · k unsettled, held · x money went back ·
# f former: paid-through, then the former role · F former after a refund: the former role at once.
GRID_ROWS = {
    None: "n n n n n n n n n n n",
    "active_patron": "g g d k g x x x k k t",
    "declined_patron": "d d d d d x x x d d d",
    "former_patron": "f f f f f F F F f f f",
}
GRID = {(status, charge): row.split()[i] for status, row in GRID_ROWS.items() for i, charge in enumerate(CHARGES)}
NON_PAYING = {"Refunded", "Fraud", "Refunded by Patreon"}


@dataclass(frozen=True)
class Pledge:
    """What Patreon holds for one member, copied field by field from the fake's own record."""

    patron_status: str | None
    last_charge_status: str | None
    last_charge_date: datetime | None
    next_charge_date: datetime | None
    pledge_cadence: int | None
    amount_cents: int
    tier_ids: tuple[str, ...]
    is_free_trial: bool
    lifetime_cents: int


@dataclass(frozen=True)
class TierInfo:
    amount_cents: int
    published: bool = True


@dataclass(frozen=True)
class Server:
    """One server's policy (the options of `/patreon-admin settings`) and its tier → roles map."""

    tier_roles: dict[str, frozenset[int]]
    grace_days: int = 7
    keep_until_paid_through: bool = True
    highest_only: bool = False
    free_role: int | None = None
    trial_role: int | None = None
    former_role: int | None = None
    lifetime_role: int | None = None
    lifetime_cents: int | None = None

    @property
    def tier_role_ids(self) -> frozenset[int]:
        return frozenset(role for roles in self.tier_roles.values() for role in roles)


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _rank(tier_id: str, tiers: dict[str, TierInfo]) -> tuple[int, int, int]:
    """Best first: dearer, then a tier the catalogue lacks above the Free tier, then the smaller id."""
    tier = tiers.get(tier_id)
    amount = tier.amount_cents if tier else 0
    return (-amount, 1 if tier is not None and amount <= 0 else 0, int(tier_id))


def _free(tier_id: str, tiers: dict[str, TierInfo]) -> bool:
    return tier_id in tiers and tiers[tier_id].amount_cents <= 0


def entitled_tiers(pledge: Pledge, tiers: dict[str, TierInfo]) -> tuple[str, ...]:
    """Listed tiers, or (listing no paid tier while paying an amount) the dearest published tier that amount buys."""
    listed = tuple(dict.fromkeys(pledge.tier_ids))
    paying = pledge.patron_status == "active_patron" or pledge.last_charge_status == "Paid"
    if any(not _free(t, tiers) for t in listed) or not paying or pledge.amount_cents <= 0:
        return listed
    buyable = [t for t, info in tiers.items() if 0 < info.amount_cents <= pledge.amount_cents and info.published]
    return (*listed, min(buyable, key=lambda t: _rank(t, tiers))) if buyable else listed


def tier_roles_for(tier_ids: tuple[str, ...], server: Server, tiers: dict[str, TierInfo]) -> set[int]:
    mapped = sorted((t for t in set(tier_ids) if server.tier_roles.get(t)), key=lambda t: _rank(t, tiers))
    chosen = mapped[:1] if server.highest_only else mapped
    return {role for tier_id in chosen for role in server.tier_roles[tier_id]}


def paid_through(pledge: Pledge, now: datetime) -> datetime | None:
    if pledge.last_charge_status in NON_PAYING:
        return None
    if pledge.next_charge_date is not None and pledge.next_charge_date > now:
        return pledge.next_charge_date
    if pledge.last_charge_status == "Paid" and pledge.last_charge_date is not None:
        cadence = pledge.pledge_cadence if pledge.pledge_cadence and pledge.pledge_cadence > 0 else 1
        return add_months(pledge.last_charge_date, cadence)
    return None


def decide(
    pledge: Pledge | None, server: Server, tiers: dict[str, TierInfo], now: datetime, held_tier_roles: set[int]
) -> tuple[set[int], bool]:
    """(the managed roles the member should hold, whether nothing may be removed now)."""
    if pledge is None:
        return set(), False
    roles, hold = _standing(pledge, server, tiers, now, held_tier_roles)
    threshold = server.lifetime_cents if server.lifetime_cents is not None else 1
    if server.lifetime_role is not None and pledge.lifetime_cents >= threshold:
        roles.add(server.lifetime_role)
    return roles, hold


def _standing(
    pledge: Pledge, server: Server, tiers: dict[str, TierInfo], now: datetime, held: set[int]
) -> tuple[set[int], bool]:
    letter = GRID[(pledge.patron_status, pledge.last_charge_status)]
    entitled = entitled_tiers(pledge, tiers)
    granted = tier_roles_for(entitled, server, tiers)
    kept = granted or set(held)
    special = lambda role: {role} if role is not None else set()  # noqa: E731
    if letter == "n":
        return tier_roles_for(tuple(t for t in entitled if _free(t, tiers)), server, tiers) | special(
            server.free_role
        ), False
    if letter == "x":
        return set(), False
    if letter == "F":
        return special(server.former_role), False
    if letter == "d":
        date = pledge.last_charge_date
        if server.grace_days <= 0 or (date is not None and now >= date + timedelta(days=server.grace_days)):
            return set(), False
        return kept, True
    if letter == "f":
        through = paid_through(pledge, now)
        if server.keep_until_paid_through and through is not None and now < through:
            return kept, True
        return special(server.former_role), False
    trial = pledge.is_free_trial or pledge.last_charge_status == "Free Trial"
    extra = special(server.trial_role) if trial else set()
    listed_paid = any(not _free(t, tiers) for t in pledge.tier_ids)
    if not listed_paid and pledge.amount_cents <= 0 and pledge.last_charge_status in ("Paid", "Pending"):
        return set(held) | extra, True  # Patreon's billing-day gap
    if letter == "k":
        return kept | extra, True
    return granted | extra, False


@dataclass
class MemberRoles:
    hand: set[int] = field(default_factory=set)
    bot: set[int] = field(default_factory=set)
    #: Roles the bot ever granted this member (a moderator never gives those by hand in the machine: the bot's
    #: ledger may still count them as its own until it sees them gone, which the model doesn't follow).
    ever_granted: set[int] = field(default_factory=set)

    @property
    def expected(self) -> set[int]:
        return self.hand | self.bot


class RoleModel:
    """What every member should hold, as the bot's documented behaviour moves it."""

    def __init__(self, server: Server, tiers: dict[str, TierInfo]) -> None:
        self.server = server
        self.tiers = tiers
        self.members: dict[int, MemberRoles] = {}

    def member(self, discord_id: int) -> MemberRoles:
        return self.members.setdefault(discord_id, MemberRoles())

    def observe(self, discord_id: int, pledge: Pledge | None, now: datetime) -> None:
        """The bot reconciles the member from `pledge` (None: not linked, or not in the campaign)."""
        member = self.member(discord_id)
        held = member.bot & self.server.tier_role_ids
        desired, hold = decide(pledge, self.server, self.tiers, now, held)
        added = desired - member.expected
        member.bot |= added
        member.ever_granted |= added
        if not hold:
            member.bot &= desired

    def hand_add(self, discord_id: int, role: int) -> None:
        member = self.member(discord_id)
        if role not in member.expected:
            member.hand.add(role)

    def hand_remove(self, discord_id: int, role: int) -> None:
        member = self.member(discord_id)
        member.hand.discard(role)
        member.bot.discard(role)


def utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)
