"""The oracle is the page: its grid is docs/policy.md's "whole grid" letter for letter, and a few rules the
machine leans on, worked by hand from the page's words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.convergence.oracle import CHARGES, GRID, Pledge, Server, TierInfo, decide, paid_through

POLICY = Path(__file__).resolve().parents[2] / "docs" / "policy.md"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TIERS = {"0": TierInfo(0), "5": TierInfo(500), "10": TierInfo(1000)}
SERVER = Server(tier_roles={"5": frozenset({5}), "10": frozenset({10})}, former_role=99)


def pledge(**fields: object) -> Pledge:
    base: dict[str, object] = {
        "patron_status": "active_patron",
        "last_charge_status": "Paid",
        "last_charge_date": NOW - timedelta(days=3),
        "next_charge_date": None,
        "pledge_cadence": 1,
        "amount_cents": 1000,
        "tier_ids": ("10",),
        "is_free_trial": False,
        "lifetime_cents": 0,
    }
    return Pledge(**{**base, **fields})  # type: ignore[arg-type]


def test_the_oracles_grid_is_the_pages_grid() -> None:
    text = POLICY.read_text()
    table = text[text.index("| status \\ last charge |") :].splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")][1:]
    assert header == ["none" if charge is None else charge for charge in CHARGES]
    statuses = {"never pledged": None, "`active_patron`": "active_patron"}
    statuses |= {"`declined_patron`": "declined_patron", "`former_patron`": "former_patron"}
    rows = {}
    for line in table[2:6]:
        name, *letters = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[statuses[name]] = letters
    assert {(status, CHARGES[i]): letter for status, row in rows.items() for i, letter in enumerate(row)} == GRID
    assert re.search(r"\| `former_patron` \|", text)


def test_grace_ends_exactly_grace_days_after_the_charge() -> None:
    inside = pledge(
        patron_status="declined_patron",
        last_charge_status="Declined",
        last_charge_date=NOW - timedelta(days=7) + timedelta(hours=1),
    )
    over = pledge(
        patron_status="declined_patron", last_charge_status="Declined", last_charge_date=NOW - timedelta(days=7)
    )
    assert decide(inside, SERVER, TIERS, NOW, set()) == ({10}, True)
    assert decide(over, SERVER, TIERS, NOW, set()) == (set(), False)


def test_a_cancelled_pledge_keeps_what_the_bot_gave_until_paid_through_then_gets_the_former_role() -> None:
    cancelled = pledge(
        patron_status="former_patron",
        last_charge_status="Paid",
        tier_ids=(),
        amount_cents=0,
        last_charge_date=NOW - timedelta(days=20),
    )
    assert paid_through(cancelled, NOW) == NOW - timedelta(days=20) + timedelta(days=30)  # November has 30 days
    assert decide(cancelled, SERVER, TIERS, NOW, {5}) == ({5}, True), "blank tiers: the held roles are kept"
    assert decide(cancelled, SERVER, TIERS, NOW + timedelta(days=11), {5}) == ({99}, False)


def test_a_blank_tier_list_with_an_amount_infers_the_dearest_tier_it_buys() -> None:
    assert decide(pledge(tier_ids=(), amount_cents=700), SERVER, TIERS, NOW, set()) == ({5}, False)
    assert decide(pledge(tier_ids=(), amount_cents=0), SERVER, TIERS, NOW, {10}) == ({10}, True), "billing day"
