"""Money done right (issue 12, item 6): amounts carry their currency, the tier fallback compares like with like, and
annual plans are neither read as a monthly price nor cut short.

Cases are built from Patreon's documented member fields (docs/patreon-api.md, "Money"): the entitled and will-pay
amounts, `campaign_lifetime_support_cents` (in the campaign's currency), `pledge_cadence` (months between charges)
and `next_charge_date`; the campaign is the small one of tests/unit/test_policy.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from bot.domain import billing
from bot.domain.models import PatronStatus
from bot.domain.money import describe_pledge, format_money, normal_currency, same_currency
from tests.unit.test_policy import (
    ALL_SPECIALS,
    CHARGED,
    GOLD,
    LIFETIME,
    R_GOLD_A,
    R_GOLD_B,
    R_SILVER,
    decide,
    member,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("cents", "currency", "shown"),
    [(500, "USD", "5.00 USD"), (1250, "eur", "12.50 EUR"), (-300, "GBP", "-3.00 GBP"), (7, "HUF", "0.07 HUF")],
)
def test_an_amount_is_always_shown_with_its_currency(cents: int, currency: str, shown: str) -> None:
    assert format_money(cents, currency) == shown


def test_a_bad_currency_code_is_never_shown() -> None:
    assert normal_currency("<@everyone>") is None and normal_currency("US") is None
    assert format_money(100, "**x**") == "1.00 USD"


def test_no_bare_dollar_sign_in_the_bots_strings() -> None:
    """`$` followed by an amount or a format field, anywhere in the bot's code, would be a bare dollar to someone.

    The store is left out: it speaks SQL to the database, never to a person, and PostgreSQL's placeholders are `$1`."""
    bare = re.compile(r"""[\s("'`]\$[{\d]""")
    store = ROOT / "bot" / "store"
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("bot", "cogs")
        for path in (ROOT / folder).rglob("*.py")
        if store not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if bare.search(line)
    ]
    assert offenders == []


def test_a_patron_paying_in_the_campaigns_currency_still_gets_the_inferred_tier() -> None:
    m = member(entitled_tier_ids=(), currently_entitled_amount_cents=500, currency="USD")
    decision = decide(m)
    assert decision.desired - ALL_SPECIALS == {R_SILVER} and not decision.hold
    assert "5.00 USD" in decision.summary


def test_an_amount_in_another_currency_is_not_compared_with_tier_prices() -> None:
    """5.00 EUR is not 5.00 USD: with no tier listed, nothing is inferred; roles held stay, none is added."""
    m = member(entitled_tier_ids=(), currently_entitled_amount_cents=500, currency="EUR")
    decision = decide(m, held=frozenset({R_GOLD_A}))
    assert decision.hold is True
    assert decision.desired - ALL_SPECIALS == {R_GOLD_A}
    assert "5.00 EUR" in decision.summary and "not the campaign's USD" in decision.summary
    assert same_currency(m, "EUR") and not same_currency(m, "USD")


def test_a_listed_tier_counts_whatever_the_patron_pays_in() -> None:
    """Patreon's advice: the tier relationship is independent of the patron's and the creator's currency."""
    m = member(entitled_tier_ids=(GOLD,), currently_entitled_amount_cents=900, currency="GBP")
    decision = decide(m)
    assert decision.desired - ALL_SPECIALS == {R_GOLD_A, R_GOLD_B} and not decision.hold


def test_the_campaign_currency_setting_decides_what_is_foreign() -> None:
    m = member(entitled_tier_ids=(), currently_entitled_amount_cents=500, currency="EUR")
    decision = decide(m, currency="EUR")
    assert decision.desired - ALL_SPECIALS == {R_SILVER} and "5.00 EUR" in decision.summary


def test_an_annual_charge_is_not_read_as_a_monthly_price() -> None:
    """54.00 a year for the 5.00 Silver tier (10% off) is not "entitled to 54.00 a month", which would infer Gold."""
    m = member(
        entitled_tier_ids=(), currently_entitled_amount_cents=5400, will_pay_amount_cents=5400, pledge_cadence=12
    )
    decision = decide(m, held=frozenset({R_SILVER}))
    assert decision.desired - ALL_SPECIALS == {R_SILVER}, "no Gold guessed from a year's money"
    assert decision.hold is True and "every 12 months" in decision.summary


def test_an_annual_patron_with_a_listed_tier_is_an_active_patron() -> None:
    m = member(entitled_tier_ids=(GOLD,), currently_entitled_amount_cents=10800, pledge_cadence=12)
    decision = decide(m, now=CHARGED + timedelta(days=200))
    assert decision.desired - ALL_SPECIALS == {R_GOLD_A, R_GOLD_B} and not decision.hold


def test_an_annual_cancel_keeps_roles_for_the_year_paid_for() -> None:
    m = member(patron_status=PatronStatus.FORMER, next_charge_date=None, pledge_cadence=12)
    assert billing.paid_through(m, CHARGED) == CHARGED.replace(year=CHARGED.year + 1)
    kept = decide(m, now=CHARGED + timedelta(days=300), held=frozenset({R_GOLD_A}))
    assert kept.hold is True and "until 2027-11-01" in kept.summary


def test_the_lifetime_threshold_compares_the_campaigns_currency_and_says_so() -> None:
    m = member(campaign_lifetime_support_cents=1200, currency="EUR")  # lifetime support is in the campaign's currency
    decision = decide(m, currency="GBP", lifetime_threshold_cents=1000)
    assert LIFETIME in decision.desired
    assert decision.reasons[LIFETIME] == "lifetime role: 12.00 GBP lifetime support >= 10.00 GBP"


def test_a_pledge_is_described_in_the_patrons_currency_and_cadence() -> None:
    monthly = member(currently_entitled_amount_cents=500, currency="EUR")
    annual = member(currently_entitled_amount_cents=5400, pledge_cadence=12)
    assert describe_pledge(monthly, "USD", 1) == "5.00 EUR a month"
    assert describe_pledge(annual, "USD", billing.cadence_months(annual)) == "54.00 USD every 12 months"
