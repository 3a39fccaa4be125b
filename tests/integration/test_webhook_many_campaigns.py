"""A webhook among many connected campaigns reads the settings of its own campaign's servers only.

Why: every store call waits its turn on the one connection, behind the refresh's page writes. With 50 campaigns
the applier read every acting server's settings three times a webhook (auto-match's server list twice, the
member's servers once), so during a refresh of all campaigns a webhook took seconds (bench/campaigns_bench.py:
p99 6 s). Real SQLite (the statements counted with sqlite3's trace callback), real HTTP, real signatures.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.guild_settings import GuildSettings
from bot.domain.models import TokenPair
from fakes.sync_harness import GUILD, SyncHarness

CAMPAIGN_A = "7654321"
OTHERS = 12
OTHER_CAMPAIGN_BASE = 8_800_000
OTHER_GUILD_BASE = 620_000_000_000_000_000
TIER_A = "2001"
ROLE_A = 701
ANN, BEN = 1001, 1002
ANN_SOCIAL = 1001  # Ann connected this Discord account on Patreon (auto-match's candidate, already linked)


@pytest.fixture
async def many(tmp_path):
    h = await SyncHarness(tmp_path / "bot.sqlite3", CAMPAIGN_A).start()
    try:
        store, services = h.store, h.services
        assert store is not None and services is not None
        h.patreon.add_tier(TIER_A, "Gold", 500)
        h.patreon.add_user("p-ann", "Ann", ANN_SOCIAL)
        h.patreon.set_membership("p-ann", "active_patron", tier_ids=[TIER_A])
        await services.campaign.refresh_tiers()
        await store.map_tier_role(GUILD, TIER_A, ROLE_A)
        pair = TokenPair("other-access", "other-refresh", datetime.now(UTC) + timedelta(days=30))
        for index in range(OTHERS):
            campaign_id, guild_id = str(OTHER_CAMPAIGN_BASE + index), OTHER_GUILD_BASE + index
            h.gateway.add_guild(guild_id)
            # auto-match on everywhere: a server's settings are what auto-match reads
            await store.save_settings(GuildSettings(guild_id=guild_id, enabled=True, auto_match_discord=True))
            await services.campaigns.add(campaign_id, pair, f"secret-{campaign_id}", webhook_id=f"hook-{index}")
            await services.campaigns.bind_guild(guild_id, campaign_id, by=4242)
            h.gateway.guilds[guild_id].members[ANN] = set()  # Ann is in every server, a patron of A only
        await store.save_settings(GuildSettings(guild_id=GUILD, enabled=True, auto_match_discord=True))
        h.link_member(ANN)
        await store.save_link(ANN, "p-ann", None, "oauth")
        yield h
    finally:
        await h.close()


async def settings_reads_while(h: SyncHarness, action) -> tuple[object, int]:  # type: ignore[no-untyped-def]
    """Run `action` and count the statements that read a server's settings meanwhile (SQLite's own trace)."""
    assert h.store is not None
    statements: list[str] = []
    await h.store._db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    try:
        result = await action()
    finally:
        await h.store._db.set_trace_callback(None)  # type: ignore[attr-defined]
    return result, sum(1 for sql in statements if "FROM guild_settings" in sql)


async def test_a_webhook_reads_only_its_campaigns_servers_settings(many):
    status, _ = await many.deliver("members:pledge:update", "p-ann")
    assert status == 202
    assert many.services is not None
    handled, reads = await settings_reads_while(many, many.services.webhook_applier.apply_due)
    assert handled == 1
    assert reads <= 1, f"{reads} settings reads for one webhook with {OTHERS + 1} servers (one follows A)"
    await many.services.jobs.wait_idle(5)
    assert many.guild.members[ANN] == {ROLE_A}, "Ann's webhook still gives her role in A's server"
    for index in range(OTHERS):
        assert many.gateway.guilds[OTHER_GUILD_BASE + index].members[ANN] == set(), "and nothing elsewhere"


async def test_an_unlinked_patron_with_discord_connected_is_still_auto_matched(many):
    """Skipping auto-match is only for a linked patron: an unlinked one with Discord on Patreon is matched as
    before, in A's server (auto-match on), and gets A's role."""
    assert many.store is not None and many.services is not None
    many.patreon.add_user("p-ben", "Ben", BEN)
    many.patreon.set_membership("p-ben", "active_patron", tier_ids=[TIER_A])
    many.link_member(BEN)
    status, _ = await many.deliver("members:pledge:create", "p-ben")
    assert status == 202
    assert await many.apply() == 1
    link = await many.store.get_link_by_discord(BEN)
    assert link is not None and link.patreon_user_id == "p-ben" and link.source == "auto"
    assert many.guild.members[BEN] == {ROLE_A}
