"""Patreon charge statuses and the date arithmetic of paying: paid-through dates, decline grace.

Pure functions over `MembershipSnapshot` fields, used by the role policy. Naive datetimes are read
as UTC (Patreon sends offsets, but a store or a test may drop them); every result is aware UTC.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.domain.models import MembershipSnapshot, PatronStatus

# `last_charge_status` values documented by Patreon (API v2, Dec 2024). "The only successful status is Paid."
PAID = "Paid"
PENDING = "Pending"
DECLINED = "Declined"
DELETED = "Deleted"
REFUNDED = "Refunded"
FRAUD = "Fraud"
REFUNDED_BY_PATREON = "Refunded by Patreon"
OTHER = "Other"
PARTIALLY_REFUNDED = "Partially Refunded"
FREE_TRIAL = "Free Trial"

#: Every documented value, `None` included (no charge yet: free members, trials, gifts).
DOCUMENTED_CHARGE_STATUSES: tuple[str | None, ...] = (
    None,
    PAID,
    DECLINED,
    DELETED,
    PENDING,
    REFUNDED,
    FRAUD,
    REFUNDED_BY_PATREON,
    OTHER,
    PARTIALLY_REFUNDED,
    FREE_TRIAL,
)

#: The money went back (or never counted): such a charge earns no roles, no grace and no paid-through time.
NON_PAYING_CHARGES: frozenset[str] = frozenset({REFUNDED, FRAUD, REFUNDED_BY_PATREON})

#: Months one charge pays for when Patreon leaves `pledge_cadence` empty (monthly is the default plan).
DEFAULT_CADENCE_MONTHS = 1

_LATEST = datetime.max.replace(tzinfo=UTC)


def as_utc(moment: datetime) -> datetime:
    """`moment` as aware UTC; a naive value is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus whole calendar months, the day clamped to the month's end (Jan 31 + 1 → Feb 28/29).

    This is how a monthly or annual plan's period ends. Saturates at `datetime.max` instead of overflowing.
    """
    month_index = moment.year * 12 + (moment.month - 1) + months
    year, month0 = divmod(month_index, 12)
    if year > datetime.max.year:
        return _LATEST if moment.tzinfo is not None else datetime.max
    if year < datetime.min.year:
        raise ValueError(f"{months} months before {moment.isoformat()} is out of range")
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def add_days(moment: datetime, days: int) -> datetime:
    """`moment` plus `days`, saturating at `datetime.max` (a huge grace setting must not crash the policy)."""
    try:
        return moment + timedelta(days=days)
    except OverflowError:
        return _LATEST if days > 0 else datetime.min.replace(tzinfo=UTC)


class BillingTimes(Protocol):
    """The fields time-based decisions read: a `MembershipSnapshot`, or a listing member's few fields read from its
    bytes without building it (bot/patreon/member_rows.py)."""

    @property
    def patron_status(self) -> PatronStatus | None: ...
    @property
    def last_charge_status(self) -> str | None: ...
    @property
    def last_charge_date(self) -> datetime | None: ...
    @property
    def next_charge_date(self) -> datetime | None: ...
    @property
    def pledge_cadence(self) -> int | None: ...


def time_matters(status: PatronStatus | None, last_charge_status: str | None) -> bool:
    """Whether time alone can change the policy's decision for a member of this standing: only a declined payment
    (its grace runs out) and a pledge that is no longer active (its paid-through time runs out)."""
    return status is not None and (status != PatronStatus.ACTIVE or last_charge_status == DECLINED)


def time_moments(membership: BillingTimes) -> tuple[datetime | None, datetime | None, datetime | None] | None:
    """When time alone may change the policy's decision for this member, as (the next charge date, the end of the
    period the last charge paid for, the last charge date: its decline grace ends a guild's grace days later), all
    aware UTC; None when time can't matter for its standing (`time_matters`). The store keeps these with each
    membership so a refresh finds the members due without reading them all (bot/store/bulk.py)."""
    if not time_matters(membership.patron_status, membership.last_charge_status):
        return None
    upcoming = as_utc(membership.next_charge_date) if membership.next_charge_date is not None else None
    if membership.last_charge_date is None:
        return upcoming, None, None
    last = as_utc(membership.last_charge_date)
    return upcoming, add_months(last, cadence_months(membership)), last


def cadence_months(membership: BillingTimes) -> int:
    """Months one charge covers: `pledge_cadence` when positive, else the monthly default."""
    cadence = membership.pledge_cadence
    return cadence if cadence is not None and cadence > 0 else DEFAULT_CADENCE_MONTHS


def paid_through(membership: MembershipSnapshot, now: datetime) -> datetime | None:
    """When the period this member already paid for ends, or None if nothing paid is still running.

    1. A refunded or fraudulent last charge paid for nothing: None.
    2. `next_charge_date` when it lies after `now`: Patreon would have charged again then, so the
       current period runs until it (the real pledge-delete delivery keeps this date).
    3. Else, when the last charge was `Paid`: `last_charge_date` plus `pledge_cadence` months (default 1).
    4. Else None. A pledge-delete delivery overwrites the status with "Deleted" and the snapshot does
       not say whether the charge before it succeeded, so "Deleted" (like Pending, Declined, Other…)
       gets paid-through time only from a future `next_charge_date`.

    The result may lie in the past (rule 3); the caller compares it with `now`.
    """
    if membership.last_charge_status in NON_PAYING_CHARGES:
        return None
    now = as_utc(now)
    if membership.next_charge_date is not None:
        next_charge = as_utc(membership.next_charge_date)
        if next_charge > now:
            return next_charge
    if membership.last_charge_status == PAID and membership.last_charge_date is not None:
        return add_months(as_utc(membership.last_charge_date), cadence_months(membership))
    return None


def decline_grace_ends(membership: MembershipSnapshot, grace_days: int) -> datetime | None:
    """When a declined payment's grace ends: `last_charge_date` + `grace_days`, or None if no date is known."""
    if membership.last_charge_date is None:
        return None
    return add_days(as_utc(membership.last_charge_date), grace_days)
