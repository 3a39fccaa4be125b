"""Which managed Discord roles one campaign member should hold in one guild: a pure function.

`decide_roles` reads only its arguments (no I/O, no clock, no Discord), so any decision can be replayed and tested.
It promises:

* `desired` is a subset of `managed_role_ids(settings, tier_roles)`, and `reasons` explains every one of those roles
  (unless `explain=False`: the refresh and the job queue show no reasons, so they get the same roles without them);
* `hold=True` means "remove nothing now" (the engine may still add `desired`);
* a member who never pledged, or is not in the campaign, is never on hold;
* the result depends on values only, never on the order of tiers or of mappings.

The rules, row by row, are in docs/policy.md; tests/unit/test_policy.py checks them against an independent oracle.
Which tiers a membership is entitled to, and the roles those earn, is bot/domain/tier_entitlement.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from bot.domain import billing
from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus, RoleDecision, Tier, TierRoleMap
from bot.domain.money import amount_currency, format_money
from bot.domain.tier_entitlement import Entitlement, entitlement_of, is_known_free, tier_grants, tier_list

__all__ = ["decide_roles", "managed_role_ids", "still_pays"]


class _Standing(Enum):
    NOT_MEMBER = "not a member of the campaign"
    FREE = "free member"
    ACTIVE = "active patron"
    BILLING_GAP = "billing-day gap"
    UNSETTLED = "unsettled charge"
    DECLINE_GRACE = "decline grace"
    PAID_THROUGH = "paid-through period"
    LAPSED = "not paying"
    FORMER = "former patron"


_SETTLED_ACTIVE_CHARGES = frozenset({None, billing.PAID, billing.PENDING, billing.FREE_TRIAL})


@dataclass
class _Verdict:
    standing: _Standing
    hold: bool
    summary: str
    #: tier role → why it is desired.
    granted: dict[int, str] = field(default_factory=dict)
    #: tier role → why it is not desired, where more specific than "tier X not entitled".
    denied: dict[int, str] = field(default_factory=dict)
    #: Reason for every other undesired tier role; None means "tier X not entitled".
    denial: str | None = None
    #: Set only while Patreon calls the member active: these earn the free-trial / gifted roles.
    trial: bool = False
    gifted: bool = False


def managed_role_ids(settings: GuildSettings, tier_roles: TierRoleMap) -> frozenset[int]:
    """Every role this policy decides about: all tier roles and the guild's special roles."""
    return tier_roles.managed_role_ids() | settings.special_role_ids()


#: Standings in which Patreon's active patron still pays, or is being settled (the roles are held meanwhile).
_PAYING = frozenset({_Standing.ACTIVE, _Standing.BILLING_GAP, _Standing.UNSETTLED})


def still_pays(
    membership: MembershipSnapshot | None, settings: GuildSettings, tiers: Mapping[str, Tier], now: datetime
) -> bool:
    """Whether Patreon calls this member an active patron and this policy still counts that pledge as paid (or not
    yet settled), whatever roles the server maps: kick on lapse never counts an admin's `unmap` or trial setting
    against such a patron, but an active patron whose own charge was Fraud/Refunded, or declined past the grace, no
    longer pays (bot/sync/reconcile.py `not_own_lapse`; review 6, R6-1)."""
    if membership is None or membership.patron_status != PatronStatus.ACTIVE:
        return False
    now = billing.as_utc(now)
    verdict = _judge(membership, settings, TierRoleMap(), tiers, now, frozenset(), explain=False)
    return verdict.standing in _PAYING


def decide_roles(
    membership: MembershipSnapshot | None,
    settings: GuildSettings,
    tier_roles: TierRoleMap,
    tiers: Mapping[str, Tier],
    now: datetime,
    held_managed_roles: frozenset[int] = frozenset(),
    *,
    explain: bool = True,
) -> RoleDecision:
    """The managed roles `membership` should hold in the guild of `settings` (rules: docs/policy.md).

    `tiers` is the campaign's tier catalogue by id (may be empty), `now` the decision time (naive is
    read as UTC) and `held_managed_roles` the managed roles the member holds that this bot granted.
    `explain=False` leaves `reasons` empty and builds none of their strings (the summary stays: it goes into
    Discord's audit log); the roles and the hold are the same either way.
    """
    now = billing.as_utc(now)
    held_tier_roles = frozenset(held_managed_roles) & tier_roles.managed_role_ids()
    verdict = _judge(membership, settings, tier_roles, tiers, now, held_tier_roles, explain)
    special = _special_roles(membership, settings, verdict, explain)
    if not explain:
        wanted = {role for role, entries in special.items() if any(want for want, _reason in entries)}
        return RoleDecision(frozenset(verdict.granted.keys() | wanted), verdict.hold, verdict.summary)
    desired: set[int] = set()
    reasons: dict[int, str] = {}
    for role in sorted(managed_role_ids(settings, tier_roles)):
        wants = [reason for wanted, reason in special.get(role, []) if wanted]
        refusals = [reason for wanted, reason in special.get(role, []) if not wanted]
        if role in verdict.granted:
            wants.insert(0, verdict.granted[role])
        elif role in tier_roles.managed_role_ids():
            refusals.insert(0, _tier_denial(role, verdict, tier_roles, tiers))
        if wants:
            desired.add(role)
        reasons[role] = "; ".join(wants or refusals)
    return RoleDecision(frozenset(desired), verdict.hold, verdict.summary, reasons)


def _judge(
    membership: MembershipSnapshot | None,
    settings: GuildSettings,
    tier_roles: TierRoleMap,
    tiers: Mapping[str, Tier],
    now: datetime,
    held: frozenset[int],
    explain: bool = True,
) -> _Verdict:
    if membership is None:
        return _Verdict(_Standing.NOT_MEMBER, False, "Not a member of the campaign", denial="not a member")
    status = membership.patron_status
    charge = membership.last_charge_status
    entitlement = entitlement_of(membership, tiers, settings.currency)
    mode = settings.role_mode
    if status is None:
        free_tiers = [t for t in entitlement.tier_ids if is_known_free(t, tiers)]
        granted, denied = tier_grants(free_tiers, None, tier_roles, tiers, mode, explain)
        return _Verdict(_Standing.FREE, False, "Free member (never pledged)", granted, denied)
    if status == PatronStatus.FORMER:
        return _judge_former(membership, settings, entitlement, tier_roles, tiers, now, held, explain)
    if charge in billing.NON_PAYING_CHARGES:
        lapsed = f"last charge {charge}: not paying"
        return _Verdict(_Standing.LAPSED, False, f"Last charge {charge}; treated as not paying", denial=lapsed)
    if status == PatronStatus.DECLINED or (status == PatronStatus.ACTIVE and charge == billing.DECLINED):
        return _judge_declined(membership, settings, entitlement, tier_roles, tiers, now, held, explain)
    if status != PatronStatus.ACTIVE:
        verdict = _Verdict(_Standing.UNSETTLED, True, f"Unknown patron status {status!r}; roles kept")
        return _kept(verdict, {}, {}, held, explain=explain)
    return _judge_active(membership, settings, entitlement, tier_roles, tiers, held, explain)


def _judge_active(
    membership: MembershipSnapshot,
    settings: GuildSettings,
    entitlement: Entitlement,
    tier_roles: TierRoleMap,
    tiers: Mapping[str, Tier],
    held: frozenset[int],
    explain: bool = True,
) -> _Verdict:
    charge = membership.last_charge_status
    trial = membership.is_free_trial or charge == billing.FREE_TRIAL
    gifted = membership.is_gifted
    eligible = entitlement.tier_ids
    if trial and not settings.trial_gets_tier_roles:
        eligible = tuple(t for t in eligible if is_known_free(t, tiers))
    granted, denied = tier_grants(eligible, entitlement.inferred, tier_roles, tiers, settings.role_mode, explain)
    if trial and not settings.trial_gets_tier_roles:
        for tier_id in entitlement.tier_ids:
            for role in tier_roles.roles_by_tier.get(tier_id, frozenset()) - granted.keys():
                denied.setdefault(role, "free trial: this server gives trials no tier roles")
    listed_paid = any(not is_known_free(t, tiers) for t in entitlement.tier_ids)
    amount = membership.currently_entitled_amount_cents
    if not listed_paid and amount <= 0 and charge in (billing.PAID, billing.PENDING):
        when = _day(membership.last_charge_date)
        summary = f"Billing day: Patreon shows no tier and no amount (last charge {charge}{when}); roles kept"
        verdict = _Verdict(_Standing.BILLING_GAP, True, summary, trial=trial, gifted=gifted)
        return _kept(verdict, {}, {}, held, explain=explain)
    if charge not in _SETTLED_ACTIVE_CHARGES:
        summary = f"Active patron, last charge {charge!r}; roles kept until Patreon settles it"
        verdict = _Verdict(_Standing.UNSETTLED, True, summary, trial=trial, gifted=gifted)
        return _kept(verdict, granted, denied, held, explain=explain)
    if entitlement.unknowable:
        summary = f"Active patron entitled to {_entitled(membership, settings)} but {entitlement.why}; roles kept"
        verdict = _Verdict(_Standing.UNSETTLED, True, summary, trial=trial, gifted=gifted)
        return _kept(verdict, granted, denied, held, also_held=True, explain=explain)
    kind = "Free-trial patron" if trial else "Gifted patron" if gifted else "Active patron"
    summary = f"{kind} of {tier_list(entitlement.tier_ids, tiers)}"
    if entitlement.inferred is not None:
        summary += f" (tier inferred from {_entitled(membership, settings)} entitled)"
    elif charge == billing.PAID and membership.last_charge_date is not None:
        summary += f" (paid {billing.as_utc(membership.last_charge_date):%Y-%m-%d})"
    elif charge == billing.PENDING:
        summary += " (payment pending)"
    return _Verdict(_Standing.ACTIVE, False, summary, granted, denied, trial=trial, gifted=gifted)


def _judge_declined(
    membership: MembershipSnapshot,
    settings: GuildSettings,
    entitlement: Entitlement,
    tier_roles: TierRoleMap,
    tiers: Mapping[str, Tier],
    now: datetime,
    held: frozenset[int],
    explain: bool = True,
) -> _Verdict:
    days = settings.decline_grace_days
    declined = f"Payment declined{_day(membership.last_charge_date)}"
    ends = billing.decline_grace_ends(membership, days)
    if days <= 0:
        return _Verdict(_Standing.LAPSED, False, f"{declined}; no grace period set", denial="payment declined")
    if ends is not None and now >= ends:
        over = f"payment declined; grace ended{_day(ends)}"
        return _Verdict(_Standing.LAPSED, False, f"{declined}; grace ended{_day(ends)}", denial=over)
    until = f"until {ends:%Y-%m-%d}" if ends is not None else "while no charge date is known"
    summary = f"{declined}; roles kept {until} ({days}-day grace)"
    granted, denied = tier_grants(
        entitlement.tier_ids, entitlement.inferred, tier_roles, tiers, settings.role_mode, explain
    )
    return _kept(_Verdict(_Standing.DECLINE_GRACE, True, summary), granted, denied, held, explain=explain)


def _judge_former(
    membership: MembershipSnapshot,
    settings: GuildSettings,
    entitlement: Entitlement,
    tier_roles: TierRoleMap,
    tiers: Mapping[str, Tier],
    now: datetime,
    held: frozenset[int],
    explain: bool = True,
) -> _Verdict:
    through = billing.paid_through(membership, now)
    if settings.keep_until_paid_through and through is not None and now < through:
        summary = f"Pledge cancelled; roles kept until {through:%Y-%m-%d} (paid through)"
        mode = settings.role_mode
        granted, denied = tier_grants(entitlement.tier_ids, entitlement.inferred, tier_roles, tiers, mode, explain)
        return _kept(_Verdict(_Standing.PAID_THROUGH, True, summary), granted, denied, held, explain=explain)
    ended = f"; paid period ended{_day(through)}" if through is not None and now >= through else ""
    return _Verdict(_Standing.FORMER, False, f"Former patron{ended}", denial=f"former patron{ended}")


def _kept(
    verdict: _Verdict,
    granted: Mapping[int, str],
    denied: Mapping[int, str],
    held: frozenset[int],
    also_held: bool = False,
    explain: bool = True,
) -> _Verdict:
    """A filled copy of a held verdict: the entitled tiers' roles, or else (or also) the tier roles the member holds.

    Pure: `verdict`, `granted` and `denied` are left as they were. Without `explain` the reasons are left blank.
    """
    label = verdict.standing.value
    if not explain:
        kept = dict.fromkeys(granted, "")
        if also_held or not granted:
            kept.update(dict.fromkeys(held - granted.keys(), ""))
        return replace(verdict, granted=kept, denied={})
    kept = {role: f"{reason}; kept during {label}" for role, reason in granted.items()}
    refused = dict(denied)
    denial = verdict.denial
    if also_held or not granted:
        for role in sorted(held - granted.keys()):
            kept[role] = f"held; kept during {label}"
            refused.pop(role, None)
        denial = f"not held; nothing is added during {label}"
    return replace(verdict, granted=kept, denied=refused, denial=denial)


def _tier_denial(role: int, verdict: _Verdict, tier_roles: TierRoleMap, tiers: Mapping[str, Tier]) -> str:
    if role in verdict.denied:
        return verdict.denied[role]
    if verdict.denial is not None:
        return verdict.denial
    owners = [t for t, roles in tier_roles.roles_by_tier.items() if role in roles]
    return f"tier {tier_list(owners, tiers, keep_free=True)} not entitled"


def _special_roles(
    membership: MembershipSnapshot | None, settings: GuildSettings, verdict: _Verdict, explain: bool = True
) -> dict[int, list[tuple[bool, str]]]:
    """Each special role's (wanted, reason) entries; one role id may fill several slots. Without `explain`
    every reason is blank (none is formatted)."""
    standing = verdict.standing
    currency = settings.currency
    threshold = settings.lifetime_threshold_cents if settings.lifetime_threshold_cents is not None else 1
    support = membership.campaign_lifetime_support_cents if membership is not None else 0
    slots = (
        (settings.free_member_role_id, standing is _Standing.FREE),
        (settings.free_trial_role_id, verdict.trial),
        (settings.gifted_role_id, verdict.gifted),
        (settings.former_patron_role_id, standing is _Standing.FORMER),
        (settings.lifetime_role_id, membership is not None and support >= threshold),
    )
    entries: dict[int, list[tuple[bool, str]]] = {}
    if not explain:
        for role_id, wanted in slots:
            if role_id is not None:
                entries.setdefault(role_id, []).append((wanted, ""))
        return entries
    what = standing.value
    texts = (
        ("free-member role: never pledged", f"free-member role: not a free member ({what})"),
        ("free-trial role: on a free trial", "free-trial role: not on an active free trial"),
        ("gifted role: gifted membership", "gifted role: no active gift"),
        ("former-patron role: pledge ended", f"former-patron role: not a former patron ({what})"),
        (
            f"lifetime role: {format_money(support, currency)} lifetime support >= {format_money(threshold, currency)}",
            f"lifetime role: {format_money(support, currency)} lifetime support < {format_money(threshold, currency)}"
            if membership is not None
            else "lifetime role: not a member of the campaign",
        ),
    )
    for (role_id, wanted), (yes, no) in zip(slots, texts, strict=True):
        if role_id is not None:
            entries.setdefault(role_id, []).append((wanted, yes if wanted else no))
    return entries


def _entitled(membership: MembershipSnapshot, settings: GuildSettings) -> str:
    return format_money(membership.currently_entitled_amount_cents, amount_currency(membership, settings.currency))


def _day(moment: datetime | None) -> str:
    return f" on {billing.as_utc(moment):%Y-%m-%d}" if moment is not None else ""
