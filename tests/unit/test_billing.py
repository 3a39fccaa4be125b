"""Paid-through dates and decline grace: calendar arithmetic over membership fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import billing
from bot.domain.models import MembershipSnapshot, PatronStatus

NOW = datetime(2026, 11, 15, tzinfo=UTC)


def member(**overrides: object) -> MembershipSnapshot:
    base: dict[str, object] = {
        "member_id": "m",
        "campaign_id": "c",
        "patreon_user_id": "u",
        "patron_status": PatronStatus.FORMER,
        "last_charge_status": "Paid",
        "last_charge_date": datetime(2026, 11, 1, 12, tzinfo=UTC),
        "next_charge_date": None,
        "pledge_cadence": 1,
    }
    base.update(overrides)
    return MembershipSnapshot(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "months", "want"),
    [
        (datetime(2026, 1, 31), 1, datetime(2026, 2, 28)),
        (datetime(2028, 1, 31), 1, datetime(2028, 2, 29)),
        (datetime(2026, 3, 31), 1, datetime(2026, 4, 30)),
        (datetime(2026, 12, 15), 1, datetime(2027, 1, 15)),
        (datetime(2026, 11, 30), 15, datetime(2028, 2, 29)),
        (datetime(2027, 2, 28), 12, datetime(2028, 2, 28)),
        (datetime(2026, 5, 10), 0, datetime(2026, 5, 10)),
    ],
)
def test_add_months_clamps_to_month_end(start: datetime, months: int, want: datetime) -> None:
    assert billing.add_months(start, months) == want


def test_add_months_keeps_time_and_zone_and_saturates() -> None:
    start = datetime(2026, 1, 31, 23, 59, tzinfo=UTC)
    assert billing.add_months(start, 1) == datetime(2026, 2, 28, 23, 59, tzinfo=UTC)
    assert billing.add_months(start, 10**6) == datetime.max.replace(tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)), st.integers(0, 240))
def test_add_months_lands_in_the_right_month_never_earlier(start: datetime, months: int) -> None:
    result = billing.add_months(start, months)
    assert (result.year * 12 + result.month) - (start.year * 12 + start.month) == months
    assert result.day <= start.day
    assert result >= start


def test_as_utc_reads_naive_as_utc_and_converts_offsets() -> None:
    assert billing.as_utc(datetime(2026, 1, 1, 5)) == datetime(2026, 1, 1, 5, tzinfo=UTC)
    shifted = billing.as_utc(datetime(2026, 1, 1, 5, tzinfo=timezone(timedelta(hours=2))))
    assert (shifted.hour, shifted.tzinfo) == (3, UTC)


def test_paid_through_prefers_a_future_next_charge_date() -> None:
    nxt = datetime(2026, 12, 3, tzinfo=UTC)
    assert billing.paid_through(member(next_charge_date=nxt, last_charge_status="Deleted"), NOW) == nxt


def test_paid_through_falls_back_to_last_paid_plus_cadence() -> None:
    past_next = datetime(2026, 11, 10, tzinfo=UTC)
    assert billing.paid_through(member(next_charge_date=past_next), NOW) == datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert billing.paid_through(member(pledge_cadence=12), NOW) == datetime(2027, 11, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("cadence", [None, 0, -3])
def test_paid_through_defaults_to_monthly(cadence: int | None) -> None:
    assert billing.paid_through(member(pledge_cadence=cadence), NOW) == datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("charge", [None, "Deleted", "Pending", "Declined", "Other", "Partially Refunded"])
def test_only_paid_earns_cadence_time(charge: str | None) -> None:
    assert billing.paid_through(member(last_charge_status=charge), NOW) is None


@pytest.mark.parametrize("charge", sorted(billing.NON_PAYING_CHARGES))
def test_refunds_earn_no_paid_through_even_with_a_next_charge_date(charge: str) -> None:
    m = member(last_charge_status=charge, next_charge_date=datetime(2026, 12, 1, tzinfo=UTC))
    assert billing.paid_through(m, NOW) is None


def test_paid_through_without_dates_is_none() -> None:
    assert billing.paid_through(member(last_charge_date=None), NOW) is None


def test_decline_grace_ends_days_after_the_charge() -> None:
    assert billing.decline_grace_ends(member(), 7) == datetime(2026, 11, 8, 12, tzinfo=UTC)
    assert billing.decline_grace_ends(member(last_charge_date=None), 7) is None
    assert billing.decline_grace_ends(member(), 10**9) == datetime.max.replace(tzinfo=UTC)


def test_documented_charge_statuses_are_all_listed() -> None:
    assert len(set(billing.DOCUMENTED_CHARGE_STATUSES)) == 11
    assert set(billing.DOCUMENTED_CHARGE_STATUSES) >= billing.NON_PAYING_CHARGES
