"""The Patreon states the machine moves members between, and how the oracle reads them off the fake.

Dates are whole hours away from the injected clock, so a boundary (a grace end, a paid-through date) is never
closer than an hour to any moment the bot or the oracle judges at: bot and oracle can't disagree by timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import strategies as st

from fakes.patreon import FakePatreon
from fakes.world import SEED
from tests.convergence.oracle import Pledge, TierInfo

GOLD, BRONZE = SEED.gold_tier, SEED.bronze_tier
TIER_SETS = {"gold": (GOLD,), "bronze": (BRONZE,), "both": (GOLD, BRONZE), "none": ()}


@dataclass(frozen=True)
class PledgeChange:
    """One change at Patreon: `kind` picks the shape, the rest fills it in (hours count back from now)."""

    kind: str
    tiers: str = "gold"
    charge: str | None = "Paid"
    charged_hours_ago: int = 72
    next_charge_in_hours: int | None = None
    amount_cents: int | None = None
    lifetime_cents: int | None = None

    def __str__(self) -> str:
        return (
            f"{self.kind}(tiers={self.tiers}, charge={self.charge}, charged {self.charged_hours_ago} h ago, "
            f"next in {self.next_charge_in_hours} h, amount={self.amount_cents}, lifetime={self.lifetime_cents})"
        )


HOURS_AGO = st.integers(0, 24 * 12)
LIFETIME = st.sampled_from([None, 0, 500, 5000])
CHANGES = st.one_of(
    st.builds(
        PledgeChange,
        kind=st.just("active"),
        tiers=st.sampled_from(["gold", "bronze", "both"]),
        charge=st.sampled_from(["Paid", "Pending"]),
        charged_hours_ago=HOURS_AGO,
        lifetime_cents=LIFETIME,
    ),
    st.builds(
        PledgeChange,
        kind=st.just("blank"),
        tiers=st.just("none"),
        charge=st.sampled_from(["Paid", "Pending"]),
        amount_cents=st.sampled_from([0, 500, 700, 1000, 1500]),
    ),
    st.builds(
        PledgeChange,
        kind=st.just("declined"),
        tiers=st.sampled_from(["gold", "bronze"]),
        charge=st.just("Declined"),
        charged_hours_ago=HOURS_AGO,
    ),
    st.builds(
        PledgeChange,
        kind=st.just("active_declined"),
        tiers=st.sampled_from(["gold", "bronze"]),
        charge=st.just("Declined"),
        charged_hours_ago=HOURS_AGO,
    ),
    st.builds(
        PledgeChange,
        kind=st.just("unsettled"),
        tiers=st.sampled_from(["gold", "bronze", "none"]),
        charge=st.sampled_from(["Deleted", "Other", "Partially Refunded"]),
    ),
    st.builds(
        PledgeChange,
        kind=st.just("refunded"),
        tiers=st.sampled_from(["gold", "bronze"]),
        charge=st.sampled_from(["Refunded", "Fraud", "Refunded by Patreon"]),
    ),
    st.builds(
        PledgeChange, kind=st.just("trial"), tiers=st.sampled_from(["gold", "bronze"]), charge=st.just("Free Trial")
    ),
    st.builds(
        PledgeChange,
        kind=st.just("former"),
        tiers=st.sampled_from(["none", "gold"]),
        charge=st.sampled_from(["Paid", "Deleted", "Refunded"]),
        charged_hours_ago=st.integers(0, 24 * 40),
        next_charge_in_hours=st.one_of(st.none(), st.integers(-48, 24 * 30)),
    ),
    st.builds(PledgeChange, kind=st.just("free"), tiers=st.just("none"), charge=st.none()),
    st.builds(PledgeChange, kind=st.just("gone")),
)


#: Hours either side of a boundary (a grace end, a paid-through date): the hour on each side and a day on each.
NEAR_BOUNDARY = st.sampled_from([-25, -24, -23, -1, 0, 1, 23, 24, 25])


def declined_near_grace_end(tiers: str, hours_past_end: int, grace_days: int, active: bool) -> PledgeChange:
    """A declined payment whose grace (`grace_days` after the charge) ended `hours_past_end` ago (negative: later)."""
    kind = "active_declined" if active else "declined"
    return PledgeChange(kind, tiers, "Declined", charged_hours_ago=max(0, grace_days * 24 + hours_past_end))


def cancelled_near_paid_through(tiers: str, hours_left: int, charge: str) -> PledgeChange:
    """A cancelled pledge whose paid-through date (its next charge date) is `hours_left` away (negative: past)."""
    return PledgeChange("former", tiers, charge, charged_hours_ago=24 * 30, next_charge_in_hours=hours_left)


def apply_change(fake: FakePatreon, patreon_id: str, change: PledgeChange, now: datetime) -> None:
    if change.kind == "gone":
        fake.remove_membership(patreon_id)
        return
    tiers = TIER_SETS[change.tiers]
    charged = now - timedelta(hours=change.charged_hours_ago) if change.charge is not None else None
    next_charge: datetime | None = None
    if change.next_charge_in_hours is not None:
        next_charge = now + timedelta(hours=change.next_charge_in_hours)
    elif change.kind in ("active", "blank"):
        next_charge = (charged or now) + timedelta(days=30)
    status = {
        "active": "active_patron",
        "blank": "active_patron",
        "declined": "declined_patron",
        "active_declined": "active_patron",
        "unsettled": "active_patron",
        "refunded": "active_patron",
        "trial": "active_patron",
        "former": "former_patron",
        "free": None,
    }[change.kind]
    amount = change.amount_cents
    if change.kind == "former" and amount is None:
        amount = 0  # Patreon zeroes a cancelled pledge's entitled amount
    fake.set_membership(
        patreon_id,
        status,
        tier_ids=list(tiers),
        last_charge_status=change.charge,
        amount_cents=amount,
        is_free_trial=change.kind == "trial",
        last_charge_date=charged,
        next_charge_date=next_charge,
        lifetime_cents=change.lifetime_cents,
        pledge_cadence=1 if change.charge is not None else None,
    )


def pledge_of(fake: FakePatreon, patreon_id: str) -> Pledge | None:
    """What the fake Patreon holds for this user now, field by field (None: no live membership)."""
    member = fake.campaign.live_member_for(patreon_id)
    if member is None:
        return None
    return Pledge(
        patron_status=member.patron_status,
        last_charge_status=member.last_charge_status,
        last_charge_date=member.last_charge_date,
        next_charge_date=member.next_charge_date,
        pledge_cadence=member.pledge_cadence,
        amount_cents=member.currently_entitled_amount_cents,
        tier_ids=tuple(member.tier_ids),
        is_free_trial=member.is_free_trial,
        lifetime_cents=member.campaign_lifetime_support_cents,
    )


def catalogue(fake: FakePatreon) -> dict[str, TierInfo]:
    return {tier.id: TierInfo(tier.amount_cents, tier.published) for tier in fake.campaign.tiers.values()}
