"""The reconcile engine keeps time by the clock it is given, never the wall clock (tests, demo and bench move it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import MembershipSnapshot, PatronStatus, Tier
from bot.store import Store
from bot.sync.reconcile import GRANT_SETTLE_TIME, ReconcileService
from fakes.memory_gateway import MemoryGateway

GUILD = 610000000000000001
GOLD = 630000000000000001
DAN = 650000000000000009
#: Far from any wall-clock time, so a wall-clock read lands decades away from what the engine was told.
FIXED = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "bot.sqlite3")
    try:
        yield opened
    finally:
        await opened.close()


async def gold_patron(store: Store, gateway: MemoryGateway) -> ReconcileService:
    """Dan pays for Gold, which maps to a role he lacks; the engine's clock stands still at FIXED."""
    gateway.add_guild(GUILD).members[DAN] = set()
    await store.save_settings(GuildSettings(guild_id=GUILD))
    await store.save_tiers("c", [Tier("2001", "Gold", 500)])
    await store.map_tier_role(GUILD, "2001", GOLD)
    await store.save_link(DAN, "p-dan", GUILD, "oauth")
    await store.save_membership(
        MembershipSnapshot(
            member_id="m-dan", campaign_id="c", patreon_user_id="p-dan", patron_status=PatronStatus.ACTIVE,
            last_charge_status="Paid", last_charge_date=FIXED - timedelta(days=3), pledge_cadence=1,
            currently_entitled_amount_cents=500, will_pay_amount_cents=500, entitled_tier_ids=("2001",),
            observed_at=FIXED,
        )
    )  # fmt: skip
    return ReconcileService(store, gateway, lambda: FIXED, limiter=None, channel_log=None)


async def test_a_grant_is_recorded_at_the_engines_time(store: Store) -> None:
    gateway = MemoryGateway()
    reconcile = await gold_patron(store, gateway)
    outcome = await reconcile.reconcile_member(GUILD, DAN, "test")
    assert outcome.added == {GOLD}
    assert await store.grant_times(GUILD, DAN) == {GOLD: FIXED}


async def test_a_fresh_grant_the_cache_does_not_show_yet_is_kept_by_the_engines_time(store: Store) -> None:
    gateway = MemoryGateway()
    reconcile = await gold_patron(store, gateway)
    await reconcile.reconcile_member(GUILD, DAN, "test")
    await store.delete_link(DAN)
    gateway.guilds[GUILD].members[DAN] = set()  # the cache has not seen our grant yet; Dan just unlinked
    await reconcile.reconcile_member(GUILD, DAN, "unlink")
    # By the engine's clock the grant is seconds old (a wall-clock check would call it 20+ years old).
    assert await store.granted_roles(GUILD, DAN) == {GOLD}, "a fresh grant is still ours to take back"


async def test_past_the_settle_time_by_the_engines_clock_a_vanished_grant_is_forgotten(store: Store) -> None:
    gateway = MemoryGateway()
    reconcile = await gold_patron(store, gateway)
    await reconcile.reconcile_member(GUILD, DAN, "test")
    await store.delete_link(DAN)
    gateway.guilds[GUILD].members[DAN] = set()  # a moderator took Gold away by hand
    later = ReconcileService(store, gateway, lambda: FIXED + GRANT_SETTLE_TIME, limiter=None, channel_log=None)
    await later.reconcile_member(GUILD, DAN, "unlink")
    assert await store.granted_roles(GUILD, DAN) == frozenset()
