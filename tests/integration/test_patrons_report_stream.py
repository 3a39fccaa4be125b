"""`/patreon-admin patrons` over a big campaign reads the stored memberships a chunk at a time
(bot/guild_admin/patrons_report.py, `Store.iter_stored_memberships`): memory for one small row a patron (the CSV's
content), never every snapshot at once, and the report is still whole and in name order."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

from bot.domain.models import MembershipSnapshot, PatronStatus, Tier
from bot.guild_admin.patrons_report import patrons_report
from fakes.sync_harness import GUILD, SyncHarness

PATRONS = 3000
LINKED = 5
FIRST_DISCORD_ID = 320_000_000_000_000_001


def patron(index: int, campaign: str, now: datetime) -> MembershipSnapshot:
    return MembershipSnapshot(
        f"m-{index}",
        campaign,
        f"p{index:05}",
        full_name=f"Patron {PATRONS - index:05}",  # name order is the reverse of user id order
        patron_status=PatronStatus.ACTIVE,
        last_charge_status="Paid",
        last_charge_date=now,
        next_charge_date=now,
        pledge_relationship_start=now,
        currently_entitled_amount_cents=500,
        will_pay_amount_cents=500,
        entitled_tier_ids=("t1",),
        observed_at=now,
    )


async def test_a_big_campaigns_report_holds_a_chunk_of_snapshots_not_all_and_is_whole(tmp_path) -> None:
    h = await SyncHarness(tmp_path / "bot.sqlite3").start()
    try:
        store, services = h.store, h.services
        assert store is not None and services is not None
        await services.campaign.campaign_id()
        key = await services.campaign.storage_key()
        assert key is not None
        now = datetime.now(UTC)
        await store.save_tiers(key, [Tier("t1", "Gold", 500)])
        await store.save_memberships([patron(i, key, now) for i in range(PATRONS)], campaign_id=key)
        for i in range(LINKED):
            await store.save_link(FIRST_DISCORD_ID + i, f"p{i:05}", None, "oauth")
            h.link_member(FIRST_DISCORD_ID + i)

        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            every = await store.stored_memberships(key)
            _, all_at_once = tracemalloc.get_traced_memory()
            assert len(every) == PATRONS
            del every
            tracemalloc.reset_peak()
            start, _ = tracemalloc.get_traced_memory()
            report = await patrons_report(store, h.gateway, services.admin.participation, GUILD, now, chunk=100)
            _, streamed = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert streamed - start < (all_at_once - before) / 2, (streamed - start, all_at_once - before)
        assert len(report.rows) == PATRONS
        names = [row.patreon_name for row in report.rows]
        assert names == sorted(names) and names[0] == "Patron 00001"
        assert len(report.unlinked_paying) == PATRONS - LINKED
        assert sorted(row.discord_user_id for row in report.linked_here) == [
            FIRST_DISCORD_ID + i for i in range(LINKED)
        ]
        csv_lines = report.csv_bytes().decode("utf-8-sig").splitlines()
        assert len(csv_lines) == PATRONS + 1 and csv_lines[1].startswith("Patron 00001,p02999,Gold,active")
    finally:
        await h.close()
