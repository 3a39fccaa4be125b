"""Amounts of money as Patreon gives them (whole cents of one currency), compared and shown with their currency.

Why a module: Patreon lets a patron pay in their own currency (16 of them) while the campaign prices its tiers, and
counts lifetime support, in its own. A bare dollar sign before 5.00 is wrong for a EUR campaign, and comparing 500
euro cents with a 500 dollar-cent tier is comparing unlike things. So every amount a person reads goes through
`format_money`, which always names the currency, and the policy asks `same_currency` before it compares a patron's
amount with a tier.
The facts and their sources are in docs/patreon-api.md ("Money"); the rules in docs/policy.md.
"""

from __future__ import annotations

from bot.domain.models import MembershipSnapshot

#: Patreon's supported currencies (Patreon Help Center, "Member currency settings on Patreon", 2024): a patron may
#: pay in any of them; each has two decimals in ISO 4217, so Patreon's `*_cents` are hundredths in every one.
SUPPORTED_CURRENCIES: tuple[str, ...] = (
    "USD",
    "EUR",
    "GBP",
    "CAD",
    "AUD",
    "DKK",
    "NOK",
    "SEK",
    "HKD",
    "SGD",
    "NZD",
    "CZK",
    "HUF",
    "PLN",
    "MXN",
    "BRL",
)
#: A campaign's currency when its admin hasn't said: Patreon's docs describe tier `amount_cents` in U.S. cents.
DEFAULT_CURRENCY = "USD"


def format_money(cents: int, currency: str) -> str:
    """`cents` hundredths of `currency` as a person reads them: `12.50 USD`, `-3.00 EUR`. The code always follows
    the amount (never a bare `$`, which means different money in USD, CAD, AUD, NZD, SGD, HKD and MXN)."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d} {normal_currency(currency) or DEFAULT_CURRENCY}"


def normal_currency(code: str | None) -> str | None:
    """An ISO 4217 code in capitals, or None for anything that isn't three letters (a bad value is never shown)."""
    if code is None:
        return None
    code = code.strip().upper()
    return code if len(code) == 3 and code.isascii() and code.isalpha() else None


def amount_currency(membership: MembershipSnapshot, campaign_currency: str) -> str:
    """The currency of `membership`'s entitled and will-pay amounts: the one Patreon named for them, else the
    campaign's (Patreon's v2 member resource names none; see docs/patreon-api.md)."""
    return normal_currency(membership.currency) or normal_currency(campaign_currency) or DEFAULT_CURRENCY


def same_currency(membership: MembershipSnapshot, campaign_currency: str) -> bool:
    """Whether the patron's amounts are in the campaign's currency, so they may be compared with its tier prices."""
    return amount_currency(membership, campaign_currency) == (normal_currency(campaign_currency) or DEFAULT_CURRENCY)


def describe_pledge(membership: MembershipSnapshot, campaign_currency: str, cadence_months: int) -> str:
    """`5.00 EUR a month` / `54.00 USD every 12 months`: what the patron is entitled to, in their currency."""
    amount = format_money(membership.currently_entitled_amount_cents, amount_currency(membership, campaign_currency))
    return f"{amount} a month" if cadence_months == 1 else f"{amount} every {cadence_months} months"
