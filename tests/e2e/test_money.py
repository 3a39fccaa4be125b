"""Money done right end to end (issue 12, item 6): the real bot against the fakes, with Patreon's documented fields.

An annual patron (`pledge_cadence` 12) is charged a year's price at once; the campaign's currency is the server's
`currency` setting, and every amount the bot shows names its currency.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.guild_admin.service import AdminError
from fakes.world import SEED
from tests.e2e.test_admin import admin
from tests.e2e.test_link_scope import patron


async def test_an_annual_patron_with_no_tier_listed_gets_no_role_guessed_from_a_years_money(world):
    """Bob pays 54.00 for a year of Bronze (5.00 a month, 10% off). On his renewal day Patreon lists no tier: a
    year's money read as a monthly amount would be above Gold's 10.00 and give him Gold."""
    await world.link(SEED.bob)
    assert SEED.bronze_role in world.roles_of(SEED.bob)
    paid = datetime.now(UTC) - timedelta(hours=1)
    world.patreon.set_membership(
        "p-bob",
        patron_status="active_patron",
        tier_ids=[],
        amount_cents=5400,
        last_charge_status="Paid",
        last_charge_date=paid,
        next_charge_date=paid.replace(year=paid.year + 1),
        pledge_cadence=12,
    )
    await world.refresh()

    assert SEED.gold_role not in world.roles_of(SEED.bob), "no Gold guessed from a year's price"
    assert SEED.bronze_role in world.roles_of(SEED.bob), "and the role he holds is kept meanwhile"
    text, _ = await patron(world, SEED.guild_id, SEED.bob, "status")
    assert "Pledge: 54.00 USD every 12 months" in text
    assert "pays every 12 months and no tier is listed; roles kept" in text


async def test_an_annual_cancel_keeps_the_roles_for_the_year_paid_for(world):
    await world.link(SEED.bob)
    paid = datetime.now(UTC) - timedelta(days=100)
    world.patreon.set_membership(
        "p-bob",
        patron_status="former_patron",
        tier_ids=[SEED.bronze_tier],
        amount_cents=5400,
        last_charge_status="Paid",
        last_charge_date=paid,
        next_charge_date=None,
        pledge_cadence=12,
    )
    await world.refresh()

    assert SEED.bronze_role in world.roles_of(SEED.bob)
    text, _ = await patron(world, SEED.guild_id, SEED.bob, "status")
    assert f"roles kept until {paid.replace(year=paid.year + 1):%Y-%m-%d} (paid through)" in text


async def test_amounts_are_shown_in_the_campaigns_currency(world):
    saved = await admin(world, ["settings"], {"currency": "EUR", "lifetime_dollars": 25})
    assert "The campaign's currency: EUR" in saved
    assert "Lifetime-support threshold (in the campaign's currency): 25.00 EUR" in saved

    tiers = await admin(world, ["tiers"])
    assert "10.00 EUR" in tiers and "5.00 EUR" in tiers and "$" not in tiers


async def test_a_currency_patreon_does_not_support_is_refused_and_changes_nothing(world):
    """Discord only offers the choices, but a forged interaction can carry anything: the service refuses it too."""
    try:
        await world.bot.services.admin.update_settings(SEED.guild_id, currency="<@everyone>")
    except AdminError as refused:
        assert "one Patreon supports" in str(refused)
    else:
        raise AssertionError("an unsupported currency was saved")
    assert (await world.store.get_settings(SEED.guild_id)).currency == "USD"
